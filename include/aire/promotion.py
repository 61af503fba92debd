"""Registering a verified candidate and moving the champion alias, one run at a time.

Alias moves happen under an exclusive lock per pipeline, so two runs promoting at once
are serialized. The champion only moves forward: a re-run of an older run's promotion
(its version already registered, a newer champion in place) leaves the champion alone;
going back is the job of rollback, which is recorded as such.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aire.registry import CHAMPION, PREVIOUS, TAG_DATA_DIGEST, TAG_SIGNED_DIGEST

if TYPE_CHECKING:
    from aire.run_context import RunContext

PROMOTION = "promotion"
log = logging.getLogger(__name__)


@contextmanager
def alias_lock(lock_dir: Path, pipeline: str) -> Iterator[None]:
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{pipeline}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def promote_candidate(ctx: RunContext, signed_digest: str) -> dict[str, Any]:
    data_digest = ctx.read_json("validation", "validation.json").get("data_digest") or ""
    tags = {TAG_SIGNED_DIGEST: signed_digest}
    if data_digest:
        tags[TAG_DATA_DIGEST] = data_digest
    with alias_lock(ctx.home.root / "locks", ctx.name):
        current = ctx.registry.champion(ctx.name)
        version, created = ctx.registry.register(ctx.name, ctx.mlflow_run_id, ctx.spec.run_key, tags)
        moved = current is None or current.version < version.version
        if moved:
            if current is not None:
                ctx.registry.set_alias(ctx.name, PREVIOUS, current.version)
            ctx.registry.set_alias(ctx.name, CHAMPION, version.version)
            ctx.ledger.append(PROMOTION, {
                "pipeline": ctx.name, "run_key": ctx.spec.run_key, "to_version": version.version,
                "from_version": current.version if current else None, "digest": signed_digest,
                "from_digest": current.signed_digest if current else None,
                "decision": ctx.read_json("decision.json"),
            })
    if not created and version.signed_digest != signed_digest:
        # A cleared and re-run run: its version was registered by the first pass, and this
        # pass's retrained candidate (another digest) is kept beside it, not registered.
        log.warning("run %s already registered version %s (digest %s); candidate %s is not registered",
                    ctx.spec.run_key, version.version, version.signed_digest, signed_digest)
    champion = ctx.registry.champion(ctx.name)
    return {
        "version": version.version, "registered_now": created, "champion_moved": moved,
        "champion_version": champion.version if champion else None, "digest": version.signed_digest,
        "candidate_digest": signed_digest,
        "previous_version": current.version if current and moved else None,
    }
