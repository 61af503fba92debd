"""Verify before load: the only way a registered model reaches memory.

A version is trusted when (1) its signature verifies with the home's public key and
(2) the signed digest equals the digest recorded for it twice: as a tag on the MLflow
version and in the append-only ledger written when the model was signed. An older model
replayed under a new version carries its own valid signature, but not the digest recorded
for that version, so it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aire.constants import BATCH, LEDGER_SIGNED, REFERENCE_ARTIFACT
from aire.errors import VerificationError
from aire.registry.mlflow_registry import ModelVersion, Registry
from aire.trust.ledger import Ledger
from aire.trust.signing import verify_model

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class VerifiedModel:
    version: ModelVersion
    model_dir: Path
    digest: str


def fetch_verified(
    registry: Registry, version: ModelVersion, *, public_key: Path, ledger: Ledger, workdir: Path
) -> VerifiedModel:
    label = f"model '{version.name}' version {version.version}"
    recorded = version.signed_digest
    if not recorded:
        raise VerificationError(f"{label} has no recorded signed digest; refusing to load it")
    if not ledger.find(LEDGER_SIGNED, pipeline=version.name, digest=recorded):
        raise VerificationError(
            f"{label}: digest {recorded[:12]}… is not in the signing ledger {ledger.path}; refusing to load it"
        )
    model_dir, signature = registry.download_model(version, workdir / f"{version.name}-v{version.version}")
    try:
        result = verify_model(model_dir, signature, public_key=public_key, expected_digest=recorded)
    except VerificationError as exc:
        raise VerificationError(f"{label}: {exc}") from exc
    return VerifiedModel(version=version, model_dir=model_dir, digest=result.digest)


def verify_candidate(model_dir: Path, signature: Path, signing_record: dict[str, Any] | None, *,
                     ledger: Ledger, pipeline: str, public_key: Path) -> str:
    """The candidate's digest, once its signature and its ledger entry check out.

    A candidate is loaded only after this: the digest its signing record names must be in
    the ledger for this pipeline, and the files must verify against it with the trusted key.
    """
    digest = (signing_record or {}).get("digest")
    if not digest or not ledger.find(LEDGER_SIGNED, pipeline=pipeline, digest=digest):
        raise VerificationError(f"{model_dir}: no signing record in the ledger for this candidate")
    verify_model(model_dir, signature, public_key=public_key, expected_digest=digest)
    return str(digest)


def fetch_reference(registry: Registry, verified: VerifiedModel, destination: Path) -> pd.DataFrame:
    """The champion's training batch, checked against the data digest its version records."""
    import pandas as pd

    from aire.data.tables import table_digest

    folder = registry.download(verified.version.run_id, REFERENCE_ARTIFACT, destination)
    reference = pd.read_parquet(folder / BATCH)
    recorded = verified.version.data_digest
    if recorded and table_digest(reference) != recorded:
        raise VerificationError(f"reference data of version {verified.version.version} does not match "
                                f"its recorded data digest {recorded[:12]}…")
    return reference
