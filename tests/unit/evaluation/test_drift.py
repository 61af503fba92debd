"""Drift of a batch against the reference: real Evidently, plus null rates and new categories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aire.config import PipelineConfig
from aire.errors import DataValidationError
from aire.evaluation.drift import DriftResult, drift
from tests.support.german import CATEGORICAL, NUMERIC


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




def test_evidently_sees_a_sample_of_a_large_batch_and_every_other_check_every_row(
        german: pd.DataFrame, config: PipelineConfig, tmp_path: Path) -> None:
    capped = config.model_copy(update={"evaluation": config.evaluation.model_copy(update={"drift_report_rows": 400})})
    current = german.copy()
    current["age"] = current["age"] + 20  # drift Evidently must still see in its sample
    current.loc[: len(current) * 3 // 10 - 1, "duration"] = np.nan

    result = drift(german, current, capped, tmp_path)

    assert result.report_rows == {"reference": 400, "current": 400}
    assert result.feature_tests["age"].reference_rows == len(german) == result.n_reference
    assert result.null_rate_change["duration"].change == pytest.approx(0.3)  # every row, not the sample's
    assert {"age", "duration"} <= set(result.drifted_columns)
    again = drift(german, current, capped, tmp_path / "again")  # a seeded sample: the same verdicts
    assert again.per_feature == result.per_feature


def test_a_batch_under_the_cap_is_reported_whole(same_population: DriftResult, german: pd.DataFrame) -> None:
    assert same_population.report_rows == {"reference": len(german), "current": len(german)}
