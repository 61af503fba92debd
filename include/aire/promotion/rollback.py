"""Rollback: move the champion back to a known-good version, verified first, on the record.

``rollback`` takes the target version (or whatever ``previous`` points at), verifies it
exactly as every load does (signature with the home's key, digest against the registry
tag and the signing ledger; ``aire.trust.verify.fetch_verified``), and only then moves the
aliases under the same lock as promotion: ``champion`` to the target, ``previous`` to the
version it replaced, so a second rollback to ``previous`` undoes the first. The move is
appended to the ledger (kind ``rollback``) and noted on the pipeline's newest unresolved
incident, if there is one. A target that fails verification moves nothing.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aire.config import load_config
from aire.constants import CHALLENGER, CHAMPION, LEDGER_ROLLBACK, PREVIOUS
from aire.errors import AireError, InputError
from aire.home import Home
from aire.incidents.store import IncidentStore, Status
from aire.promotion.promote import alias_lock, complete_interrupted
from aire.registry.mlflow_registry import ModelVersion, Registry
from aire.trust.ledger import Ledger
from aire.trust.verify import fetch_verified

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RollbackResult:
    pipeline: str
    from_version: int | None
    to_version: int
    digest: str
    from_digest: str | None
    ledger_seq: int
    incident_id: int | None  # the incident the rollback was noted on
    by: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rollback(config_path: str | Path, *, to_version: int | None = None, by: str, reason: str = "",
             home: Home | None = None) -> RollbackResult:
    """Make ``to_version`` (None: the ``previous`` alias) the champion, after verifying it."""
    home = (home or Home.from_env()).ensure()
    name = load_config(config_path).name
    registry = Registry(home.mlflow_tracking_uri, home.mlflow_artifact_root)
    ledger = Ledger.for_home(home)
    with alias_lock(home, name):
        complete_interrupted(registry, ledger, name)  # a half-done promotion is on the record first
        current = registry.champion(name)
        target = _target(registry, name, to_version)
        if current is not None and current.version == target.version:
            raise InputError(f"model '{name}' version {target.version} is already the champion")
        with tempfile.TemporaryDirectory(prefix="aire-rollback-") as workdir:
            # Raises VerificationError (bad input: nothing has moved yet) on any mismatch.
            verified = fetch_verified(registry, target, public_key=home.public_key, ledger=ledger,
                                      workdir=Path(workdir))
        incident = _open_incident(home, name)
        if current is not None:
            registry.set_alias(name, PREVIOUS, current.version)
        registry.set_alias(name, CHAMPION, target.version)
        if registry.aliases(name).get(CHALLENGER) == target.version:
            registry.delete_alias(name, CHALLENGER)
        entry = ledger.append(LEDGER_ROLLBACK, {
            "pipeline": name, "to_version": target.version, "from_version": current.version if current else None,
            "digest": verified.digest, "from_digest": current.signed_digest if current else None,
            "by": by, "reason": reason, "incident_id": incident,
        })
    result = RollbackResult(name, current.version if current else None, target.version, verified.digest,
                            current.signed_digest if current else None, entry.seq, incident, by, reason)
    if incident is not None:
        _note(home, incident, result)
    log.warning("model '%s': champion rolled back from v%s to v%s by %s", name, result.from_version,
                result.to_version, by)
    return result


def _target(registry: Registry, name: str, to_version: int | None) -> ModelVersion:
    if to_version is None:
        target = registry.by_alias(name, PREVIOUS)
        if target is None:
            raise InputError(f"model '{name}' has no '{PREVIOUS}' alias: name a version to roll back to")
        return target
    if to_version < 1:
        raise InputError(f"version must be >= 1, got {to_version}")
    try:
        return registry.version(name, to_version)
    except AireError as exc:  # an unknown version is the caller's mistake, not a failure
        raise InputError(str(exc)) from None


def _open_incident(home: Home, pipeline: str) -> int | None:
    """The newest open incident of the pipeline, else the newest acknowledged one, if any.

    Best effort: an unreachable incident store must not block a rollback.
    """
    store = IncidentStore(home.incidents_db_url)
    try:
        for status in (Status.OPEN, Status.ACKNOWLEDGED):
            found = store.list(status=status, pipeline=pipeline)
            if found:
                return found[0].id
    except AireError as exc:
        log.error("cannot look up the open incident of '%s': %s", pipeline, exc)
    finally:
        store.close()
    return None


def _note(home: Home, incident_id: int, result: RollbackResult) -> None:
    """Best effort: the rollback has happened and is in the ledger whatever the store says."""
    text = (f"rollback by {result.by}: champion v{result.from_version} -> v{result.to_version} "
            f"(digest {result.digest[:12]}…, ledger seq {result.ledger_seq})"
            + (f": {result.reason}" if result.reason else ""))
    store = IncidentStore(home.incidents_db_url)
    try:
        store.note(incident_id, text)
    except AireError as exc:
        log.error("rollback recorded in the ledger, but incident %s could not be noted: %s", incident_id, exc)
    finally:
        store.close()
