"""Registering a verified candidate and moving the aliases, one move at a time.

A candidate that passed the gate is registered once (tags: run key, data digest, signed
digest) and becomes the ``challenger``. It then becomes the ``champion`` (the version it
replaces keeps ``previous``) only if the champion is still the one the gate compared it
with. Two runs promoting at once, both judged against champion v1, cannot both be right:
the first to take the lock moves the champion; the second finds it moved, and its
candidate stays the challenger, never compared with the new champion (run its batch
again to compare them). So the champion only ever moves to a model that passed the gate
against the very model it replaces, and never back to an older one: going back is the job
of rollback, which is recorded as such.

The ledger records each registered version (kind ``model_registered``: pipeline, version,
run, digests), which every later load checks, and each move in two steps: an intent
before the aliases move and the promotion after. A process killed in between leaves an
intent without its promotion; the next promotion or rollback of the pipeline completes
it (the champion did move: the promotion record is written, the stale challenger
cleared) or closes it as aborted (the champion never moved), under the same lock.

``alias_lock`` serializes alias moves per pipeline (promotion, approval's promotion, shadow
promotion, rollback), with exactly one lock, named by ``lock_in_force``. When a lock URL
names PostgreSQL (``AIRE_LOCK_URL``, else ``AIRE_INCIDENTS_DB``: a home that uses services)
it is a session-level advisory lock on that server, which every worker on every host
shares; nothing is written in the home. Otherwise (the embedded home) it is an ``fcntl``
lock on ``<home>/locks/<pipeline>.lock``, which serializes processes on one host. A worker
that dies holding the lock releases it: PostgreSQL ends the session, the kernel drops the
flock.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aire.constants import (
    CHALLENGER,
    CHAMPION,
    LEDGER_CHALLENGER_ENDED,
    LEDGER_PROMOTION,
    LEDGER_PROMOTION_ABORTED,
    LEDGER_PROMOTION_INTENT,
    LEDGER_REGISTERED,
    LEDGER_SHADOW_HOLD,
    PREVIOUS,
    TAG_APPROVED_BY,
    TAG_DATA_DIGEST,
    TAG_SIGNED_DIGEST,
)
from aire.errors import AireError, ConfigError
from aire.home import Home
from aire.promotion.approval import ApprovalRecord

if TYPE_CHECKING:
    from aire.registry.mlflow_registry import ModelVersion, Registry
    from aire.trust.ledger import Ledger

LOCK_URL_ENV = "AIRE_LOCK_URL"
log = logging.getLogger(__name__)


def lock_url(home: Home) -> str | None:
    """The PostgreSQL server whose advisory locks serialize alias moves, if there is one."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    explicit = os.environ.get(LOCK_URL_ENV)
    url = explicit or home.incidents_db_url
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError as exc:
        raise ConfigError(f"{LOCK_URL_ENV if explicit else 'AIRE_INCIDENTS_DB'}: not a database URL: {exc}") from None
    if backend == "postgresql":
        return url
    if explicit:
        raise ConfigError(f"{LOCK_URL_ENV} must name a PostgreSQL server, got a {backend} URL")
    return None


def lock_in_force(home: Home) -> dict[str, str]:
    """Which alias lock ``alias_lock`` takes on ``home``, where, and which setting chose it."""
    url = lock_url(home)
    if url is None:
        return {"kind": "fcntl", "where": str(home.root / "locks"), "from": "embedded home (no PostgreSQL lock URL)"}
    from sqlalchemy.engine import make_url

    return {"kind": "postgresql advisory lock", "where": make_url(url).render_as_string(hide_password=True),
            "from": LOCK_URL_ENV if os.environ.get(LOCK_URL_ENV) else "AIRE_INCIDENTS_DB"}


