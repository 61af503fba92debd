"""Data drift of a batch against the champion's training reference (Evidently).

``drift`` compares the new batch with the reference the champion was trained on. Evidently
drops missing values before it tests a column, so a column that went half-empty looks
unchanged to it; the null-rate change and unseen categories are therefore computed here,
and a null rate that rose by more than ``gates.max_null_rate_increase`` counts as drift.
A column with no values at all on either side cannot be tested: it counts as drifted and
is listed in ``untestable_columns``, which the gate reads as incomplete drift evidence.
Beside Evidently's verdicts, every testable feature gets a native two-sample test
(``aire.evaluation.two_sample``: effect size and p-value) for the gate's per-feature check.

On a large batch Evidently sees a seeded uniform sample of ``evaluation.drift_report_rows``
rows per side (its power is stated with that setting); null rates, unseen categories and
the per-feature tests are computed here on every row, in a fraction of Evidently's time.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aire import atomic
from aire.config import PipelineConfig
from aire.constants import DRIFT_HTML, DRIFT_JSON
from aire.errors import AireError, DataValidationError
from aire.evaluation.two_sample import FeatureTest, categorical_test, numeric_test, value_key

__all__ = ["ColumnDrift", "DriftResult", "NullRate", "drift"]


@dataclass(frozen=True)
class ColumnDrift:
    method: str
    score: float | None
    threshold: float | None
    drifted: bool
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "score": _finite_or_none(self.score), "threshold": self.threshold,
                "drifted": self.drifted, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class NullRate:
    reference: float
    current: float

    @property
    def change(self) -> float:
        return self.current - self.reference

    def to_dict(self) -> dict[str, float]:
        return {"reference": self.reference, "current": self.current, "change": self.change}


@dataclass(frozen=True)
class DriftResult:
    drift_share: float  # drifted feature columns / feature columns, null-rate flags included
    drifted_columns: tuple[str, ...]
    per_feature: dict[str, ColumnDrift]
    null_rate_change: dict[str, NullRate]
    new_categories: dict[str, tuple[str, ...]]
    evidently_drift_share: float | None  # Evidently's own share, over the columns it could test
    n_reference: int
    n_current: int
    files: dict[str, str] = field(default_factory=dict)
    # Columns with no values on one side: counted as drifted, but their drift is unmeasured,
    # so the gate treats the drift evidence as incomplete and rejects.
    untestable_columns: tuple[str, ...] = ()
    # Each testable feature's own two-sample test (effect size, p-value); the gate applies
    # the family-wise correction over the features and the effect floor.
    feature_tests: dict[str, FeatureTest] = field(default_factory=dict)
    # Rows per side Evidently's report saw (a sample above evaluation.drift_report_rows).
    report_rows: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "drift_share": self.drift_share,
            "drifted_columns": list(self.drifted_columns),
            "per_feature": {col: d.to_dict() for col, d in self.per_feature.items()},
            "null_rate_change": {col: r.to_dict() for col, r in self.null_rate_change.items()},
            "new_categories": {col: list(v) for col, v in self.new_categories.items()},
            "evidently_drift_share": self.evidently_drift_share,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "files": dict(self.files),
            "untestable_columns": list(self.untestable_columns),
            "feature_tests": {col: t.to_dict() for col, t in self.feature_tests.items()},
            "report_rows": dict(self.report_rows),
        }


def drift(reference: pd.DataFrame, current: pd.DataFrame, config: PipelineConfig, out_dir: Path, *,
          reference_name: str = "reference", current_name: str = "current batch") -> DriftResult:
    """Drift of ``current`` against ``reference`` on the config's feature columns.

    Writes ``drift.html`` and ``drift.json`` (Evidently's snapshot) into ``out_dir``.
    Raises DataValidationError for an empty frame, a missing feature column, or a numeric
    feature that is not numeric or holds infinities.
    """
    numeric = list(config.dataset.features.numeric)
    categorical = list(config.dataset.features.categorical)
    features = [*numeric, *categorical]
    for frame, name in ((reference, reference_name), (current, current_name)):
        _check_drift_input(frame, name, numeric, features)

    null_rates = {c: NullRate(_null_rate(reference[c]), _null_rate(current[c])) for c in features}
    new_categories = {c: _unseen_values(reference[c], current[c]) for c in categorical}

    # Evidently refuses a column with no values at all; such a column is drift by definition.
    per_feature: dict[str, ColumnDrift] = {}
    testable = [c for c in features if reference[c].notna().any() and current[c].notna().any()]
    for column in features:
        if column not in testable:
            empty_in = current_name if current[column].isna().all() else reference_name
            per_feature[column] = ColumnDrift(f"no values in {empty_in}", None, None, True,
                                              (f"all values missing in {empty_in}",))

    out_dir.mkdir(parents=True, exist_ok=True)
    evidently_share: float | None = None
    cap = config.evaluation.drift_report_rows
    shown_reference, shown_current = _sample(reference, cap), _sample(current, cap)
    if testable:
        snapshot_json, evidently_share, tested = _run_evidently(shown_reference, shown_current, numeric,
                                                                categorical, testable, out_dir)
        per_feature.update(tested)
    else:
        snapshot_json = json.dumps({"metrics": [], "tests": [], "note": "no column had values to test"})
        atomic.write_text(out_dir / DRIFT_HTML, "<!doctype html><title>drift</title>"
                                                   "<p>No feature column had values to test.</p>")
    atomic.write_text(out_dir / DRIFT_JSON, snapshot_json)

    limit = config.gates.max_null_rate_increase
    for column, rate in null_rates.items():
        if rate.change > limit and column in testable:
            old = per_feature[column]
            reason = f"null rate rose by {rate.change:.3f} (> {limit})"
            per_feature[column] = ColumnDrift(old.method, old.score, old.threshold, True, (*old.reasons, reason))

    tests = {c: (numeric_test if c in numeric else categorical_test)(reference[c], current[c])
             for c in features if c in testable}
    ordered = {c: per_feature[c] for c in features}
    drifted = tuple(c for c, d in ordered.items() if d.drifted)
    return DriftResult(
        drift_share=len(drifted) / len(features), drifted_columns=drifted, per_feature=ordered,
        null_rate_change=null_rates, new_categories={c: v for c, v in new_categories.items() if v},
        evidently_drift_share=evidently_share, n_reference=len(reference), n_current=len(current),
        files={"drift_html": str(out_dir / "drift.html"), "drift_json": str(out_dir / "drift.json")},
        untestable_columns=tuple(c for c in features if c not in testable),
        feature_tests=tests,
        report_rows={"reference": len(shown_reference), "current": len(shown_current)},
    )


def _sample(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    """At most ``rows`` rows (0: all), drawn uniformly with a fixed seed: the same batch gives
    the same report, and the sample keeps the batch's own mix of rows."""
    if rows == 0 or len(frame) <= rows:
        return frame
    return frame.sample(n=rows, random_state=0)


def _check_drift_input(frame: pd.DataFrame, name: str, numeric: Sequence[str], features: Sequence[str]) -> None:
    if len(frame) == 0:
        raise DataValidationError(name, None, "row count >= 1", "no rows to compare")
    for column in features:
        if column not in frame.columns:
            raise DataValidationError(name, column, "column present", "feature column missing")
    for column in numeric:
        values = frame[column]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise DataValidationError(name, column, "numeric dtype", f"dtype is {values.dtype}")
        infinite = int(np.isinf(values.to_numpy(dtype=np.float64, na_value=np.nan)).sum())
        if infinite:
            raise DataValidationError(name, column, "finite values", f"{infinite} infinite value(s)")


def _run_evidently(reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str],
                   categorical: list[str], columns: list[str],
                   out_dir: Path) -> tuple[str, float | None, dict[str, ColumnDrift]]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=[c for c in numeric if c in columns],
                                categorical_columns=[c for c in categorical if c in columns])
    with warnings.catch_warnings():
        # Evidently's histograms divide by zero on constant columns; the tests are unaffected.
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = Report([DataDriftPreset(columns=columns)], include_tests=True).run(
            Dataset.from_pandas(current[columns].reset_index(drop=True), data_definition=definition),
            Dataset.from_pandas(reference[columns].reset_index(drop=True), data_definition=definition),
        )
        snapshot_json = snapshot.json()  # dict() holds TestStatus enums; json() is JSON-safe
        with atomic.replacing(out_dir / DRIFT_HTML) as staged:
            snapshot.save_html(str(staged))
    record = json.loads(snapshot_json)

    scores: dict[str, float] = {}
    share: float | None = None
    for metric in record.get("metrics", []):
        kind = metric.get("config", {}).get("type", "")
        if kind.endswith(":ValueDrift"):
            scores[metric["config"]["column"]] = float(metric["value"])
        elif kind.endswith(":DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    # The per-column test says whether the score crossed the method's threshold: for a
    # p-value below it, for a distance above it. Reading the verdict avoids redoing that.
    tested: dict[str, ColumnDrift] = {}
    for test in record.get("tests", []):
        params = test.get("metric_config", {}).get("params", {})
        if not str(params.get("type", "")).endswith(":ValueDrift"):
            continue
        column = params["column"]
        drifted = test["status"] == "FAIL"
        tested[column] = ColumnDrift(str(params.get("method")), scores.get(column), params.get("threshold"),
                                     drifted, ("distribution changed",) if drifted else ())
    missing = sorted(set(columns) - set(tested))
    if missing:
        raise AireError(f"Evidently's report has no drift verdict for column(s) {missing}")
    return snapshot_json, share, tested


def _null_rate(values: pd.Series) -> float:
    return float(values.isna().mean())


def _unseen_values(reference: pd.Series, current: pd.Series) -> tuple[str, ...]:
    known = {value_key(v) for v in reference.dropna().unique()}
    return tuple(sorted({value_key(v) for v in current.dropna().unique()} - known))


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
