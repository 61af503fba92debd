"""What every stage of a pipeline run opens: config, home, registry, ledger, run directory.

Stages hand each other nothing but small JSON values; the files they write live in the
run directory (``<home>/reports/<pipeline>/<run key>/``), are logged to the run's MLflow
run, and are copied to the object store, so each stage can be re-run on its own.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from aire.config import PipelineConfig, load_config
from aire.data.storage import ObjectStore, S3Settings, open_store
from aire.errors import AireError
from aire.home import Home
from aire.registry.mlflow_registry import Registry
from aire.trust.keys import KeyPair, ensure_keypair
from aire.trust.ledger import Ledger
from aire.trust.verify import VerifiedModel, fetch_verified


@dataclass(frozen=True)
class RunSpec:
    """One pipeline run as the DAG's Params or the CLI's flags describe it."""

    config_path: str
    batch_uri: str
    run_key: str
    epochs: int | None = None
    learning_rate: float | None = None
    s3: S3Settings | None = None
    keys: KeyPair | None = None  # from a secret; None: the home's own pair


class RunContext:
    def __init__(self, spec: RunSpec, home: Home | None = None) -> None:
        self.spec = spec
        self.home = (home or Home.from_env()).ensure()
        self.config: PipelineConfig = load_config(spec.config_path)
        self.registry = Registry(self.home.mlflow_tracking_uri, self.home.mlflow_artifact_root)
        self.ledger = Ledger(self.home.ledger_path)
        self.run_dir = self.home.run_dir(self.config.name, spec.run_key)
        self.run_dir.mkdir(parents=True, exist_ok=True)

    @property
    def name(self) -> str:
        return self.config.name

    @cached_property
    def mlflow_run_id(self) -> str:
        return self.registry.run_for(
            self.name, self.spec.run_key, tags={"aire.batch_uri": self.spec.batch_uri,
                                                "aire.config": str(self.spec.config_path)}
        )

    @cached_property
    def keys(self) -> KeyPair:
        """The pair that signs this run's candidate and verifies every model it loads."""
        return self.spec.keys or ensure_keypair(self.home.keys_dir)

    @cached_property
    def store(self) -> ObjectStore:
        return open_store(self.config.storage.uri, self.home.store_dir, self.spec.s3)

    def path(self, *parts: str) -> Path:
        return self.run_dir.joinpath(*parts)

    # --- data handed between stages ---------------------------------------------------
    def batch(self) -> pd.DataFrame:
        return self._frame("batch.parquet", "validate_data")

    def split(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        return self._frame("train.parquet", "fine_tune"), self._frame("holdout.parquet", "fine_tune")

    def _frame(self, name: str, producer: str) -> pd.DataFrame:
        path = self.path(name)
        if not path.exists():
            raise AireError(f"{path} is missing: run the '{producer}' stage of run {self.spec.run_key} first")
        return pd.read_parquet(path)

    def read_json(self, *parts: str) -> dict[str, Any]:
        return dict(json.loads(self.path(*parts).read_text()))

    def write_json(self, data: dict[str, Any], *parts: str) -> Path:
        path = self.path(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, default=str))
        tmp.replace(path)
        return path

    # --- publishing -----------------------------------------------------------------
    def publish(self, local: Path, artifact_path: str) -> None:
        """Log a report file or directory to MLflow and copy it to the object store."""
        prefix = f"runs/{self.name}/{self.run_dir.name}/{artifact_path}"
        if local.is_dir():
            self.registry.log_artifacts(self.mlflow_run_id, local, artifact_path)
            for file in sorted(p for p in local.rglob("*") if p.is_file()):
                self.store.put_file(file, f"{prefix}/{file.relative_to(local).as_posix()}")
        else:
            self.registry.log_artifact(self.mlflow_run_id, local, artifact_path)
            self.store.put_file(local, f"{prefix}/{local.name}")

    # --- models -----------------------------------------------------------------------
    def verified_version(self, version: int | None) -> VerifiedModel | None:
        """The given registered version, downloaded and verified; None for no champion."""
        if version is None:
            return None
        workdir = self.path("registry")
        stale = workdir / f"{self.name}-v{version}"
        if stale.exists():
            shutil.rmtree(stale)  # always verify a fresh download, never a cached copy
        return fetch_verified(
            self.registry, self.registry.version(self.name, version),
            public_key=self.keys.public, ledger=self.ledger, workdir=workdir,
        )
