"""MLflow tracking and model registry, as the pipeline uses them.

One MLflow run per pipeline run (found again by its run key, so a retried or cleared task
logs into the same run), one experiment per pipeline, one registered model per pipeline.
A model version is created at most once per pipeline run: before registering we look for a
version tagged with the run key. The champion is the ``champion`` alias; the one it
replaced keeps the ``previous`` alias.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Run
from mlflow.exceptions import MlflowException

from aire.constants import CHAMPION, TAG_DATA_DIGEST, TAG_PINNED_CHAMPION, TAG_RUN_KEY, TAG_SIGNED_DIGEST
from aire.errors import AireError, InputError

MAX_METRICS_PER_BATCH = 1000  # MLflow's limit for one log_batch call

# Download progress bars would fill every task log and the demo's output.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def filter_literal(value: str) -> str:
    """``value`` as one string literal of an MLflow filter, or InputError.

    MLflow's filter parser knows no escapes: a value is safe inside single quotes if it has
    none, inside double quotes if it has no double quote; one with both cannot be written.
    """
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise InputError(f"{value!r}: a value with both kinds of quote cannot be searched for in MLflow")


def candidate_artifacts(digest: str) -> tuple[str, str]:
    """Where a signed candidate's directory and signature live in its MLflow run.

    Content-addressed by the signed digest: re-running a finished run's training writes a
    new candidate beside the registered one instead of over it.
    """
    return f"candidates/{digest}/model", f"candidates/{digest}/signature"


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    run_id: str
    signed_digest: str | None
    data_digest: str | None
    run_key: str | None
    aliases: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "version": self.version, "run_id": self.run_id,
            "signed_digest": self.signed_digest, "data_digest": self.data_digest,
            "run_key": self.run_key, "aliases": list(self.aliases),
        }


class Registry:
    def __init__(self, tracking_uri: str, artifact_root: str | None = None) -> None:
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._artifact_root = artifact_root.rstrip("/") if artifact_root else None

    # --- runs -----------------------------------------------------------------------
    def experiment_id(self, pipeline: str) -> str:
        name = f"aire/{pipeline}"
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        location = f"{self._artifact_root}/{pipeline}" if self._artifact_root else None
        try:
            return str(self.client.create_experiment(name, artifact_location=location))
        except MlflowException:  # created by a concurrent run in the meantime
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return str(found.experiment_id)

    def run_for(self, pipeline: str, run_key: str, tags: dict[str, str] | None = None) -> str:
        """The MLflow run of this pipeline run, created on first use."""
        experiment = self.experiment_id(pipeline)
        existing = self._find_run(experiment, run_key)
        if existing is not None:
            return str(existing.info.run_id)
        run = self.client.create_run(
            experiment, run_name=run_key, tags={TAG_RUN_KEY: run_key, **(tags or {})}
        )
        return str(run.info.run_id)

    def _find_run(self, experiment: str, run_key: str) -> Run | None:
        runs = self.client.search_runs([experiment], f"tags.`{TAG_RUN_KEY}` = {filter_literal(run_key)}",
                                       max_results=1)
        return runs[0] if runs else None

    def log_metrics(self, run_id: str, metrics: Mapping[str, float | None], step: int | None = None) -> None:
        # One log_batch call (one store transaction) for all of them: fine_tune logs every
        # epoch, and one log_metric per metric cost ~18 ms each on the sqlite store
        # (bench/profile_run.py: ~2 s a run at 40 epochs).
        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step or 0) for key, value in metrics.items() if value is not None]
        for start in range(0, len(batch), MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=batch[start:start + MAX_METRICS_PER_BATCH])

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        for key, value in params.items():
            try:
                self.client.log_param(run_id, key, value)
            except MlflowException:
                # A retried task logs the same params again; MLflow refuses changed values,
                # and unchanged ones are already there.
                pass

    def log_artifacts(self, run_id: str, local_dir: Path, artifact_path: str) -> None:
        self.client.log_artifacts(run_id, str(local_dir), artifact_path)

    def log_artifact(self, run_id: str, local_file: Path, artifact_path: str) -> None:
        self.client.log_artifact(run_id, str(local_file), artifact_path)

    def set_run_tags(self, run_id: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(run_id, key, value)

    def run_tag(self, run_id: str, key: str) -> str | None:
        value = self.client.get_run(run_id).data.tags.get(key)
        return None if value is None else str(value)

    def download(self, run_id: str, artifact_path: str, destination: Path) -> Path:
        """A run's artifact; AireError (retried, reported) when it is missing or unreachable."""
        destination.mkdir(parents=True, exist_ok=True)
        try:
            return Path(self.client.download_artifacts(run_id, artifact_path, str(destination)))
        except MlflowException as exc:
            raise AireError(f"run {run_id}: cannot download artifact '{artifact_path}': "
                            f"{str(exc).splitlines()[0][:200]}") from None

    def finish_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    # --- registry ---------------------------------------------------------------------
    def pinned_champion(self, run_id: str, name: str) -> int | None:
        """The champion this run compares against and warm-starts from, fixed on its first call.

        A cleared and re-run run must not pick up the champion it promoted itself: it gets
        the same one again, so it retrains from the same start and reaches the same decision.
        """
        pinned = self.client.get_run(run_id).data.tags.get(TAG_PINNED_CHAMPION)
        if pinned is not None:
            return None if pinned == "none" else int(pinned)
        champion = self.champion(name)
        self.set_run_tags(run_id, {TAG_PINNED_CHAMPION: str(champion.version) if champion else "none"})
        return champion.version if champion else None

    def run_metric(self, name: str, version: int, metric: str) -> float | None:
        """A metric the training run of a registered version logged (None: it logged none)."""
        run_id = self.version(name, version).run_id
        value = self.client.get_run(run_id).data.metrics.get(metric)
        return None if value is None else float(value)

    def champion(self, name: str) -> ModelVersion | None:
        return self.by_alias(name, CHAMPION)

    def by_alias(self, name: str, alias: str) -> ModelVersion | None:
        try:
            return self._convert(self.client.get_model_version_by_alias(name, alias))
        except MlflowException:
            return None

    def version(self, name: str, version: int) -> ModelVersion:
        try:
            return self._convert(self.client.get_model_version(name, str(version)))
        except MlflowException as exc:
            raise AireError(f"model '{name}' has no version {version}") from exc

    def versions(self, name: str) -> list[ModelVersion]:
        try:
            found = self.client.search_model_versions(f"name = {filter_literal(name)}")
        except MlflowException:
            return []
        return sorted((self._convert(v) for v in found), key=lambda v: v.version)

    def register(self, name: str, run_id: str, run_key: str, tags: dict[str, str]) -> tuple[ModelVersion, bool]:
        """Register the run's model once; a second call for the same run key returns it."""
        for existing in self.versions(name):
            if existing.run_key == run_key:
                return existing, False
        try:
            self.client.create_registered_model(name)
        except MlflowException:
            pass  # already exists
        model_path, _ = candidate_artifacts(tags[TAG_SIGNED_DIGEST])
        source = f"{self.client.get_run(run_id).info.artifact_uri}/{model_path}"
        created = self.client.create_model_version(
            name, source=source, run_id=run_id, tags={TAG_RUN_KEY: run_key, **tags}
        )
        return self._convert(created), True

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self.client.set_registered_model_alias(name, alias, str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias``; an alias that is not set is already removed."""
        try:
            self.client.delete_registered_model_alias(name, alias)
        except MlflowException:
            pass

    def aliases(self, name: str) -> dict[str, int]:
        """Every alias of the model and the version it points at ({} for an unknown model)."""
        try:
            model = self.client.get_registered_model(name)
        except MlflowException:
            return {}
        return {alias: int(version) for alias, version in sorted((model.aliases or {}).items())}

    def download_model(self, version: ModelVersion, destination: Path | None = None) -> tuple[Path, Path]:
        """The model directory and its signature, downloaded for verification before use."""
        if not version.signed_digest:
            raise AireError(f"model '{version.name}' version {version.version} records no signed digest")
        model_path, signature_path = candidate_artifacts(version.signed_digest)
        target = destination or Path(tempfile.mkdtemp(prefix=f"aire-{version.name}-v{version.version}-"))
        model_dir = self.download(version.run_id, model_path, target)
        signature = self.download(version.run_id, f"{signature_path}/model.sig", target / "sig")
        return model_dir, signature

    def _convert(self, mv: Any) -> ModelVersion:
        tags = dict(mv.tags or {})
        return ModelVersion(
            name=mv.name, version=int(mv.version), run_id=mv.run_id,
            signed_digest=tags.get(TAG_SIGNED_DIGEST), data_digest=tags.get(TAG_DATA_DIGEST),
            run_key=tags.get(TAG_RUN_KEY), aliases=list(getattr(mv, "aliases", []) or []),
        )
