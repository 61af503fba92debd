"""Service-level objectives over a pipeline's run history: SLIs, error budgets, burn rates.

Run history comes from two places. The MLflow experiment ``aire/<pipeline>`` has one run
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
breach, and ``check_slos`` opens an incident for it.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aire.config import BurnWindow, Objective, PipelineConfig, SliKind, Slo
from aire.home import Home
from aire.incidents.types import RUN_FAILURE_KINDS, Incident


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
class History:
    runs: tuple[RunRecord, ...]
    born: datetime | None  # the pipeline's first run: no freshness debt before it

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
        good = value >= threshold if sli is SliKind.QUALITY else value <= threshold
        found.append(Event(when, good, value))
    return sorted(found, key=lambda e: e.time)


def stale_intervals(history: History, max_age: float, now: datetime) -> list[tuple[datetime, datetime]]:
    """When the last promotion (or the pipeline's birth) was more than ``max_age`` old."""
    if history.born is None:
        return []
    anchors = sorted({history.born, *(p for p in history.promotions if p >= history.born)})
    ends = [*anchors[1:], now]
    return [(start + timedelta(seconds=max_age), end) for start, end in zip(anchors, ends)
            if start + timedelta(seconds=max_age) < end]


def evaluate(objective: Objective, slo: Slo, history: History, now: datetime) -> ObjectiveReport:
    window = objective.window or slo.window
    if objective.sli is SliKind.FRESHNESS:
        assert objective.threshold is not None  # the config guarantees it
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


def slo_status(config: PipelineConfig, home: Home | None = None,
               now: datetime | None = None) -> SloReport:
    """Every objective of the pipeline, now; also sets the SLO gauges (``aire.telemetry``)."""
    from aire.incidents.store import IncidentStore
    from aire.telemetry import get_telemetry

    home = home or Home.from_env()
    now = now or datetime.now(UTC)
    slo = config.slo
    # Freshness needs the promotion before its window too: look back one threshold more.
    lookback = max([o.window or slo.window for o in slo.objectives] + [slo.window]) + max(
        [o.threshold or 0.0 for o in slo.objectives if o.sli is SliKind.FRESHNESS], default=0.0)
    since = now - timedelta(seconds=lookback)
    with IncidentStore(home.incidents_db_url) as store:
        incidents = store.list(pipeline=config.name, since=since)
    history = history_from_mlflow(home.mlflow_tracking_uri, config.name, since, incidents)
    report = evaluate_all(config, history, now)
    get_telemetry().record_slo(report)
    return report


# --- where the history comes from ---------------------------------------------------------
def history_from_mlflow(tracking_uri: str, pipeline: str, since: datetime,
                        incidents: Sequence[Incident]) -> History:
    """Runs of ``aire/<pipeline>`` started since ``since``, plus failures from incidents."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(f"aire/{pipeline}")
    runs: list[Any] = []
    born: datetime | None = None
    if experiment is not None:
        ids = [experiment.experiment_id]
        first = client.search_runs(ids, order_by=["attributes.start_time ASC"], max_results=1)
        born = _time(first[0].info.start_time) if first else None
        runs = list(client.search_runs(
            ids, f"attributes.start_time >= {int(since.timestamp() * 1000)}", max_results=50000))
    failed = {i.source.run_id: i.first_seen for i in sorted(incidents, key=lambda i: i.first_seen)
              if i.source.kind in RUN_FAILURE_KINDS and i.source.run_id}
    records = [r for r in (_record(client, run, failed) for run in runs) if r is not None]
    known = {r.run_key for r in records}
    records += [RunRecord(key, when, when, "failed") for key, when in failed.items()
                if key not in known and when >= since]
    if born is None and records:
        born = min(r.landed for r in records)
    return History(tuple(sorted(records, key=lambda r: r.landed)), born)


def _record(client: Any, run: Any, failed: dict[str, datetime]) -> RunRecord | None:
    tags, info = run.data.tags, run.info
    key = tags.get("aire.run_key", info.run_id)
    landed_tag = tags.get("aire.batch_landed_at")
    landed = datetime.fromisoformat(landed_tag) if landed_tag else _time(info.start_time)
    ended = _time(info.end_time) if info.end_time else None
    gate = tags.get("aire.gate")
    if gate in ("promote", "reject"):
        if gate == "promote" and info.status != "FINISHED":
            return RunRecord(key, landed, failed.get(key), "failed") if key in failed else None
        # After a promotion the candidate serves; after a rejection the champion stays,
        # judged on the same holdout rows (paths as aire.promotion.gate documents them).
        report = _evaluation(client, info.run_id)
        promoted = gate == "promote"
        accuracy = (_dig(report, "quality", "candidate", "accuracy") if promoted
                    else _dig(report, "quality", "comparison", "champion", "accuracy"))
        serving = "candidate" if promoted else "champion"
        return RunRecord(key, landed, ended, "promoted" if promoted else "rejected",
                         accuracy=accuracy, drift_share=_dig(report, "drift", "drift_share"),
                         fairness_gap=_dig(report, "fairness", serving, "max_gap"))
    if key in failed or info.status in ("FAILED", "KILLED"):
        return RunRecord(key, landed, failed.get(key, ended), "failed")
    return None  # still running


def _evaluation(client: Any, run_id: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="aire-slo-") as folder:
        try:
            path = client.download_artifacts(run_id, "evaluation/evaluation.json", folder)
            return dict(json.loads(Path(path).read_text()))
        except Exception:  # noqa: BLE001 - a missing report only leaves the SLIs it feeds empty
            return {}


def _dig(record: Any, *path: str) -> float | None:
    for key in path:
        record = record.get(key) if isinstance(record, dict) else None
    return float(record) if isinstance(record, (int, float)) and not isinstance(record, bool) \
        else None


def _time(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, tz=UTC)
