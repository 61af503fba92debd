"""What `aire status` reports: a pipeline's champion, verified now, its open incidents, and
which registry, incident store, ledger and signing key it used (each with where that came from)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from aire.config import PipelineConfig, load_config
from aire.errors import AireError
from aire.home import HOME_DEFAULT, Home, Setting
from aire.incidents.store import IncidentStore
from aire.registry.mlflow_registry import Registry
from aire.trust.ledger import Ledger
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
    if config.signing.conn_id:
        key = {"source": f"Airflow connection {config.signing.conn_id}",
               "from": f"config {config_path} (signing.conn_id)"}
    else:
        key = {"source": f"home key pair {home.public_key}", "from": HOME_DEFAULT}
    return {
        "home": str(home.root),
        "registry": _entry(home.setting("MLFLOW_TRACKING_URI")),
        "incident_store": _entry(incidents),
        # Ledger.for_home: the file in the home, its head anchored in the incident database.
        "ledger": {"path": str(home.ledger_path), "anchor": redacted(incidents.value),
                   "from": f"{HOME_DEFAULT}; anchor: {incidents.source}"},
        "signing_key": key,
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