@contextmanager
def alias_lock(home: Home, pipeline: str, *, timeout_s: float = 600.0) -> Iterator[None]:
    """Hold the pipeline's alias lock: the PostgreSQL advisory lock when a lock URL names
    PostgreSQL, else the home's file lock (see the module doc)."""
    url = lock_url(home)
    if url is None:
        with _file_lock(home.root / "locks" / f"{pipeline}.lock"):
            yield
    else:
        with advisory_lock(url, f"aire.alias:{pipeline}", timeout_s=timeout_s):
            yield


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def advisory_lock(url: str, name: str, *, timeout_s: float = 600.0) -> Iterator[None]:
    """A PostgreSQL session-level advisory lock on the 64-bit hash of ``name``."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    parsed = make_url(url)
    if parsed.drivername == "postgresql":  # SQLAlchemy's default driver (psycopg2) is not installed
        parsed = parsed.set(drivername="postgresql+psycopg")
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    engine = create_engine(parsed, poolclass=NullPool)
    deadline = time.monotonic() + timeout_s
    try:
        with engine.connect() as conn:
            # Polling with try-lock (not a blocking pg_advisory_lock) bounds the wait.
            while not conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar():
                conn.commit()
                if time.monotonic() > deadline:
                    raise AireError(f"lock '{name}' on {parsed.host}: still held by another worker "
                                    f"after {timeout_s:.0f} s")
                time.sleep(0.05)
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Candidate:
    """A signed candidate the gate passed, as promotion needs it."""

    pipeline: str
    run_key: str
    mlflow_run_id: str
    signed_digest: str
    data_digest: str  # the batch it trained on ("" when validation recorded none)
    decision: dict[str, Any]  # the gate's record; its champion_version is what it was judged against


def promote_candidate(home: Home, registry: Registry, ledger: Ledger, candidate: Candidate, *,
                      approval: ApprovalRecord | None = None, shadow_batches: int = 0) -> dict[str, Any]:
    """Register the candidate once and move ``champion`` to it, if the champion is still the
    one the gate compared it with; otherwise keep it as ``challenger``. ``approval``: the
    person's answer when one was asked for; who approved goes into the version's tags and
    the ledger's promotion entry. ``shadow_batches`` > 0 (``scoring.shadow.required_healthy_batches``):
    over an existing champion the candidate is held as the challenger until it has scored that
    many healthy batches in shadow (``promote_after_shadow``); the hold is in the ledger."""
    name, signed_digest, decision = candidate.pipeline, candidate.signed_digest, candidate.decision
    judged_against = decision.get("champion_version")
    tags = {TAG_SIGNED_DIGEST: signed_digest}
    if candidate.data_digest:
        tags[TAG_DATA_DIGEST] = candidate.data_digest
    approved_by = approval.who if approval and approval.approved else None
    if approved_by:
        tags[TAG_APPROVED_BY] = approved_by
    with alias_lock(home, name):
        complete_interrupted(registry, ledger, name)
        current = registry.champion(name)
        current_version = current.version if current else None
        version, created = registry.register(name, candidate.mlflow_run_id, candidate.run_key, tags)
        _record_registration(ledger, version, candidate)
        moved, challenger = False, False
        if current_version == version.version:
            reason = "already the champion (a re-run of the run that promoted it)"
        elif current_version != judged_against:
            reason = (f"the champion moved to v{current_version} after the gate compared this candidate with "
                      f"{'no champion' if judged_against is None else f'v{judged_against}'}; not promoted")
            if current_version is None or version.version > current_version:
                registry.set_alias(name, CHALLENGER, version.version)
                challenger, reason = True, reason + ", kept as the challenger (run its batch again to compare)"
        elif shadow_batches > 0 and current is not None:
            registry.set_alias(name, CHALLENGER, version.version)
            ledger.append(LEDGER_SHADOW_HOLD, {
                "pipeline": name, "run_key": candidate.run_key, "version": version.version, "digest": signed_digest,
                "judged_against": judged_against, "required": shadow_batches, "decision": decision})
            challenger, reason = True, (f"held as the challenger until {shadow_batches} healthy shadow "
                                        "batch(es) (scoring.shadow.required_healthy_batches)")
        else:
            record = {
                "pipeline": name, "run_key": candidate.run_key, "to_version": version.version,
                "from_version": current_version, "digest": signed_digest,
                "from_digest": current.signed_digest if current else None, "decision": decision,
                **({"approval": approval.to_dict()} if approval else {}),
            }
            intent = ledger.append(LEDGER_PROMOTION_INTENT, record)
            _move(registry, name, version.version, current_version)
            moved, reason = True, f"promoted over {'no champion' if current is None else f'v{current.version}'}"
            ledger.append(LEDGER_PROMOTION, {**record, "intent_seq": intent.seq})
    if not moved:
        log.warning("model '%s' v%s: %s", name, version.version, reason)
    if not created and version.signed_digest != signed_digest:
        # A cleared and re-run run: its version was registered by the first pass, and this
        # pass's retrained candidate (another digest) is kept beside it, not registered.
        log.warning("run %s already registered version %s (digest %s); candidate %s is not registered",
                    candidate.run_key, version.version, version.signed_digest, signed_digest)
    champion = registry.champion(name)
    return {
        "version": version.version, "registered_now": created, "champion_moved": moved, "reason": reason,
        "challenger": challenger, "champion_version": champion.version if champion else None,
        "digest": version.signed_digest, "candidate_digest": signed_digest,
        "previous_version": current_version if moved else None, "approved_by": approved_by,
    }



def promote_after_shadow(home: Home, registry: Registry, ledger: Ledger, name: str, version: int) -> dict[str, Any]:
    """Move ``champion`` to a held challenger once it has scored the required healthy shadow
    batches since its hold began, if the champion is still the one its gate compared it with
    (the hold's ``judged_against``)."""
    from aire.promotion.shadow_record import healthy_streak

    with alias_lock(home, name):
        holds = ledger.find(LEDGER_SHADOW_HOLD, pipeline=name, version=version)
        challenger = registry.by_alias(name, CHALLENGER)
        current = registry.champion(name)
        if not holds or challenger is None or challenger.version != version:
            return {"moved": False, "reason": f"v{version} is not a held challenger"}
        hold = holds[-1].entry
        streak = healthy_streak(home, name, version, since=holds[-1].time)
        if streak < int(hold["required"]):
            return {"moved": False, "reason": f"{streak} of {hold['required']} healthy shadow batches"}
        current_version = current.version if current else None
        if current_version != hold["judged_against"]:
            return {"moved": False, "reason": f"the champion moved to v{current_version} since the gate compared "
                                              f"v{version} with v{hold['judged_against']}"}
        record = {"pipeline": name, "run_key": hold["run_key"], "to_version": version,
                  "from_version": current_version, "digest": hold["digest"],
                  "from_digest": current.signed_digest if current else None, "decision": hold["decision"],
                  "shadow_streak": streak}
        intent = ledger.append(LEDGER_PROMOTION_INTENT, record)
        _move(registry, name, version, current_version)
        ledger.append(LEDGER_PROMOTION, {**record, "intent_seq": intent.seq})
    log.warning("model '%s' v%s promoted after %d healthy shadow batches", name, version, streak)
    return {"moved": True, "reason": f"promoted over v{current_version} after {streak} healthy shadow batches"}


def end_challenger(home: Home, registry: Registry, ledger: Ledger, name: str, version: int,
                   shadow: dict[str, Any]) -> dict[str, Any]:
    """An unhealthy shadow batch ends the challenger: the alias goes, the ledger says why."""
    with alias_lock(home, name):
        challenger = registry.by_alias(name, CHALLENGER)
        if challenger is None or challenger.version != version:
            return {"ended": False, "reason": f"v{version} is no longer the challenger"}
        registry.delete_alias(name, CHALLENGER)
        ledger.append(LEDGER_CHALLENGER_ENDED, {"pipeline": name, "version": version, "shadow": shadow})
    log.warning("model '%s' challenger v%s ended by an unhealthy shadow batch", name, version)
    return {"ended": True, "reason": "an unhealthy shadow batch"}


def _move(registry: Registry, name: str, to_version: int, from_version: int | None) -> None:
    registry.set_alias(name, CHALLENGER, to_version)
    if from_version is not None:
        registry.set_alias(name, PREVIOUS, from_version)
    registry.set_alias(name, CHAMPION, to_version)
    registry.delete_alias(name, CHALLENGER)


def _record_registration(ledger: Ledger, version: ModelVersion, candidate: Candidate) -> None:
    """Bind the version to its run and digests in the ledger, once (a re-run finds it there).

    A version this run registered before it died is recorded on the retry, but only if it
    still names this candidate's run and digest: what a tag says now is not proof enough.
    """
    if ledger.find(LEDGER_REGISTERED, pipeline=version.name, version=version.version):
        return
    if (version.run_id, version.signed_digest) != (candidate.mlflow_run_id, candidate.signed_digest):
        log.warning("model '%s' v%s names run %s digest %s, not this candidate's: not recorded", version.name,
                    version.version, version.run_id, version.signed_digest)
        return
    ledger.append(LEDGER_REGISTERED, {
        "pipeline": version.name, "version": version.version, "mlflow_run_id": version.run_id,
        "run_key": candidate.run_key, "digest": candidate.signed_digest, "data_digest": candidate.data_digest,
    })


def complete_interrupted(registry: Registry, ledger: Ledger, name: str) -> list[int]:
    """Finish or close every promotion intent of ``name`` that has no outcome; call under the
    alias lock. Returns the intents' ledger seqs."""
    closed = {item.entry.get("intent_seq") for kind in (LEDGER_PROMOTION, LEDGER_PROMOTION_ABORTED)
              for item in ledger.find(kind, pipeline=name)}
    handled = []
    for intent in ledger.find(LEDGER_PROMOTION_INTENT, pipeline=name):
        if intent.seq in closed:
            continue
        record, champion = intent.entry, registry.champion(name)
        if champion is not None and (champion.version, champion.signed_digest) == (record["to_version"],
                                                                                   record["digest"]):
            # The champion moved and the process died before the record: finish the move's
            # other aliases (idempotent) and write the record it never wrote.
            _move(registry, name, record["to_version"], record["from_version"])
            ledger.append(LEDGER_PROMOTION, {**record, "intent_seq": intent.seq, "recovered": True})
            log.warning("model '%s': completed the promotion to v%s interrupted after the alias moved",
                        name, record["to_version"])
        else:
            ledger.append(LEDGER_PROMOTION_ABORTED, {
                "pipeline": name, "intent_seq": intent.seq, "to_version": record["to_version"],
                "champion_version": champion.version if champion else None,
                "reason": "the champion never moved to the intended version"})
            log.warning("model '%s': closed the promotion to v%s interrupted before the champion moved",
                        name, record["to_version"])
        handled.append(intent.seq)
    return handled
