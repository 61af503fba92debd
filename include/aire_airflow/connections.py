"""Secrets and endpoints from Airflow connections (or the secrets backend behind them).

Airflow masks a connection's password in task logs; the library only ever sees values."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aire.config import NotifyChannel
    from aire.data.storage import S3Settings
    from aire.incidents.notifiers import Channel
    from aire.trust.keys import KeyPair



def signing_keys(conn_id: str | None) -> KeyPair | None:
    """The signing pair held by an Airflow connection (or the secrets backend behind it).

    ``conn_id`` is the config's ``signing.conn_id``; without one, the deployment's
    ``AIRE_SIGNING_CONN_ID``. Written for this task's process only, to a private folder that
    is removed when the process exits; a folder left by a process that was killed is removed
    by the next task on the host. None when neither names a connection: the embedded home's
    pair (a home that uses services refuses to sign without one, ``aire.trust.keys.run_keys``).
    """
    from aire.trust.keys import keypair_from_pem, signing_conn_id

    conn_id = signing_conn_id(conn_id)
    if conn_id is None:
        return None
    from airflow.sdk import Connection

    conn = Connection.get(conn_id)
    extra = conn.extra_dejson or {}
    return keypair_from_pem(conn.password or None, extra.get("public_key"), key_folder())


def key_folder() -> Path:
    """``<tmp>/aire-keys-<uid>/pid-<pid>``, 0700, removed at exit; dead processes' folders go first."""
    import atexit
    import shutil
    import tempfile

    parent = Path(tempfile.gettempdir()) / f"aire-keys-{os.getuid()}"
    parent.mkdir(mode=0o700, exist_ok=True)
    os.chmod(parent, 0o700)
    for left in parent.glob("pid-*"):
        if not _alive(left.name.removeprefix("pid-")):
            shutil.rmtree(left, ignore_errors=True)
    folder = parent / f"pid-{os.getpid()}"
    if not folder.exists():
        atexit.register(shutil.rmtree, folder, True)
    return folder


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def s3_settings(conn_id: str | None, endpoint_url: str | None, region: str | None) -> S3Settings | None:
    """S3 credentials from an Airflow connection (masked in logs by Airflow), else boto3's chain."""
    from aire.data.storage import S3Settings

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


def notifier_channel(spec: NotifyChannel) -> Channel:
    """A config's notify channel with its URL and key read from its Airflow connection.

    The connection may live in the metadata DB, a secrets backend or an
    ``AIRFLOW_CONN_<ID>`` variable; Airflow masks its password in task logs.
    """
    from airflow.sdk import Connection

    from aire.errors import InputError
    from aire.incidents.notifiers import channel_from_connection

    try:
        conn = Connection.get(spec.conn_id)
    except Exception as exc:
        raise InputError(f"notify channel '{spec.label}': cannot read Airflow connection "
                         f"'{spec.conn_id}': {exc}") from exc
    return channel_from_connection(spec, host=conn.host, port=conn.port, schema=conn.schema,
                                   password=conn.password, extra=conn.extra_dejson or {})
