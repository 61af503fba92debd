"""Preparing the embedded home: folders, signing key pair, Airflow database, example data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from aire.errors import AireError
from aire.home import Home


def prepare_home(home: Home, *, migrate_airflow: bool = True) -> dict[str, Any]:
    from aire.data.datasets import write_example_batches
    from aire.trust.keys import ensure_keypair

    home.ensure()
    # A home on services signs only with the deployment's key (aire.trust.keys.run_keys): no pair of its own.
    keys = None if home.uses_services else ensure_keypair(home.keys_dir)
    batches = write_example_batches(home.data_dir)
    if migrate_airflow:
        migrate_airflow_db(home)
    return {"home": str(home.root), "public_key": str(keys.public) if keys else None,
            "batches": {name: str(path) for name, path in batches.items()},
            "airflow_db": home.airflow_db_url if migrate_airflow else None}


def airflow_bin() -> str:
    """The ``airflow`` of this interpreter's environment, whatever PATH says."""
    return str(Path(sys.executable).with_name("airflow"))


def airflow_env(home: Home) -> dict[str, str]:
    """This process's environment with the home's variables on top (for airflow subprocesses)."""
    env = dict(os.environ)
    # The home's own service URIs, unless the caller set one by hand (Home.setting).
    env.update(home.environment())
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def migrate_airflow_db(home: Home) -> None:
    done = subprocess.run([airflow_bin(), "db", "migrate"], env=airflow_env(home), capture_output=True, text=True)
    if done.returncode != 0:
        raise AireError(f"airflow db migrate failed ({done.returncode}):\n{done.stderr[-3000:]}")
