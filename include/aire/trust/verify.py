"""Verify before load: the only way a registered model reaches memory.

A version is trusted when (1) its signature verifies with the home's public key and
(2) the signed digest equals the digest recorded for it twice: as a tag on the MLflow
version and in the ledger entry written when that version was registered, which names
the pipeline, the version, the MLflow run and the digest (and the training batch's data
digest), and which must match the signing entry of the same run. Tags and artifacts can
be rewritten by anyone who can write to MLflow; the ledger (hash-chained, its head
anchored in the database) cannot be without it showing. So an older signed model copied
into a newer version's run, with the tag rewritten to its digest, is refused: the
ledger's record of that version names another digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aire.constants import BATCH, LEDGER_REGISTERED, LEDGER_SIGNED, REFERENCE_ARTIFACT
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
    data_digest: str | None  # of the batch it trained on, as the ledger recorded it at registration


def fetch_verified(
    registry: Registry, version: ModelVersion, *, public_key: Path, ledger: Ledger, workdir: Path
) -> VerifiedModel:
    label = f"model '{version.name}' version {version.version}"
    recorded = version.signed_digest
    if not recorded:
        raise VerificationError(f"{label} has no recorded signed digest; refusing to load it")
    record = registration_record(ledger, version)
    model_dir, signature = registry.download_model(version, workdir / f"{version.name}-v{version.version}")
    try:
        result = verify_model(model_dir, signature, public_key=public_key, expected_digest=recorded)
    except VerificationError as exc:
        raise VerificationError(f"{label}: {exc}") from exc
    return VerifiedModel(version=version, model_dir=model_dir, digest=result.digest,
                         data_digest=record.get("data_digest") or None)


def registration_record(ledger: Ledger, version: ModelVersion) -> dict[str, Any]:
    """The ledger's record of this version, once it names the version's run and digest, and
    the signing entry of that same run names the digest too; raises VerificationError."""
    label = f"model '{version.name}' version {version.version}"
    records = ledger.find(LEDGER_REGISTERED, pipeline=version.name, version=version.version)
    if not records:
        raise VerificationError(f"{label}: no registration record in the ledger {ledger.location}; refusing to load it")
    record = records[-1].entry
    claimed = {"digest": version.signed_digest, "mlflow_run_id": version.run_id, "run_key": version.run_key}
    differs = sorted(key for key, value in claimed.items() if record.get(key) != value)
    if differs:
        raise VerificationError(f"{label}: its {', '.join(differs)} in the registry differ from the ledger's "
                                "record of this version (tags or artifacts rewritten); refusing to load it")
    if not ledger.find(LEDGER_SIGNED, pipeline=version.name, digest=version.signed_digest,
                       mlflow_run_id=version.run_id):
        raise VerificationError(f"{label}: digest {str(version.signed_digest)[:12]}… was not signed by its run "
                                f"{version.run_id} according to the ledger; refusing to load it")
    return record


def verify_candidate(model_dir: Path, signature: Path, signing_record: dict[str, Any] | None, *,
                     ledger: Ledger, pipeline: str, run_key: str, mlflow_run_id: str, public_key: Path) -> str:
    """The candidate's digest, once its signature and its ledger entry check out.

    A candidate is loaded only after this: the digest its signing record names must be in
    the ledger as signed by this very run (pipeline, run key, MLflow run), and the files
    must verify against it with the trusted key.
    """
    digest = (signing_record or {}).get("digest")
    if not digest or not ledger.find(LEDGER_SIGNED, pipeline=pipeline, digest=digest, run_key=run_key,
                                     mlflow_run_id=mlflow_run_id):
        raise VerificationError(f"{model_dir}: no signing record in the ledger for this candidate of this run")
    verify_model(model_dir, signature, public_key=public_key, expected_digest=digest)
    return str(digest)


def fetch_reference(registry: Registry, verified: VerifiedModel, destination: Path) -> pd.DataFrame:
    """The champion's training batch, checked against the data digest the ledger recorded for it.

    Fails closed: a version with no recorded data digest (or a tag that disagrees with the
    ledger) has no trustworthy reference, and drift against an unproven batch means nothing.
    """
    import pandas as pd

    from aire.data.tables import table_digest

    label = f"reference data of version {verified.version.version}"
    recorded = verified.data_digest
    if not recorded:
        raise VerificationError(f"{label}: the ledger records no data digest for it; refusing to compare with it")
    if verified.version.data_digest != recorded:
        raise VerificationError(f"{label}: the version's data digest tag is missing or differs from the "
                                f"ledger's {recorded[:12]}…; refusing to compare with it")
    folder = registry.download(verified.version.run_id, REFERENCE_ARTIFACT, destination)
    reference = pd.read_parquet(folder / BATCH)
    if table_digest(reference) != recorded:
        raise VerificationError(f"{label} does not match its recorded data digest {recorded[:12]}…")
    return reference
