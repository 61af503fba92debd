"""Error analysis: cross-fitted losses find flipped labels; per-sample values; skips."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from aire.analysis.error_analysis import ErrorAnalysis, analyze, out_of_sample, run_error_analysis
from aire.config import PipelineConfig, parse_config
from aire.errors import InputError
from aire.model.training import fit
from tests.support.german import FEATURES, german_csv

GERMAN = german_csv()
N_FLIPS = 100
# Measured over 10 flip seeds (torch 2.13 CPU, 5 folds, 30 epochs): recall 0.57-0.68,
# precision 0.24-0.27, noise-rate rise over the clean data 0.07-0.13; boosted-tree fold
# models (scikit-learn 1.9.1): recall 0.54-0.64, precision 0.23-0.27, rise 0.08-0.13. bench/error_analysis.py
# (10% uniform flips, 20 epochs, seeds 100-129) gives recall 0.62±0.06 and precision
# 0.25±0.02, the same as cleanlab's find_label_issues on the same probabilities; with a
# champion (500-row batches, the blend) recall 0.62±0.06 and precision 0.28±0.03.
# Floors leave about three standard deviations of margin.
RECALL_FLOOR = 0.45
PRECISION_FLOOR = 0.18  # the base rate is N_FLIPS / 1000 = 0.10
NOISE_RISE_FLOOR = 0.04


KINDS = ("boosted_trees", "mlp")  # analysis.cross_fit_model


def make_config(**dataset: object) -> PipelineConfig:
    return parse_config({"name": "credit-risk", "dataset": {
        "label": "risk", "features": FEATURES, "sensitive": ["sex"], **dataset}})


def with_kind(config: PipelineConfig, kind: str) -> PipelineConfig:
    return config.model_copy(update={
        "analysis": config.analysis.model_copy(update={"cross_fit_model": kind})})


@pytest.fixture(scope="module", params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def config() -> PipelineConfig:
    return make_config()


@pytest.fixture(scope="module")
def german() -> pd.DataFrame:
    return pd.read_csv(GERMAN)


@pytest.fixture(scope="module")
def flipped(german: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    rows = rng.choice(len(german), size=N_FLIPS, replace=False)
    noisy = german.copy()
    noisy.loc[rows, "risk"] = 1 - noisy.loc[rows, "risk"]
    return noisy, np.sort(rows)


@pytest.fixture(scope="module")
def noisy_result(flipped: tuple[pd.DataFrame, np.ndarray], config: PipelineConfig,
                 kind: str) -> ErrorAnalysis:
    return run_error_analysis(flipped[0], with_kind(config, kind), champion=None, folds=5,
                              seed=0, epochs=30, device="cpu")


# --- finding label errors ----------------------------------------------------------------


def test_cross_fit_analysis_finds_flipped_labels(
        flipped: tuple[pd.DataFrame, np.ndarray], noisy_result: ErrorAnalysis) -> None:
    flips = set(flipped[1].tolist())
    suspects = set(noisy_result.suspects["position"].tolist())
    found = len(flips & suspects)
    assert found / N_FLIPS >= RECALL_FLOOR, f"recall {found / N_FLIPS:.2f}"
    assert found / len(suspects) >= PRECISION_FLOOR, f"precision {found / len(suspects):.2f}"
    assert noisy_result.n_suspected == len(suspects)


def test_noise_estimate_rises_with_injected_noise(
        german: pd.DataFrame, config: PipelineConfig, kind: str,
        noisy_result: ErrorAnalysis) -> None:
    clean = run_error_analysis(german, with_kind(config, kind), champion=None, folds=5, seed=0,
                               epochs=30, device="cpu")
    assert clean.estimated_noise_rate is not None and noisy_result.estimated_noise_rate is not None
    assert noisy_result.estimated_noise_rate >= clean.estimated_noise_rate + NOISE_RISE_FLOOR


def test_samples_are_sorted_by_loss_and_carry_per_sample_values(
        noisy_result: ErrorAnalysis, flipped: tuple[pd.DataFrame, np.ndarray]) -> None:
    samples = noisy_result.samples
    assert len(samples) == len(flipped[0])
    assert samples["loss"].is_monotonic_decreasing
    np.testing.assert_allclose(samples["loss"], -np.log(samples["self_confidence"]), rtol=1e-9)
    assert ((samples["confidence"] >= 0.5) & (samples["confidence"] <= 1.0)).all()
    assert samples["row_id"].tolist() == samples["position"].tolist()  # no id column: positions
    labels = flipped[0]["risk"].to_numpy()[samples["position"].to_numpy()]
    assert samples["label"].tolist() == labels.tolist()


def test_summaries_per_class_and_per_sensitive_group(noisy_result: ErrorAnalysis) -> None:
    assert [c.label for c in noisy_result.per_class] == [0, 1]
    assert sum(c.n_suspected for c in noisy_result.per_class) == noisy_result.n_suspected
    assert all(c.threshold is not None and 0 < c.threshold < 1 for c in noisy_result.per_class)
    groups = {(g.column, g.value): g for g in noisy_result.per_group}
    assert set(groups) == {("sex", "female"), ("sex", "male")}
    assert sum(g.n_rows for g in groups.values()) == noisy_result.n_rows
    assert sum(g.n_suspected for g in groups.values()) == noisy_result.n_suspected
    json.dumps(noisy_result.to_dict())


def test_confident_learning_on_a_hand_made_example(config: PipelineConfig) -> None:
    # t_0 = mean(.9,.8,.85,.9,.1) = .71 and t_1 = .83: row 4 is labeled 0 but confidently 1;
    # rows 8 and 9 are unsure (below both thresholds) and must not be flagged.
    p1 = np.array([.1, .2, .15, .1, .9, .9, .8, .9, .85, .7])
    proba = np.column_stack([1 - p1, p1])
    df = pd.DataFrame({"risk": [0] * 5 + [1] * 5, "sex": ["f", "m"] * 5})
    result = analyze(df, proba, [0, 1], config)
    assert result.suspects["position"].tolist() == [4]
    assert result.estimated_noise_rate == pytest.approx(0.1)
    assert [c.threshold for c in result.per_class] == pytest.approx([0.71, 0.83])
    assert result.samples["position"].iloc[0] == 4  # highest loss first


def test_pruning_never_flags_a_row_still_predicted_as_its_label(
        config: PipelineConfig) -> None:
    # Class 0: four sure rows, one confidently 1 (row 4) and four unsure rows (p1 = .45).
    # t_0 = .6556, so the calibrated joint spreads the unsure rows like the confident ones:
    # C[0, 1] = 1 * 9/5 = 1.8 -> two rows to prune, but the runner-up is still predicted 0.
    p1 = np.array([.1] * 4 + [.9] + [.45] * 4 + [.9] * 4)
    df = pd.DataFrame({"risk": [0] * 9 + [1] * 4})
    result = analyze(df, np.column_stack([1 - p1, p1]), [0, 1], config)
    assert result.suspects["position"].tolist() == [4]
    assert result.estimated_noise_rate == pytest.approx(1.8 / 13)


def pure_noise(rows: int, **sections: Any) -> tuple[pd.DataFrame, PipelineConfig]:
    """Random labels on random features: a model memorises them in sample and nothing else,
    so chance-level accuracy of a scorer shows that no row leaked into its training."""
    rng = np.random.default_rng(0)
    columns = [f"x{i}" for i in range(6)]
    df = pd.DataFrame(rng.normal(size=(rows, 6)), columns=columns).assign(
        y=rng.integers(0, 2, rows))
    config = parse_config({"name": "noise", "dataset": {"label": "y",
                                                        "features": {"numeric": columns}},
                           **sections})
    return df, config


def in_sample_accuracy(df: pd.DataFrame, config: PipelineConfig) -> float:
    model = fit(df, config, epochs=100, learning_rate=0.01, seed=0, device="cpu").model
    return float((model.predict_proba(df).argmax(axis=1) == df["y"]).mean())


@pytest.mark.parametrize("kind", KINDS)
def test_cross_fitting_never_scores_a_row_with_a_model_that_trained_on_it(kind: str) -> None:
    df, config = pure_noise(200, analysis={"cross_fit_model": kind})
    assert in_sample_accuracy(df, config) > 0.85  # ~95%: what a leak would look like
    out_of_fold = out_of_sample(df, config, champion=None, folds=5, epochs=100,
                                learning_rate=0.01, seed=0, device="cpu").proba
    assert (out_of_fold.argmax(axis=1) == df["y"]).mean() < 0.65


def champion_alone(config: PipelineConfig) -> PipelineConfig:
    return config.model_copy(update={
        "analysis": config.analysis.model_copy(update={"champion_blend_epochs": 0})})


def test_champion_alone_scores_the_new_batch(german: pd.DataFrame,
                                             config: PipelineConfig) -> None:
    alone = champion_alone(config)
    champion = fit(german.iloc[:600], alone, epochs=5, seed=0, device="cpu").model
    batch = german.iloc[600:]
    scored = out_of_sample(batch, alone, champion=champion)
    np.testing.assert_array_equal(scored.proba, champion.predict_proba(batch))
    assert scored.source == "champion" and scored.models == (champion,)
    result = run_error_analysis(batch, alone, champion=champion)
    assert not result.skipped and result.n_rows == len(batch) and result.source == "champion"


def test_the_champion_is_averaged_with_a_short_cross_fit(german: pd.DataFrame,
                                                         config: PipelineConfig) -> None:
    # the blend's fold models are MLPs whatever analysis.cross_fit_model says
    champion = fit(german.iloc[:600], config, epochs=5, seed=0, device="cpu").model
    batch = german.iloc[600:]
    scored = out_of_sample(batch, config, champion=champion, seed=0, device="cpu")
    epochs = config.analysis.champion_blend_epochs
    short = out_of_sample(batch, with_kind(config, "mlp"), champion=None, seed=0,
                          epochs=epochs, device="cpu")
    np.testing.assert_allclose(scored.proba, (champion.predict_proba(batch) + short.proba) / 2,
                               rtol=1e-6)
    assert scored.source == f"champion+cross_fit:5x{epochs}" and scored.models == (champion,)
    # too few rows to cross-fit: the champion alone
    few = out_of_sample(batch.head(3), config, champion=champion)
    assert few.source == "champion"


def test_champion_blend_finds_flipped_labels(german: pd.DataFrame,
                                             config: PipelineConfig) -> None:
    # the bench's champion protocol: a champion trained on 500 clean rows, 10% flips in
    # the other 500
    order = np.random.default_rng(1000).permutation(len(german))
    champion = fit(german.iloc[order[:500]], config, seed=0, device="cpu").model
    batch = german.iloc[order[500:]].reset_index(drop=True)
    rows = np.random.default_rng(0).choice(len(batch), size=50, replace=False)
    batch.loc[rows, "risk"] = 1 - batch.loc[rows, "risk"]
    result = run_error_analysis(batch, config, champion=champion, seed=0, device="cpu")
    suspects = set(result.suspects["position"].tolist())
    found = len(suspects & set(rows.tolist()))
    assert result.source.startswith("champion+cross_fit")
    assert found / 50 >= RECALL_FLOOR, f"recall {found / 50:.2f}"
    assert found / len(suspects) >= PRECISION_FLOOR, f"precision {found / len(suspects):.2f}"


def test_the_champion_blend_stays_out_of_sample() -> None:
    df, config = pure_noise(400, training={"epochs": 100}, analysis={"champion_blend_epochs": 100})
    batch = df.iloc[200:]
    assert in_sample_accuracy(batch, config) > 0.85  # a fold model that saw its rows
    champion = fit(df.iloc[:200], config, learning_rate=0.01, seed=0, device="cpu").model
    blended = out_of_sample(batch, config, champion=champion, learning_rate=0.01, seed=0,
                            device="cpu")
    assert blended.source == "champion+cross_fit:5x100"
    assert (blended.proba.argmax(axis=1) == batch["y"]).mean() < 0.65


def test_scoring_in_small_batches_gives_the_same_probabilities(
        german: pd.DataFrame) -> None:
    config = make_config().model_copy(update={
        "analysis": make_config().analysis.model_copy(update={"scoring_batch_size": 7,
                                                              "champion_blend_epochs": 0})})
    champion = fit(german.iloc[:600], config, epochs=2, seed=0, device="cpu").model
    batch = german.iloc[600:]
    np.testing.assert_allclose(out_of_sample(batch, config, champion=champion).proba,
                               champion.predict_proba(batch), rtol=1e-6)


@pytest.mark.parametrize(("kind", "source"), [("mlp", "cross_fit:4"),
                                              ("boosted_trees", "cross_fit:4:boosted_trees")])
def test_each_fold_model_scores_only_its_held_out_rows(
        german: pd.DataFrame, config: PipelineConfig, kind: str, source: str) -> None:
    batch = german.head(100)
    scored = out_of_sample(batch, with_kind(config, kind), champion=None, folds=4, seed=0,
                           epochs=2, device="cpu")
    assert scored.source == source and len(scored.models) == 4
    assert np.bincount(scored.model_of_row).tolist() == [25, 25, 25, 25]
    for fold, model in enumerate(scored.models):
        rows = np.flatnonzero(scored.model_of_row == fold)
        np.testing.assert_allclose(scored.proba[rows],
                                   model.predict_proba(batch.iloc[rows]), rtol=1e-6)


def test_a_label_the_champion_has_no_class_for_is_an_input_error(
        german: pd.DataFrame, config: PipelineConfig) -> None:
    champion = fit(german.iloc[:300], config, epochs=1, seed=0, device="cpu").model
    batch = german.iloc[300:400].copy()
    batch.loc[batch.index[:3], "risk"] = 5
    with pytest.raises(InputError, match=r"column 'risk' breaks rule 'label in classes \[0, 1\]'"):
        run_error_analysis(batch, config, champion=champion)


@pytest.mark.parametrize("kind", KINDS)
def test_a_class_rarer_than_the_folds_still_gets_a_column(
        german: pd.DataFrame, config: PipelineConfig, kind: str) -> None:
    batch = german.head(200).copy()
    batch.loc[[3, 7], "risk"] = 2
    proba = out_of_sample(batch, with_kind(config, kind), champion=None, folds=5, seed=0,
                          epochs=2, device="cpu").proba
    assert proba.shape == (200, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_a_class_in_fewer_rows_than_folds_is_cross_fitted(
        german: pd.DataFrame, config: PipelineConfig, kind: str) -> None:
    # two rows of class 1: three of the five training folds hold class 0 only
    batch = german.head(100).assign(risk=0)
    batch.loc[[10, 60], "risk"] = 1
    result = run_error_analysis(batch, with_kind(config, kind), champion=None, folds=5, seed=0,
                                epochs=2, device="cpu")
    assert not result.skipped and result.n_rows == 100
    # the two rows no fold model can learn well are among the highest losses
    assert {10, 60} <= set(result.samples["position"].head(10))


def test_id_column_names_the_rows(german: pd.DataFrame) -> None:
    config = make_config(id="loan_id")
    df = german.head(40).assign(loan_id=[f"L{i:03d}" for i in range(40)])
    p1 = np.linspace(0.05, 0.95, 40)
    result = analyze(df, np.column_stack([1 - p1, p1]), [0, 1], config)
    assert sorted(result.samples["row_id"]) == sorted(df["loan_id"])
    with pytest.raises(InputError, match="column 'loan_id' breaks rule 'required id column'"):
        analyze(df.drop(columns=["loan_id"]), np.column_stack([1 - p1, p1]), [0, 1], config)


# --- bad input and skips -----------------------------------------------------------------


def test_label_not_in_classes_names_label_column_and_rule(config: PipelineConfig) -> None:
    df = pd.DataFrame({"risk": [0, 1, 7]})
    proba = np.full((3, 2), 0.5)
    with pytest.raises(InputError, match=r"column 'risk' breaks rule 'label in classes \[0, 1\]'"):
        analyze(df, proba, [0, 1], config)


def test_bad_probabilities_are_rejected(config: PipelineConfig) -> None:
    df = pd.DataFrame({"risk": [0, 1]})
    with pytest.raises(InputError, match="shape"):
        analyze(df, np.full((3, 2), 0.5), [0, 1], config)
    with pytest.raises(InputError, match="sum to 1"):
        analyze(df, np.array([[0.5, 0.6], [0.5, 0.5]]), [0, 1], config)


def test_single_class_batch_is_a_documented_skip(
        german: pd.DataFrame, config: PipelineConfig) -> None:
    good_only = german[german["risk"] == 1].head(50)
    cross_fit = run_error_analysis(good_only, config, champion=None, folds=5, device="cpu")
    assert cross_fit.skipped and cross_fit.estimated_noise_rate is None
    assert "single-class" in str(cross_fit.reason)
    direct = analyze(good_only, np.full((50, 2), 0.5), [0, 1], config)
    assert direct.skipped and direct.estimated_noise_rate is None
    assert direct.to_dict()["skipped"] is True


def test_fewer_rows_than_folds_is_a_documented_skip(
        german: pd.DataFrame, config: PipelineConfig) -> None:
    result = run_error_analysis(german.head(4), config, champion=None, folds=5, device="cpu")
    assert result.skipped and result.estimated_noise_rate is None
    assert result.reason == "fewer rows (4) than cross-fitting folds (5)"
