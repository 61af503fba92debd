"""Turn an Airflow task context into the library's arguments, and failures into incidents."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aire.config import NotifyChannel
    from aire.keys import KeyPair
    from aire.notifiers import Channel
    from aire.run_context import RunSpec
    from aire.storage import ObjectStore, S3Settings

log = logging.getLogger(__name__)


def run_spec(context: Any) -> RunSpec:
    """The run as the library sees it: Params (or the landed batch that scheduled the run)
    plus the DAG run id as the run key."""
    import os

    from aire.config import load_config
    from aire.run_context import RunSpec

    params = context["params"]
    config = load_config(params["config"])
    mlflow_credentials(os.environ.get("AIRE_MLFLOW_CONN_ID"))
    return RunSpec(
        config_path=params["config"], batch_uri=batch_uri(context), run_key=context["run_id"],
        epochs=params.get("epochs"), learning_rate=params.get("learning_rate"),
        s3=s3_settings(config.storage.aws_conn_id, config.storage.endpoint_url, config.storage.region),
        keys=signing_keys(config.signing.conn_id),
    )


def signing_keys(conn_id: str | None) -> KeyPair | None:
    """The signing pair held by an Airflow connection (or the secrets backend behind it).

    Written for this task only to a private temporary folder; None keeps the home's pair.
    """
    if conn_id is None:
        return None
    import tempfile
    from pathlib import Path

    from aire.keys import keypair_from_pem
    from airflow.sdk import Connection

    conn = Connection.get(conn_id)
    extra = conn.extra_dejson or {}
    folder = Path(tempfile.mkdtemp(prefix="aire-keys-"))
    return keypair_from_pem(conn.password or None, extra.get("public_key"), folder)


def s3_settings(conn_id: str | None, endpoint_url: str | None, region: str | None) -> S3Settings | None:
    """S3 credentials from an Airflow connection (masked in logs by Airflow), else boto3's chain."""
    from aire.storage import S3Settings

    if conn_id is None:
        if endpoint_url is None and region is None:
            return None
        return S3Settings(endpoint_url=endpoint_url, region=region)
    from airflow.sdk import Connection

    conn = Connection.get(conn_id)
    extra = conn.extra_dejson or {}
    return S3Settings(
        endpoint_url=endpoint_url or extra.get("endpoint_url") or conn.host or None,
        access_key_id=conn.login or None,
        secret_access_key=conn.password or None,
        session_token=extra.get("aws_session_token"),
        region=region or extra.get("region_name"),
    )


def on_task_failure(context: Any) -> None:
    """Failure callback: one incident per final failure; a bug here must not hide the failure.

    Airflow calls it only when the task ends FAILED, never for a try that will be retried.
    It never runs when the task's process is killed (OOM, SIGKILL): aire_incident_sweep
    finds those. Notifications go out through the connections ``notifier_channel`` reads.
    """
    from aire.incident_hooks import record_task_failure

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


def notifier_channel(spec: NotifyChannel) -> Channel:
    """A config's notify channel with its URL and key read from its Airflow connection.

    The connection may live in the metadata DB, a secrets backend or an
    ``AIRFLOW_CONN_<ID>`` variable; Airflow masks its password in task logs.
    """
    from aire.errors import InputError
    from aire.notifiers import channel_from_connection
    from airflow.sdk import Connection

    try:
        conn = Connection.get(spec.conn_id)
    except Exception as exc:
        raise InputError(f"notify channel '{spec.label}': cannot read Airflow connection "
                         f"'{spec.conn_id}': {exc}") from exc
    return channel_from_connection(spec, host=conn.host, port=conn.port, schema=conn.schema,
                                   password=conn.password, extra=conn.extra_dejson or {})


def _postmortem_store(params: dict[str, Any]) -> ObjectStore | None:
    """The pipeline's object store when it has one (S3): postmortem stubs are copied there."""
    from aire.config import load_config
    from aire.home import Home
    from aire.storage import open_store

    try:
        storage = load_config(params["config"]).storage
        if storage.uri is None:
            return None
        return open_store(storage.uri, Home.from_env().store_dir,
                          s3_settings(storage.aws_conn_id, storage.endpoint_url, storage.region))
    except Exception as exc:  # noqa: BLE001 - the stub stays local; the incident is what matters
        log.warning("postmortem stub will stay local: no object store (%s)", exc)
        return None


def log_decision(decision: dict[str, Any]) -> None:
    """Show the gate's decision record in the task log, one line per check."""
    verdict = "PROMOTE" if decision.get("promote") else "REJECT"
    lines = [f"gate decision: {verdict}"]
    for check in decision.get("checks", []):
        mark = "pass" if check.get("passed") else "FAIL"
        lines.append(f"  [{mark}] {check.get('name')}: value={check.get('value')} "
                     f"threshold={check.get('threshold')} {check.get('reason') or ''}".rstrip())
    log.info("\n".join(lines))


