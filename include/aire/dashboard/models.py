"""The registry's side of the pages: champion, challenger and previous (verified now), the
version table with metrics, and the ledger with its hash-chain verification.

Reads exactly what ``aire versions``, ``aire ledger`` and ``aire status`` read
(``aire.cli.registry``, ``aire.pipeline.status``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aire.constants import CHALLENGER, CHAMPION, LEDGER_PROMOTION, LEDGER_ROLLBACK, PREVIOUS
from aire.errors import AireError, VerificationError
from aire.home import Home
from aire.trust.ledger import Ledger, LedgerEntry

if TYPE_CHECKING:  # mlflow_registry imports MLflow: not in every process that loads the plugin
    from aire.registry.mlflow_registry import ModelVersion, Registry

ROLES = (CHAMPION, CHALLENGER, PREVIOUS)
VERIFY_NEWEST = 5  # versions the versions page verifies on each view
# MLflow metrics of a version's training run shown in the version table (evaluation_metrics
# and the error analysis log them), in column order.
VERSION_METRICS = ("candidate.accuracy", "candidate.macro_f1", "candidate.roc_auc", "candidate.ece",
                   "drift.share", "fairness.max_gap", "analysis.estimated_noise_rate")


@dataclass(frozen=True)
class RoleView:
    """One alias and the version it points at, checked now."""

    role: str
    version: ModelVersion
    verified: bool
    problem: str | None  # why it did not verify
    moved_at: str | None  # the ledger entry that last made it champion
    moved_by: str | None


@dataclass(frozen=True)
class VersionRow:
    version: ModelVersion
    aliases: list[str]
    metrics: dict[str, float | None]
    verified: bool | None = None  # None: not checked (older than the newest VERIFY_NEWEST)
    problem: str | None = None  # why it did not verify


@dataclass(frozen=True)
class LedgerView:
    entries: list[LedgerEntry]
    verified: bool
    problem: str | None


def verify_version(home: Home, registry: Registry, version: ModelVersion) -> tuple[bool, str | None]:
    """What every load does before it trusts a version (``aire.trust.verify.fetch_verified``)."""
    from aire.trust.verify import fetch_verified

    try:
        with tempfile.TemporaryDirectory(prefix="aire-ui-") as workdir:
            fetch_verified(registry, version, public_key=home.public_key, ledger=Ledger.for_home(home),
                           workdir=Path(workdir))
    except (AireError, OSError) as exc:
        return False, str(exc)
    return True, None


def last_move(entries: list[LedgerEntry], pipeline: str, version: int) -> LedgerEntry | None:
    """The newest promotion or rollback that made ``version`` the champion."""
    moves = [e for e in entries if e.kind in (LEDGER_PROMOTION, LEDGER_ROLLBACK)
             and e.entry.get("pipeline") == pipeline and e.entry.get("to_version") == version]
    return moves[-1] if moves else None


def mover(entry: LedgerEntry) -> str:
    """Who or what moved the champion: a person, the rollback DAG, or the run that promoted it."""
    record = entry.entry
    approval = record.get("approval") or {}
    approver = (approval.get("responded_by") or {}).get("name") if isinstance(approval, dict) else None
    if record.get("by"):
        return str(record["by"])
    if approver:
        return f"run {record.get('run_key')} (approved by {approver})"
    return f"run {record.get('run_key')} (gate)"


def roles(home: Home, registry: Registry, pipeline: str, entries: list[LedgerEntry]) -> list[RoleView]:
    aliases = registry.aliases(pipeline)
    found = []
    for role in ROLES:
        if role not in aliases:
            continue
        version = registry.version(pipeline, aliases[role])
        verified, problem = verify_version(home, registry, version)
        move = last_move(entries, pipeline, version.version)
        found.append(RoleView(role, version, verified, problem, move.time if move else None,
                              mover(move) if move else None))
    return found


def version_rows(home: Home, registry: Registry, pipeline: str, verify_newest: int = VERIFY_NEWEST) -> list[VersionRow]:
    """Every registered version, newest first, with its training run's metrics; the newest
    ``verify_newest`` are verified now, as a rollback would (each check downloads the model)."""
    aliases = registry.aliases(pipeline)
    rows = []
    for index, version in enumerate(sorted(registry.versions(pipeline), key=lambda v: v.version, reverse=True)):
        logged: dict[str, Any] = registry.client.get_run(version.run_id).data.metrics
        verified, problem = verify_version(home, registry, version) if index < verify_newest else (None, None)
        rows.append(VersionRow(version, sorted(a for a, n in aliases.items() if n == version.version),
                               {m: _float(logged.get(m)) for m in VERSION_METRICS}, verified, problem))
    return rows


def ledger_view(home: Home, pipeline: str | None = None) -> LedgerView:
    """The ledger's entries (of one pipeline, or all) and whether the whole chain verifies."""
    ledger = Ledger.for_home(home)  # anchored: a cut or deleted ledger shows as broken
    try:
        entries = ledger.entries()
    except AireError as exc:  # a line that is not an entry at all
        return LedgerView([], False, str(exc))
    try:
        ledger.verify()
    except VerificationError as exc:
        return LedgerView(_of(entries, pipeline), False, str(exc))
    return LedgerView(_of(entries, pipeline), True, None)


def _of(entries: list[LedgerEntry], pipeline: str | None) -> list[LedgerEntry]:
    return [e for e in entries if pipeline is None or e.entry.get("pipeline") == pipeline]


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
