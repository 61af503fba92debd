"""The scoring and monitoring DAGs' side of the adapter: Params and Assets in, library calls out.

``aire_score`` emits the ``aire_scored`` Asset with the summary's location in the event's
extra; ``aire_monitor`` is scheduled on it (and a cron) and reads the summaries it names.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from aire_airflow.connections import mlflow_credentials, s3_settings, signing_keys

log = logging.getLogger(__name__)
SCORED_ASSET = "aire_scored"
FEEDBACK_ASSET = "aire_feedback"


def scored_asset() -> Any:
    """The Asset each scored batch updates (``AIRE_SCORED_URI``; a name Airflow can index)."""
    from airflow.sdk import Asset

    return Asset(name=SCORED_ASSET, uri=os.environ.get("AIRE_SCORED_URI") or "file:///aire/scored")


def feedback_asset() -> Any:
    """The Asset a labeled feedback batch updates; ``aire_retrain`` is scheduled on it too."""
    from airflow.sdk import Asset

    return Asset(name=FEEDBACK_ASSET, uri=os.environ.get("AIRE_FEEDBACK_URI") or "file:///aire/feedback")


def default_out(params: dict[str, Any], run_id: str) -> str:
    """Where a run's scores go when the ``out`` Param is empty: the home's scoring folder."""
    from aire.config import load_config
    from aire.home import Home
    from aire.scoring.score import scoring_dir

    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in run_id)
    name = load_config(params["config"]).name
    return str(scoring_dir(Home.from_env(), name) / "outputs" / safe / "scores.parquet")


def score_from_context(context: Any) -> dict[str, Any]:
    """Score the Params' batch; the summary's headline goes to XCom, the rest stays in files."""
    from aire.config import load_config
    from aire.home import Home
    from aire.incidents.store import dedup_key
    from aire.scoring.score import ScoreRequest, headline, score_batch

    params, ti = context["params"], context["ti"]
    config = load_config(params["config"])
    mlflow_credentials(os.environ.get("AIRE_MLFLOW_CONN_ID"))
    keys = signing_keys(config.signing.conn_id)
    request = ScoreRequest(
        config_path=params["config"], batch_uri=str(params["batch"]),
        out_uri=str(params.get("out") or default_out(params, context["run_id"])),
        batch_id=params.get("batch_id") or None,
        s3=s3_settings(config.storage.aws_conn_id, config.storage.endpoint_url, config.storage.region),
        public_key=keys.public if keys else None, by=f"dag:aire_score run {context['run_id']}",
        incident_key=dedup_key(ti.dag_id, context["run_id"], ti.task_id, int(ti.try_number)),
    )
    summary = score_batch(request, Home.from_env())
    result = headline(summary)
    log.info("scored %s rows: ODD %s; served by %s", summary["rows"], summary["odd"]["counts"],
             summary["served_by"]["source"])
    context["outlet_events"][scored_asset()].extra = {
        "pipeline": summary["pipeline"], "batch_id": summary["batch_id"], "summary_uri": summary["summary_uri"],
        "config": params["config"],
    }
    return result


def monitor_schedule() -> Any:
    """aire_monitor's schedule: each scored batch (the ``aire_scored`` Asset) and a cron
    (``AIRE_MONITOR_CRON``, UTC; hourly by default) so freshness is judged when nothing arrives."""
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    cron = os.environ.get("AIRE_MONITOR_CRON") or "0 * * * *"
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=[scored_asset()])


def monitored_configs(context: Any) -> list[str]:
    """The configs to monitor: those the triggering scored batches name, else the ``config`` Param."""
    events = context.get("triggering_asset_events") or {}
    named = sorted({str(e.extra["config"]) for found in events.values() for e in found
                    if (e.extra or {}).get("config")})
    return named or [str(context["params"]["config"])]


def monitor_from_context(context: Any) -> dict[str, Any]:
    from aire.scoring.monitor import monitor

    reports = {}
    for config in monitored_configs(context):
        report = monitor(config)
        breached = [o["name"] for o in report["objectives"] if o["status"] == "breached"]
        log.info("%s: %d batch(es) in the window; breached: %s; incidents: %s", report["pipeline"],
                 report["runs"], breached or "none", [i["incident_id"] for i in report["incidents"]])
        reports[report["pipeline"]] = {"batches": report["runs"], "breached": breached,
                                       "incidents": [i["incident_id"] for i in report["incidents"]]}
    return reports


def forward_feedback(context: Any, landing: Any) -> dict[str, Any] | None:
    """A labeled feedback batch (the ``feedback`` Param) announced on the landing Asset, which
    schedules ``aire_retrain`` on it; None (the task is skipped) when no feedback was given.

    The batch must be readable and carry the label column: a feedback batch without labels
    cannot retrain anything, and is refused here rather than in the retraining run.
    """
    from aire.config import load_config
    from aire.data.tables import read_table
    from aire.errors import DataValidationError

    params = context["params"]
    uri = str(params.get("feedback") or "")
    if not uri:
        return None
    config = load_config(params["config"])
    s3 = s3_settings(config.storage.aws_conn_id, config.storage.endpoint_url, config.storage.region)
    frame = read_table(uri, s3=s3)
    label = config.dataset.label
    if label not in frame.columns or frame[label].isna().all():
        raise DataValidationError(uri, label, "labeled feedback", "the feedback batch has no labels")
    announced = {"batch": uri, "kind": "feedback", "rows": len(frame), "config": params["config"]}
    context["outlet_events"][landing].extra = announced
    return announced
