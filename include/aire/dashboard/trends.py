"""Drift and quality over time: one point per run folder, oldest first.

The values are what the run's own files recorded: the evaluation's drift share, the
candidate's accuracy and fairness gap, and the error analysis' noise estimate. A run that
did not get that far (validation refused the batch) has no point for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aire.dashboard.runs import RunSummary, read_json
from aire.home import RunLayout

TREND_METRICS = ("drift_share", "noise_rate", "accuracy", "fairness_gap")


@dataclass(frozen=True)
class TrendPoint:
    run: RunSummary
    values: dict[str, float | None]  # TREND_METRICS -> value


def trend_point(run: RunSummary) -> TrendPoint:
    layout = RunLayout(run.folder)
    evaluation = read_json(layout.evaluation) or {}
    analysis = read_json(layout.analysis_summary) or {}
    return TrendPoint(run, {
        "drift_share": _number(evaluation, "drift", "drift_share"),
        "noise_rate": _number(analysis, "estimated_noise_rate"),
        "accuracy": _number(evaluation, "quality", "candidate", "accuracy"),
        "fairness_gap": _number(evaluation, "fairness", "candidate", "max_gap"),
    })


def trend(runs: list[RunSummary]) -> list[TrendPoint]:
    """``runs`` in any order -> points oldest first."""
    return [trend_point(r) for r in sorted(runs, key=lambda r: r.modified)]


def _number(record: dict[str, Any], *path: str) -> float | None:
    value: Any = record
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
