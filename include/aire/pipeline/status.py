"""What `aire status` reports: a pipeline's champion, verified now, and its open incidents."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from aire.config import load_config
from aire.errors import AireError
from aire.home import Home
from aire.incidents.store import IncidentStore
from aire.registry.mlflow_registry import Registry
from aire.trust.ledger import Ledger
from aire.trust.verify import fetch_verified


def pipeline_status(config_path: str | Path, home: Home | None = None) -> dict[str, Any]:
    home = home or Home.from_env()
    name = load_config(config_path).name
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
    return {"model": name, "champion": champion_status, "incidents": {"open": store.count_open(pipeline=name)}}
