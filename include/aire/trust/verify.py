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

from aire.errors import VerificationError
from aire.registry.mlflow_registry import ModelVersion, Registry
from aire.trust.ledger import Ledger
from aire.trust.signing import verify_model

SIGNED = "model_signed"


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
    if not ledger.find(SIGNED, pipeline=version.name, digest=recorded):
        raise VerificationError(
            f"{label}: digest {recorded[:12]}… is not in the signing ledger {ledger.path}; refusing to load it"
        )
    model_dir, signature = registry.download_model(version, workdir / f"{version.name}-v{version.version}")
    try:
        result = verify_model(model_dir, signature, public_key=public_key, expected_digest=recorded)
    except VerificationError as exc:
        raise VerificationError(f"{label}: {exc}") from exc
    return VerifiedModel(version=version, model_dir=model_dir, digest=result.digest)
