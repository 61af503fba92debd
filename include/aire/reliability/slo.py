"""Service-level objectives over a pipeline's run history: SLIs, error budgets, burn rates.

Pure: it computes from a ``History`` and does no I/O. ``aire.reliability.history`` builds the
history, from two places. The MLflow experiment ``aire/<pipeline>`` has one run
per pipeline run: its start time (when the batch landed, unless the run carries an
``aire.batch_landed_at`` ISO tag), end time, status, the ``aire.gate`` tag (promote or
reject) and the ``evaluation/evaluation.json`` artifact (drift share, both models' accuracy
and fairness gap on the batch's holdout). A run that crashed leaves its MLflow run RUNNING,
so failures come from the incident store: task, validation, signature and swept failures
whose source names the run.

Each objective is event-based (one event per run, good or bad) except ``freshness``, which
is time-based: the share of the window during which the last promotion was at most
``threshold`` old (the pipeline's first run starts the clock, like a promotion would).
Over a window, error rate = bad / total; the budget allows ``1 - target`` of it, so
budget remaining = 1 - error_rate / (1 - target), and burn rate = error_rate / (1 - target).
An alert fires when both its long and short windows burn at least ``factor`` times
(the SRE workbook's multi-window burn rate); a firing alert or an overspent budget is a
breach, and ``aire.reliability.breaches`` opens an incident for it (the sweep DAG's
``check_slos`` task).

Scored batches are a second source (``History.batches``, built by ``aire.scoring.monitor``
from each batch's summary): one event per batch for prediction drift, input drift, the
uncertain share and the ODD-violation rate, and ``scoring_freshness``, time-based like
``freshness`` with the last scored batch as its clock. ``aire_monitor`` evaluates those.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from aire.config import BurnWindow, Objective, PipelineConfig, SliKind, Slo


@dataclass(frozen=True)
class RunRecord:
    """One pipeline run as the SLIs see it; the metrics are those of the model serving after it."""

    run_key: str
    landed: datetime
    ended: datetime | None
    outcome: str  # promoted | rejected | failed
    accuracy: float | None = None
    drift_share: float | None = None
    fairness_gap: float | None = None


@dataclass(frozen=True)
class BatchRecord:
    """One scored batch as the monitoring SLIs see it (``aire.scoring.monitor`` reads its summary)."""

    batch_id: str
    scored: datetime
    prediction_drift: float | None = None
    input_drift: float | None = None
    confidence: float | None = None  # share of rows uncertain (below the learned confidence threshold)
    odd_violation_rate: float | None = None
    quality: float | None = None  # accuracy of the served predictions when the batch carries labels


# SLIs of scored batches; the rest are SLIs of retraining runs.
BATCH_SLIS = frozenset({SliKind.PREDICTION_DRIFT, SliKind.INPUT_DRIFT, SliKind.CONFIDENCE,
                        SliKind.ODD_VIOLATION_RATE, SliKind.SCORING_FRESHNESS, SliKind.SERVING_QUALITY})
# Higher is better for these; for every other threshold SLI lower is better.
_AT_LEAST = frozenset({SliKind.QUALITY, SliKind.SERVING_QUALITY})


@dataclass(frozen=True)
class History:
    runs: tuple[RunRecord, ...]
    born: datetime | None  # the pipeline's first run: no freshness debt before it
    batches: tuple[BatchRecord, ...] = ()  # scored batches, for the monitoring SLIs

    @property
    def first_scored(self) -> datetime | None:
        return min((b.scored for b in self.batches), default=None)

    @property
    def promotions(self) -> list[datetime]:
        return sorted(r.ended for r in self.runs if r.outcome == "promoted" and r.ended)


@dataclass(frozen=True)
class Event:
    time: datetime
    good: bool
    value: float | None = None


@dataclass(frozen=True)
class BurnReport:
    alert: str  # fast | slow
    long_seconds: float
    short_seconds: float
    factor: float
    long_rate: float
    short_rate: float

    @property
    def firing(self) -> bool:
        # isclose: 0.5 / (1 - 0.95) is 9.999999999999991 in floating point, and a rate
        # exactly at the factor must fire.
        return all(rate >= self.factor or math.isclose(rate, self.factor)
                   for rate in (self.long_rate, self.short_rate))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "firing": self.firing}


@dataclass(frozen=True)
class ObjectiveReport:
    name: str
    sli: str
    target: float
    threshold: float | None
    window_seconds: float
    current: float | None  # latest value (ratio for success_rate, age in s for freshness)
    good: float  # events, or seconds for freshness
    total: float
    budget_remaining: float
    burn: tuple[BurnReport, ...]
    status: str  # ok | breached | no_data
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "burn"},
                "error_rate": _ratio(self.total - self.good, self.total),
                "burn": [b.to_dict() for b in self.burn]}


@dataclass(frozen=True)
class SloReport:
    pipeline: str
    evaluated_at: datetime
    runs: int
    objectives: tuple[ObjectiveReport, ...]

    @property
    def breached(self) -> list[ObjectiveReport]:
        return [o for o in self.objectives if o.status == "breached"]

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "evaluated_at": self.evaluated_at.isoformat(),
                "runs": self.runs, "objectives": [o.to_dict() for o in self.objectives]}


# --- the math -----------------------------------------------------------------------------
def burn_rate(bad: float, total: float, target: float) -> float:
    """How many times faster than allowed the budget burns; 0 with nothing to judge."""
    return _ratio(bad, total) / (1 - target)


def budget_remaining(bad: float, total: float, target: float) -> float:
    """1 is untouched, 0 is spent exactly, below 0 is overspent."""
    return 1 - burn_rate(bad, total, target)


def events(sli: SliKind, threshold: float | None, history: History) -> list[Event]:
    """One event per run that speaks to the SLI (not for freshness, which is time-based)."""
    found: list[Event] = []
    if sli in BATCH_SLIS:
        for batch in history.batches:
            value = {SliKind.PREDICTION_DRIFT: batch.prediction_drift, SliKind.INPUT_DRIFT: batch.input_drift,
                     SliKind.CONFIDENCE: batch.confidence,
                     SliKind.ODD_VIOLATION_RATE: batch.odd_violation_rate,
                     SliKind.SERVING_QUALITY: batch.quality}.get(sli)
            if value is not None and threshold is not None:
                found.append(Event(batch.scored, value >= threshold if sli in _AT_LEAST else value <= threshold,
                                   value))
        return sorted(found, key=lambda e: e.time)
    for run in history.runs:
        when = run.ended or run.landed
        if sli is SliKind.SUCCESS_RATE:
            found.append(Event(when, run.outcome != "failed"))
            continue
        value = {SliKind.QUALITY: run.accuracy, SliKind.DRIFT_SHARE: run.drift_share,
                 SliKind.FAIRNESS_GAP: run.fairness_gap}.get(sli)
        if sli is SliKind.PROMOTION_LATENCY and run.outcome == "promoted" and run.ended:
            value = (run.ended - run.landed).total_seconds()
        if value is None or threshold is None:
            continue
        good = value >= threshold if sli in _AT_LEAST else value <= threshold
        found.append(Event(when, good, value))
    return sorted(found, key=lambda e: e.time)


def stale_intervals(history: History, max_age: float, now: datetime) -> list[tuple[datetime, datetime]]:
    """When the last promotion (or the pipeline's birth) was more than ``max_age`` old."""
    if history.born is None:
        return []
    anchors = sorted({history.born, *(p for p in history.promotions if p >= history.born)})
    ends = [*anchors[1:], now]
    return [(start + timedelta(seconds=max_age), end) for start, end in zip(anchors, ends, strict=True)
            if start + timedelta(seconds=max_age) < end]


def evaluate(objective: Objective, slo: Slo, history: History, now: datetime) -> ObjectiveReport:
    window = objective.window or slo.window
    if objective.sli in (SliKind.FRESHNESS, SliKind.SCORING_FRESHNESS):
        assert objective.threshold is not None  # the config guarantees it
        if objective.sli is SliKind.SCORING_FRESHNESS:  # the clock is the last scored batch, not promotion
            history = History(runs=tuple(RunRecord(b.batch_id, b.scored, b.scored, "promoted")
                                         for b in history.batches), born=history.first_scored)
        stale = stale_intervals(history, objective.threshold, now)

        def measure(seconds: float) -> tuple[float, float]:
            if history.born is None:
                return 0.0, 0.0  # no run yet: nothing to be fresh or stale about
            start = max(now - timedelta(seconds=seconds), history.born)
            total = max(0.0, (now - start).total_seconds())
            bad = sum(max(0.0, (min(e, now) - max(s, start)).total_seconds()) for s, e in stale)
            return bad, total

        last = history.promotions[-1] if history.promotions else None
        current = (now - last).total_seconds() if last else None
    else:
        found = events(objective.sli, objective.threshold, history)

        def measure(seconds: float) -> tuple[float, float]:
            start = now - timedelta(seconds=seconds)
            inside = [e for e in found if start < e.time <= now]
            return float(sum(not e.good for e in inside)), float(len(inside))

        in_window = [e for e in found if e.time > now - timedelta(seconds=window)]
        current = (_ratio(sum(e.good for e in in_window), len(in_window)) if in_window else None) \
            if objective.sli is SliKind.SUCCESS_RATE else (in_window[-1].value if in_window else None)
    bad, total = measure(window)
    burns = tuple(_burn(alert, spec, objective.target, measure)
                  for alert, spec in (("fast", slo.fast_burn), ("slow", slo.slow_burn)))
    remaining = budget_remaining(bad, total, objective.target)
    status, reason = _status(total, remaining, burns)
    return ObjectiveReport(objective.name, objective.sli.value, objective.target,
                           objective.threshold, window, current, total - bad, total,
                           remaining, burns, status, reason)


def evaluate_all(config: PipelineConfig, history: History, now: datetime) -> SloReport:
    reports = tuple(evaluate(o, config.slo, history, now) for o in config.slo.objectives)
    return SloReport(config.name, now, len(history.runs), reports)


def _burn(alert: str, spec: BurnWindow, target: float,
          measure: Callable[[float], tuple[float, float]]) -> BurnReport:
    return BurnReport(alert, spec.long, spec.short, spec.factor,
                      burn_rate(*measure(spec.long), target), burn_rate(*measure(spec.short), target))


def _status(total: float, remaining: float, burns: Sequence[BurnReport]) -> tuple[str, str]:
    if total <= 0:
        return "no_data", "no runs in the window"
    firing = [b for b in burns if b.firing]
    if firing:
        worst = firing[0]
        return "breached", (f"{worst.alert} burn: {worst.long_rate:.1f}x over "
                            f"{_span(worst.long_seconds)} and {worst.short_rate:.1f}x over "
                            f"{_span(worst.short_seconds)} (alert at {worst.factor:g}x)")
    if remaining < -1e-9:  # spent exactly (the SLI equals its target) is not a breach
        return "breached", f"error budget overspent ({remaining:.0%} left)"
    return "ok", f"{remaining:.0%} of the error budget left"


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
