"""What `aire status` reports: a pipeline's champion, verified now, its open incidents, and
which registry, incident store, ledger (file or PostgreSQL), signing key and promotion lock
(fcntl or PostgreSQL advisory) it used, each with where that came from."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from aire.config import PipelineConfig, load_config
from aire.errors import AireError
from aire.home import HOME_DEFAULT, Home, Setting
from aire.incidents.store import IncidentStore
from aire.promotion.promote import lock_in_force
from aire.registry.mlflow_registry import Registry
from aire.trust.keys import SIGNING_CONN_ENV, signing_conn_id
from aire.trust.ledger import Ledger
from aire.trust.ledger_db import TABLE as LEDGER_TABLE
from aire.trust.verify import fetch_verified

_PASSWORD = re.compile(r"(://[^/:@]*):[^/@]*@")


def redacted(uri: str) -> str:
    """``uri`` with the password of ``scheme://user:password@host`` shown as ``***``."""
    return _PASSWORD.sub(r"\1:***@", uri)


def _entry(setting: Setting) -> dict[str, str]:
    return {"uri": redacted(setting.value), "from": setting.source}


def using(home: Home, config: PipelineConfig, config_path: str | Path) -> dict[str, Any]:
    """The parts a run on ``home`` with ``config`` reads and writes, and why those."""
    incidents = home.setting("AIRE_INCIDENTS_DB")
    conn_id = signing_conn_id(config.signing.conn_id)
    if config.signing.conn_id:
        key = {"source": f"Airflow connection {config.signing.conn_id}",
               "from": f"config {config_path} (signing.conn_id)"}
    elif conn_id:
        key = {"source": f"Airflow connection {conn_id}", "from": f"environment ({SIGNING_CONN_ENV})"}
    elif home.uses_services:
        key = {"source": "none: a run on this home refuses to sign or verify (run_keys)",
               "from": f"home uses services; set signing.conn_id in {config_path} or {SIGNING_CONN_ENV}"}
    else:
        key = {"source": f"home key pair {home.public_key}", "from": HOME_DEFAULT}
    if home.uses_services:
        # Ledger.for_home: the rows in the PostgreSQL incident database (aire.trust.ledger_db).
        ledger = {"backend": "postgresql", "location": redacted(f"{incidents.value} (table {LEDGER_TABLE})"),
                  "from": f"home uses services: {incidents.source}"}
    else:
        # Ledger.for_home: the file in the home, its head anchored in the incident database.
        ledger = {"backend": "file", "path": str(home.ledger_path), "anchor": redacted(incidents.value),
                  "from": f"{HOME_DEFAULT}; anchor: {incidents.source}"}
    lock = lock_in_force(home)
    return {
        "home": str(home.root),
        "mode": "services" if home.uses_services else "embedded",
        "registry": _entry(home.setting("MLFLOW_TRACKING_URI")),
        "incident_store": _entry(incidents),
        "ledger": ledger,
        "signing_key": key,
        "promotion_lock": {**lock, "where": redacted(lock["where"])},
        "airflow_db": _entry(home.setting("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")),
    }


def pipeline_status(config_path: str | Path, home: Home | None = None) -> dict[str, Any]:
    home = home or Home.from_env()
    config = load_config(config_path)
    name = config.name
    parts = using(home, config, config_path)
    champion = Registry(home.mlflow_tracking_uri).champion(name)
    champion_status: dict[str, Any] | None = None
    if champion is not None:
        champion_status = {"version": champion.version, "digest": champion.signed_digest, "verified": False}
        try:
            with tempfile.TemporaryDirectory(prefix="aire-status-") as workdir:
                fetch_verified(Registry(home.mlflow_tracking_uri), champion, public_key=home.public_key,
                               ledger=Ledger.for_home(home), workdir=Path(workdir))
            champion_status["verified"] = True
        except (AireError, OSError) as exc:
            champion_status["reason"] = str(exc)  # only present when verification failed
    store = IncidentStore(home.incidents_db_url)
    return {"model": name, "champion": champion_status, "incidents": {"open": store.count_open(pipeline=name)},
            "using": parts}
