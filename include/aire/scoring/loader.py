"""Verify before load, for scoring: a registered version reaches memory only through here.

``aire.trust.verify.fetch_verified`` checks the signature with the home's public key and the
digest against the version's tag and its ledger record. A version that verified is kept per
(model, version, digest) for the life of the process, so a DAG task or a bench scoring many
chunks verifies once; a version whose digest tag changes is a new key and verifies again.
The ODD is learned from the verified reference (its data digest checked too) and kept the
same way.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aire.constants import REFERENCE_PROFILE
from aire.errors import AireError
from aire.scoring.odd import OddProfile, learn_odd

if TYPE_CHECKING:
    from aire.config import Scoring
    from aire.model.tabular import TrainedModel
    from aire.registry.mlflow_registry import ModelVersion, Registry
    from aire.trust.ledger import Ledger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    version: int
    digest: str
    model: TrainedModel
    odd: OddProfile


_CACHE: dict[tuple[str, int, str, str], LoadedModel] = {}


def clear_cache() -> None:
    """Forget every verification (tests; a key rotation)."""
    _CACHE.clear()


def load_verified(registry: Registry, version: ModelVersion, *, public_key: Path, ledger: Ledger,
                  settings: Scoring) -> LoadedModel:
    """The version's model and ODD once its signature and recorded digest verify; cached per digest.

    Raises VerificationError (never loaded) or AireError (unreachable artifacts).
    """
    key = (version.name, version.version, str(version.signed_digest), settings.model_dump_json())
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    from aire.data.reference_profile import ReferenceProfile
    from aire.model.tabular import load_model
    from aire.trust.verify import fetch_reference, fetch_verified

    with tempfile.TemporaryDirectory(prefix=f"aire-score-{version.name}-v{version.version}-") as tmp:
        verified = fetch_verified(registry, version, public_key=public_key, ledger=ledger, workdir=Path(tmp))
        model = load_model(verified.model_dir)
        profile_path = verified.model_dir / REFERENCE_PROFILE
        profile = ReferenceProfile.from_dict(json.loads(profile_path.read_text())) if profile_path.exists() else None
        try:
            reference = fetch_reference(registry, verified, Path(tmp) / "reference")
        except AireError as exc:  # ranges and categories still hold; distance and confidence are not learned
            log.warning("version %s: no verified reference (%s); ODD without distance and confidence",
                        version.version, exc)
            reference = None
        odd = learn_odd(model, profile, reference, verified.digest, settings)
    loaded = LoadedModel(version.version, verified.digest, model, odd)
    _CACHE[key] = loaded
    return loaded
