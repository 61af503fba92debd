"""What every AIRE task shares: retries tied to the error type, and one incident per final failure."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aire_airflow.connections import notifier_channel, s3_settings

if TYPE_CHECKING:
    from aire.data.storage import ObjectStore

log = logging.getLogger(__name__)



def task_defaults(*, retry_delay_seconds: int = 10, max_retry_delay_minutes: int = 5) -> dict[str, Any]:
    """default_args every AIRE DAG shares: two retries with exponential backoff for
    transient trouble, none for bad input (``aire.errors.InputError``: a retry cannot fix
    it), and one incident per final failure."""
    from datetime import timedelta

    from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule

    return {
        "retries": 2,
        "retry_delay": timedelta(seconds=retry_delay_seconds),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=max_retry_delay_minutes),
        "retry_policy": ExceptionRetryPolicy(rules=[
            RetryRule(exception="aire.errors.InputError", action=RetryAction.FAIL,
                      reason="bad input: a retry cannot fix it"),
        ]),
        "on_failure_callback": on_task_failure,
    }


def on_task_failure(context: Any) -> None:
    """Failure callback: one incident per final failure; a bug here must not hide the failure.

    Airflow calls it only when the task ends FAILED, never for a try that will be retried.
    It never runs when the task's process is killed (OOM, SIGKILL): aire_incident_sweep
    finds those. Notifications go out through the connections ``notifier_channel`` reads.
    """
    from aire.incidents.sources import record_task_failure

    ti = context["ti"]
    params = dict(context.get("params") or {})
    try:
        outcome = record_task_failure(
            dag_id=ti.dag_id, run_id=context["run_id"], task_id=ti.task_id,
            try_number=int(ti.try_number), exception=context.get("exception"), params=params,
            log_url=getattr(ti, "log_url", None), resolver=notifier_channel,
            object_store=_postmortem_store(params),
        )
    except Exception:
        log.exception("could not record the incident for %s.%s", ti.dag_id, ti.task_id)
        return
    log.error("incident %(incident_id)s recorded; postmortem stub: %(postmortem)s", outcome)


def _postmortem_store(params: dict[str, Any]) -> ObjectStore | None:
    """The pipeline's object store when it has one (S3): postmortem stubs are copied there."""
    from aire.config import load_config
    from aire.data.storage import open_store
    from aire.home import Home

    try:
        storage = load_config(params["config"]).storage
        if storage.uri is None:
            return None
        return open_store(storage.uri, Home.from_env().store_dir,
                          s3_settings(storage.aws_conn_id, storage.endpoint_url, storage.region))
    except Exception as exc:  # noqa: BLE001 - the stub stays local; the incident is what matters
        log.warning("postmortem stub will stay local: no object store (%s)", exc)
        return None
