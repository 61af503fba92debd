"""Where an SLO's history comes from, and the SLO status now: the I/O around ``aire.reliability.slo``.

The pipeline's MLflow experiment ``aire/<pipeline>`` holds one run per pipeline run (tags
and the evaluation report); the incident store adds failures whose run never reached MLflow.
``aire.reliability.slo`` computes from the ``History`` built here and does no I/O itself.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aire.config import PipelineConfig, SliKind
from aire.constants import TAG_BATCH_LANDED_AT, TAG_GATE, TAG_RUN_KEY
from aire.home import Home
from aire.incidents.types import RUN_FAILURE_KINDS, Incident
from aire.reliability.slo import History, RunRecord, SloReport, evaluate_all


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
    key = tags.get(TAG_RUN_KEY, info.run_id)
    landed_tag = tags.get(TAG_BATCH_LANDED_AT)
    landed = datetime.fromisoformat(landed_tag) if landed_tag else _time(info.start_time)
    ended = _time(info.end_time) if info.end_time else None
    gate = tags.get(TAG_GATE)
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