# --- production stack: landed batches, queues, MLflow credentials --------------------------
LANDING_ASSET = "aire_landing"
BATCH_SUFFIXES = (".csv", ".parquet")


def landing_asset() -> Any:
    """The Asset a landed batch updates; its URI is the landing prefix (``AIRE_LANDING_URI``).

    Read when a DAG file is parsed, so the dag-processor's environment decides it.
    """
    import os

    from airflow.sdk import Asset

    return Asset(name=LANDING_ASSET, uri=os.environ.get("AIRE_LANDING_URI") or "s3://aire/landing/")


def retrain_schedule() -> Any:
    """aire_retrain's schedule: each landed batch, and a cron (``AIRE_RETRAIN_CRON``, UTC).

    A cron run has no landed batch of its own: it trains on the ``batch`` Param's default.
    """
    import os

    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    cron = os.environ.get("AIRE_RETRAIN_CRON") or "0 3 * * 1"
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone="UTC"),
                               assets=[landing_asset()])


def gpu_queue() -> str:
    """The Celery queue fine-tuning goes to (``AIRE_GPU_QUEUE``); other tasks stay on the default."""
    import os

    return os.environ.get("AIRE_GPU_QUEUE") or "default"


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


def landed_batch(landing_uri: str, conn_id: str | None, last: dict[str, Any] | None) -> dict[str, Any] | None:
    """The newest CSV/Parquet object under the landing prefix newer than ``last`` (an event's extra).

    None when nothing landed since. Objects are ordered by (LastModified, key), so two
    batches landing in the same second are still told apart.
    """
    from aire.storage import parse_s3_uri, s3_client

    bucket, prefix = parse_s3_uri(landing_uri, require_key=False)
    # Airflow strips an Asset URI's trailing slash; without it `landing/a` would match `landing/ab/`.
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    client = s3_client(s3_settings(conn_id, None, None))
    newest: tuple[str, str, dict[str, Any]] | None = None
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if not item["Key"].lower().endswith(BATCH_SUFFIXES):
                continue
            order = (item["LastModified"].isoformat(), item["Key"], item)
            if newest is None or order[:2] > newest[:2]:
                newest = order
    if newest is None:
        return None
    if last and (newest[0], newest[1]) <= (str(last.get("last_modified")), str(last.get("key"))):
        return None
    modified, key, item = newest
    return {"batch": f"s3://{bucket}/{key}", "key": key, "last_modified": modified,
            "etag": str(item.get("ETag", "")).strip('"'), "size": int(item.get("Size", 0))}


def mlflow_credentials(conn_id: str | None) -> None:
    """Point this task's MLflow client at the server an Airflow connection names.

    MLflow reads MLFLOW_TRACKING_URI/USERNAME/PASSWORD from the environment: the
    connection (host as a URL or host/port/schema, login, password) fills them for this
    task process only, and Airflow masks its password. A password given in the
    environment instead is masked the same way.
    """
    import os

    from airflow.sdk.log import mask_secret

    if conn_id:
        from airflow.sdk import Connection

        conn = Connection.get(conn_id)
        host = conn.host or ""
        if "://" not in host:
            host = f"{conn.schema or 'http'}://{host}" + (f":{conn.port}" if conn.port else "")
        os.environ["MLFLOW_TRACKING_URI"] = host.rstrip("/")
        if conn.login:
            os.environ["MLFLOW_TRACKING_USERNAME"] = conn.login
        if conn.password:
            os.environ["MLFLOW_TRACKING_PASSWORD"] = conn.password
    if os.environ.get("MLFLOW_TRACKING_PASSWORD"):
        mask_secret(os.environ["MLFLOW_TRACKING_PASSWORD"])


def task_defaults(*, max_retry_delay_minutes: int = 5) -> dict[str, Any]:
    """default_args every AIRE DAG shares: two retries with exponential backoff for
    transient trouble, none for bad input (``aire.errors.InputError``: a retry cannot fix
    it), and one incident per final failure."""
    from datetime import timedelta

    from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule

    return {
        "retries": 2,
        "retry_delay": timedelta(seconds=10),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=max_retry_delay_minutes),
        "retry_policy": ExceptionRetryPolicy(rules=[
            RetryRule(exception="aire.errors.InputError", action=RetryAction.FAIL,
                      reason="bad input: a retry cannot fix it"),
        ]),
        "on_failure_callback": on_task_failure,
    }
