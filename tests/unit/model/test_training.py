"""Fine-tuning: loss goes down, warm starts start from the champion, seeds reproduce."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from aire.config import PipelineConfig, parse_config
from aire.errors import InputError
from aire.model.tabular import TrainedModel
from aire.model.training import TrainResult, fit
from tests.support.german import FEATURES, german_csv

GERMAN = german_csv()


def make_config(**dataset: object) -> PipelineConfig:
    return parse_config({"name": "credit-risk", "dataset": {
        "label": "risk", "features": FEATURES, "sensitive": ["sex"], **dataset}})


@pytest.fixture(scope="module")
def german() -> pd.DataFrame:
    return pd.read_csv(GERMAN)


@pytest.fixture(scope="module")
def config() -> PipelineConfig:
    return make_config()


@pytest.fixture(scope="module")
def champion(german: pd.DataFrame, config: PipelineConfig) -> TrainedModel:
    return fit(german.iloc[:700], config, epochs=30, seed=1, device="cpu").model


def weights_of(model: TrainedModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.net.state_dict().items()}


def test_loss_decreases_and_callback_sees_every_epoch(
        german: pd.DataFrame, config: PipelineConfig) -> None:
    seen: list[tuple[int, dict[str, float]]] = []
    result = fit(german, config, epochs=15, seed=0, device="cpu",
                 on_epoch=lambda epoch, metrics: seen.append((epoch, metrics)))
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0] - 0.1
    assert [epoch for epoch, _ in seen] == list(range(1, 16))
    assert seen[0][1]["train_loss"] == losses[0]
    assert result.epochs == 15 and result.n_rows == 1000 and result.device == "cpu"
    assert not result.warm_start


def test_to_dict_is_json_without_the_model(german: pd.DataFrame, config: PipelineConfig) -> None:
    result = fit(german.head(100), config, epochs=2, seed=0, device="cpu")
    data = json.loads(json.dumps(result.to_dict()))
    assert "model" not in data
    assert data["final_train_loss"] == result.history[-1]["train_loss"]
    assert set(data) >= {"device", "epochs", "history", "seconds", "n_rows", "warm_start"}


def test_same_seed_reproduces_to_the_bit_and_another_seed_differs(
        german: pd.DataFrame, config: PipelineConfig) -> None:
    runs = [fit(german, config, epochs=3, seed=seed, device="cpu") for seed in (7, 7, 8)]
    first, again, other = (weights_of(r.model) for r in runs)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert runs[0].history == runs[1].history
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_fit_does_not_disturb_the_callers_random_state(
        german: pd.DataFrame, config: PipelineConfig) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit(german.head(50), config, epochs=1, seed=0, device="cpu")
    assert torch.equal(torch.rand(3), expected)


def test_fit_restores_the_thread_count(german: pd.DataFrame, config: PipelineConfig) -> None:
    before = torch.get_num_threads()
    seen: list[int] = []
    fit(german.head(50), config, epochs=1, seed=0, device="cpu",
        on_epoch=lambda epoch, metrics: seen.append(torch.get_num_threads()))
    assert seen == [1]
    assert torch.get_num_threads() == before


def test_warm_start_begins_from_the_champions_weights(
        german: pd.DataFrame, config: PipelineConfig, champion: TrainedModel) -> None:
    before = weights_of(champion)
    new_batch = german.iloc[700:]
    warm = fit(new_batch, config, init_from=champion, epochs=3, seed=0, device="cpu")
    cold = fit(new_batch, config, epochs=3, seed=0, device="cpu")
    assert warm.warm_start
    assert warm.history[0]["train_loss"] < cold.history[0]["train_loss"] - 0.05
    # the champion's preprocessor and classes are reused; its own weights are left untouched
    assert warm.model.preprocessor is champion.preprocessor
    assert warm.model.classes == champion.classes
    after = weights_of(champion)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not all(torch.equal(before[k], v) for k, v in weights_of(warm.model).items())


def test_warm_start_puts_unseen_categories_in_the_unknown_slot(
        german: pd.DataFrame, config: PipelineConfig, champion: TrainedModel) -> None:
    batch = german.iloc[700:800].copy()
    batch.loc[batch.index[:10], "purpose"] = "crypto"
    result = fit(batch, config, init_from=champion, epochs=1, seed=0, device="cpu")
    assert result.model.preprocessor.input_dim == champion.preprocessor.input_dim
    assert np.isfinite(result.model.predict_proba(batch)).all()


def test_warm_start_rejects_an_incompatible_champion(
        german: pd.DataFrame, champion: TrainedModel) -> None:
    fewer = make_config(features={"numeric": ["age"], "categorical": ["housing"]})
    with pytest.raises(InputError, match=r"cannot warm start: config\.dataset\.features"):
        fit(german.head(50), fewer, init_from=champion, epochs=1, device="cpu")
    wider = parse_config({"name": "credit-risk", "model": {"hidden": [8]}, "dataset": {
        "label": "risk", "features": FEATURES}})
    with pytest.raises(InputError, match=r"cannot warm start: config\.model\.hidden"):
        fit(german.head(50), wider, init_from=champion, epochs=1, device="cpu")


def test_warm_start_rejects_a_label_the_champion_cannot_predict(
        german: pd.DataFrame, config: PipelineConfig, champion: TrainedModel) -> None:
    batch = german.head(20).copy()
    batch.loc[batch.index[0], "risk"] = 2
    with pytest.raises(InputError, match="column 'risk' breaks rule 'label in classes"):
        fit(batch, config, init_from=champion, epochs=1, device="cpu")


def test_unit_weights_equal_no_weights_and_skewed_weights_shift_predictions(
        german: pd.DataFrame, config: PipelineConfig) -> None:
    plain = fit(german, config, epochs=3, seed=0, device="cpu")
    ones = fit(german, config, epochs=3, seed=0, device="cpu", sample_weight=np.ones(len(german)))
    assert plain.history == ones.history
    favour_bad = np.where(german["risk"] == 0, 5.0, 1.0)
    skewed = fit(german, config, epochs=3, seed=0, device="cpu", sample_weight=favour_bad)
    p_bad_plain = plain.model.predict_proba(german)[:, 0].mean()
    p_bad_skewed = skewed.model.predict_proba(german)[:, 0].mean()
    assert p_bad_skewed > p_bad_plain + 0.1


@pytest.mark.parametrize("weights", [np.ones(3), -np.ones(1000), np.zeros(1000),
                                     np.full(1000, np.nan)])
def test_bad_sample_weight_is_an_input_error(
        german: pd.DataFrame, config: PipelineConfig, weights: np.ndarray) -> None:
    with pytest.raises(InputError, match="sample_weight"):
        fit(german, config, epochs=1, device="cpu", sample_weight=weights)


def test_bad_training_input_is_rejected(german: pd.DataFrame, config: PipelineConfig) -> None:
    with pytest.raises(InputError, match="no rows"):
        fit(german.head(0), config, epochs=1, device="cpu")
    with pytest.raises(InputError, match="column 'risk' breaks rule 'required label column'"):
        fit(german.drop(columns=["risk"]), config, epochs=1, device="cpu")
    one_class = german[german["risk"] == 1].head(50)
    with pytest.raises(InputError, match="at least two classes"):
        fit(one_class, config, epochs=1, device="cpu")
    with pytest.raises(InputError, match="epochs"):
        fit(german, config, epochs=0, device="cpu")


def test_explicit_classes_fix_the_output_layer(
        german: pd.DataFrame, config: PipelineConfig) -> None:
    result = fit(german.head(50), config, epochs=1, device="cpu", classes=[0, 1, 2])
    assert result.model.predict_proba(german.head(5)).shape == (5, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fit_on_cuda(german: pd.DataFrame, config: PipelineConfig) -> None:
    result: TrainResult = fit(german, config, epochs=5, seed=0, device="cuda")
    assert result.device.startswith("cuda")
    assert result.model.device.type == "cuda"
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    proba = result.model.predict_proba(german)
    assert proba.shape == (len(german), 2) and np.isfinite(proba).all()
