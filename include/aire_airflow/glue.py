"""Turn an Airflow task context into the library's arguments, and failures into incidents."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aire.keys import KeyPair
    from aire.run_context import RunSpec
    from aire.storage import S3Settings

log = logging.getLogger(__name__)


def run_spec(context: Any) -> RunSpec:
    """The run as the library sees it: Params plus the DAG run id as the run key."""
    from aire.config import load_config
    from aire.run_context import RunSpec

    params = context["params"]
    config = load_config(params["config"])
    return RunSpec(
        config_path=params["config"], batch_uri=params["batch"], run_key=context["run_id"],
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

    from airflow.sdk import Connection

    from aire.keys import keypair_from_pem

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
    """
    from aire.incident_hooks import record_task_failure

    ti = context["ti"]
    try:
        outcome = record_task_failure(
            dag_id=ti.dag_id, run_id=context["run_id"], task_id=ti.task_id,
            try_number=int(ti.try_number),
            exception=context.get("exception"), params=dict(context.get("params") or {}),
            log_url=getattr(ti, "log_url", None),
        )
    except Exception:  # noqa: BLE001 - never mask the task failure itself
        log.exception("could not record the incident for %s.%s", ti.dag_id, ti.task_id)
        return
    log.error("incident %(incident_id)s recorded; postmortem stub: %(postmortem)s", outcome)


def log_decision(decision: dict[str, Any]) -> None:
    """Show the gate's decision record in the task log, one line per check."""
    verdict = "PROMOTE" if decision.get("promote") else "REJECT"
    lines = [f"gate decision: {verdict}"]
    for check in decision.get("checks", []):
        mark = "pass" if check.get("passed") else "FAIL"
        lines.append(f"  [{mark}] {check.get('name')}: value={check.get('value')} "
                     f"threshold={check.get('threshold')} {check.get('reason') or ''}".rstrip())
    log.info("\n".join(lines))
