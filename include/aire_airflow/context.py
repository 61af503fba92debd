"""An Airflow task context turned into the library's arguments, and results into task logs."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aire_airflow.connections import mlflow_credentials, s3_settings, signing_keys

if TYPE_CHECKING:
    from aire.pipeline.run_context import RunSpec

log = logging.getLogger(__name__)



def run_spec(context: Any) -> RunSpec:
    """The run as the library sees it: Params (or the landed batch that scheduled the run)
    plus the DAG run id as the run key."""
    import os

    from aire.config import load_config
    from aire.pipeline.run_context import RunSpec

    params = context["params"]
    config = load_config(params["config"])
    mlflow_credentials(os.environ.get("AIRE_MLFLOW_CONN_ID"))
    return RunSpec(
        config_path=params["config"], batch_uri=batch_uri(context), run_key=context["run_id"],
        epochs=params.get("epochs"), learning_rate=params.get("learning_rate"),
        s3=s3_settings(config.storage.aws_conn_id, config.storage.endpoint_url, config.storage.region),
        keys=signing_keys(config.signing.conn_id),
    )


def batch_uri(context: Any) -> str:
    """The batch a run trains on.

    A ``batch`` given when the run was triggered wins; a run that asset events scheduled
    takes the newest landed batch among them (Airflow folds the events since the last run
    into one run); otherwise the Param's default.
    """
    params = context["params"]
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    if conf.get("batch"):
        return str(params["batch"])
    events = context.get("triggering_asset_events") or {}
    landed = [event for found in events.values() for event in found if (event.extra or {}).get("batch")]
    if landed:
        return str(max(landed, key=lambda event: event.timestamp).extra["batch"])
    return str(params["batch"])


def log_decision(decision: dict[str, Any]) -> None:
    """Show the gate's decision record in the task log, one line per check."""
    verdict = "PROMOTE" if decision.get("promote") else "REJECT"
    lines = [f"gate decision: {verdict}"]
    for check in decision.get("checks", []):
        mark = "pass" if check.get("passed") else "FAIL"
        lines.append(f"  [{mark}] {check.get('name')}: value={check.get('value')} "
                     f"threshold={check.get('threshold')} {check.get('reason') or ''}".rstrip())
    log.info("\n".join(lines))
