"""What every stage of a pipeline run opens: config, home, registry, ledger, run directory.

Stages hand each other nothing but small JSON values; the files they write live in the
run directory (``<home>/reports/<pipeline>/<run key>/``), are logged to the run's MLflow
run, and are copied to the object store, so each stage can be re-run on its own. With a
configured ``storage.uri`` the run directory is only a cache: each stage hands its files
over through the store and the next one receives them, verified, on whatever host it runs
(``aire.pipeline.handoff``).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from aire import atomic
from aire.config import PipelineConfig, load_config
from aire.constants import TAG_BATCH_URI, TAG_CONFIG
from aire.data.storage import ObjectStore, S3Settings, open_store, settings_for
from aire.errors import AireError, InputError
from aire.home import Home, RunLayout
from aire.pipeline.handoff import Handoff, MissingHandoff
from aire.registry.mlflow_registry import Registry
from aire.trust.keys import KeyPair, run_keys
from aire.trust.ledger import Ledger
from aire.trust.verify import VerifiedModel, fetch_verified, verify_candidate

log = logging.getLogger(__name__)

# Airflow's own run-id alphabet (letters, digits, "_.~:+-"), starting with a letter or digit.
# A run key reaches MLflow filters, folder and object-store names, lock and incident keys:
# checked once here, as a whole string, for the CLI and the DAG alike.
RUN_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.~:+-]{0,249}")
# The DAG's Params and the config's training.epochs/learning_rate bounds: the CLI gets the same.
MAX_EPOCHS = 1000


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

    def __post_init__(self) -> None:
        if not RUN_KEY.fullmatch(self.run_key):
            raise InputError(f"run key {self.run_key!r}: use 1-250 letters, digits or '_.~:+-', "
                             "starting with a letter or digit")
        # 0 is refused, not read as "the config's value": only None (no override) means that.
        if self.epochs is not None and not 1 <= self.epochs <= MAX_EPOCHS:
            raise InputError(f"epochs must be 1-{MAX_EPOCHS} (leave it out for the config's value), got {self.epochs}")
        if self.learning_rate is not None and not 0 < self.learning_rate <= 1:
            raise InputError(f"learning rate must be in (0, 1], got {self.learning_rate}")


@dataclass(frozen=True)
class _MlflowRunTags:
    """The run's MLflow tags, where the hand-off records its manifests' digests."""

    registry: Registry
    run_id: str

    def get(self, key: str) -> str | None:
        return self.registry.run_tag(self.run_id, key)

    def set(self, key: str, value: str) -> None:
        self.registry.set_run_tags(self.run_id, {key: value})


class RunContext:
    def __init__(self, spec: RunSpec, home: Home | None = None) -> None:
        self.spec = spec
        self.home = (home or Home.from_env()).ensure()
        self.config: PipelineConfig = load_config(spec.config_path)
        self.registry = Registry(self.home.mlflow_tracking_uri, self.home.mlflow_artifact_root)
        self.ledger = Ledger.for_home(self.home)
        self.run_dir = self.home.run_dir(self.config.name, spec.run_key)
        self.run_dir.mkdir(parents=True, exist_ok=True)

    @property
    def name(self) -> str:
        return self.config.name

    @cached_property
    def mlflow_run_id(self) -> str:
        return self.registry.run_for(
            self.name, self.spec.run_key,
            tags={TAG_BATCH_URI: self.spec.batch_uri, TAG_CONFIG: str(self.spec.config_path)},
        )

    @cached_property
    def keys(self) -> KeyPair:
        """The pair that signs this run's candidate and verifies every model it loads."""
        return run_keys(self.spec.keys, self.home)  # a home on services never makes its own

    @cached_property
    def store(self) -> ObjectStore:
        return open_store(self.config.storage.uri, self.home.store_dir, self.s3)

    @property
    def s3(self) -> S3Settings | None:
        """The spec's S3 settings completed by the config's endpoint and region."""
        return settings_for(self.config.storage, self.spec.s3)

    @property
    def files(self) -> RunLayout:
        """Where each of this run"s artifacts lives (``aire.home.RunLayout``)."""
        return RunLayout(self.run_dir)

    @cached_property
    def handoff(self) -> Handoff | None:
        """The run's hand-off through shared storage; None for the embedded home's own store,
        where every stage runs on the host whose run directory holds the files."""
        if not self.config.storage.uri:
            return None
        return Handoff(self.store, prefix=self.store_key("handoff", "files"), root=self.run_dir,
                       tags=_MlflowRunTags(self.registry, self.mlflow_run_id))

    def hand_over(self, producer: str, *paths: Path) -> None:
        """Make ``paths`` (this stage's outputs) readable by later stages on any host."""
        if self.handoff is not None:
            self.handoff.hand_over(producer, paths)

    def withdraw(self, producer: str, *folders: Path) -> None:
        """Withdraw ``producer``'s last hand-off before it runs again (``Handoff.withdraw``)."""
        if self.handoff is not None:
            self.handoff.withdraw(producer, folders)

    def receive(self, *producers: str, optional: bool = False) -> None:
        """Fetch and verify what ``producers`` handed over into the run directory.

        ``optional``: a producer that handed nothing over (it failed, or never ran) is
        skipped, for the stages that judge missing evidence themselves (gate, reject).
        """
        if self.handoff is None:
            return
        for producer in producers:
            try:
                received = self.handoff.receive(producer)
            except MissingHandoff:
                if not optional:
                    raise
                log.info("nothing handed over by %s for this run", producer)
                continue
            log.info("received %s: %d files, %d fetched, %d stale removed", producer,
                     received.files, received.fetched, received.removed)

    def path(self, *parts: str) -> Path:
        return self.run_dir.joinpath(*parts)

    def store_key(self, area: str, name: str) -> str:
        """This run"s object-store key for a file in ``area`` (batches, quarantine, runs)."""
        return f"{area}/{self.name}/{self.run_dir.name}/{name}"

    # --- data handed between stages ---------------------------------------------------
    def batch(self) -> pd.DataFrame:
        return self._frame(self.files.batch, "validate_data")

    def split(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        return self._frame(self.files.train, "fine_tune"), self._frame(self.files.holdout, "fine_tune")

    def _frame(self, path: Path, producer: str) -> pd.DataFrame:
        if not path.exists():
            raise AireError(f"{path} is missing: run the '{producer}' stage of run {self.spec.run_key} first")
        return pd.read_parquet(path)

    @staticmethod
    def read_json(path: Path) -> dict[str, Any]:
        return dict(json.loads(path.read_text()))

    @staticmethod
    def read_json_or_none(path: Path) -> dict[str, Any] | None:
        """The JSON object at ``path``, or None when it is missing or unreadable."""
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    @staticmethod
    def write_json(data: dict[str, Any], path: Path) -> Path:
        return atomic.write_json(path, data, default=str)

    def quarantine(self, frame: pd.DataFrame) -> None:
        """Keep a copy of a refused batch for the people who will look into it."""
        from aire.data.tables import write_table

        path = self.files.quarantined_batch
        write_table(frame, path)
        self.store.put_file(path, self.store_key("quarantine", path.name))

    # --- publishing -----------------------------------------------------------------
    def publish(self, local: Path, artifact_path: str) -> None:
        """Log a report file or directory to MLflow and copy it to the object store."""
        prefix = self.store_key("runs", artifact_path)
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
        workdir = self.files.registry_dir
        stale = workdir / f"{self.name}-v{version}"
        if stale.exists():
            shutil.rmtree(stale)  # always verify a fresh download, never a cached copy
        return fetch_verified(
            self.registry, self.registry.version(self.name, version),
            public_key=self.keys.public, ledger=self.ledger, workdir=workdir,
        )

    def verified_candidate(self) -> str:
        """The candidate's digest; raises unless its signature and ledger entry check out."""
        files = self.files
        return verify_candidate(files.model_dir, files.signature, self.read_json_or_none(files.signing),
                                ledger=self.ledger, pipeline=self.name, run_key=self.spec.run_key,
                                mlflow_run_id=self.mlflow_run_id, public_key=self.keys.public)

    def candidate_verifies(self) -> bool:
        """``verified_candidate`` as a verdict for the gate: a failure is logged, not raised."""
        try:
            self.verified_candidate()
        except (AireError, OSError) as exc:
            log.warning("candidate signature check failed: %s", exc)
            return False
        return True
