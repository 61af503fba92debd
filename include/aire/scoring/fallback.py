"""Who scores when the champion cannot: the previous verified version, else a documented baseline.

The chain is the ``champion`` alias, then ``previous``, then every other registered version,
newest first; the first that verifies serves. Each refusal is kept (version and reason) for
the summary and the incident. When none verifies, the baseline is the config's
``scoring.baseline_prior``: fixed class probabilities (the prior model; its top class is the
majority baseline), which needs nothing from the registry. With no baseline configured the
batch is refused: nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aire.constants import CHAMPION, PREVIOUS
from aire.errors import AireError, VerificationError
from aire.scoring.loader import LoadedModel, load_verified

if TYPE_CHECKING:
    from aire.config import Scoring
    from aire.registry.mlflow_registry import ModelVersion, Registry
    from aire.trust.ledger import Ledger


@dataclass(frozen=True)
class Baseline:
    """The prior model: the same class probabilities for every row."""

    classes: list[str]
    probabilities: list[float]

    def predict_proba(self, rows: int) -> np.ndarray:
        return np.tile(np.asarray(self.probabilities, dtype=np.float64), (rows, 1))


@dataclass
class Serving:
    """What scores this batch: a verified version (``source`` champion or fallback) or the baseline."""

    source: str  # champion | previous | version | baseline
    model: LoadedModel | None
    baseline: Baseline | None
    refused: list[dict[str, Any]] = field(default_factory=list)  # versions that did not verify

    @property
    def fell_back(self) -> bool:
        return self.source != CHAMPION

    @property
    def version(self) -> int | None:
        return self.model.version if self.model else None

    @property
    def digest(self) -> str:
        return self.model.digest if self.model else "baseline"


def candidates(registry: Registry, name: str) -> list[tuple[str, ModelVersion]]:
    """The versions to try, in order, each once: champion, previous, then newest first."""
    order: list[tuple[str, ModelVersion]] = []
    seen: set[int] = set()
    for alias in (CHAMPION, PREVIOUS):
        found = registry.by_alias(name, alias)
        if found is not None and found.version not in seen:
            order.append((alias, found))
            seen.add(found.version)
    for version in reversed(registry.versions(name)):
        if version.version not in seen:
            order.append(("version", version))
            seen.add(version.version)
    return order


def resolve(registry: Registry, name: str, *, public_key: Path, ledger: Ledger, settings: Scoring,
            first_only: bool = False) -> Serving:
    """The first version in ``candidates`` that verifies, else the baseline; VerificationError if neither."""
    refused: list[dict[str, Any]] = []
    for source, version in candidates(registry, name):
        try:
            loaded = load_verified(registry, version, public_key=public_key, ledger=ledger, settings=settings)
        except AireError as exc:  # VerificationError, or artifacts that are gone
            refused.append({"version": version.version, "alias": source, "reason": str(exc)[:500]})
            if first_only:
                break
            continue
        return Serving(source, loaded, None, refused)
    if settings.baseline_prior:
        prior = settings.baseline_prior
        return Serving("baseline", None, Baseline(list(prior), list(prior.values())), refused)
    reasons = "; ".join(f"v{r['version']}: {r['reason']}" for r in refused) or "no registered version"
    raise VerificationError(f"model '{name}': no version verifies and scoring.baseline_prior is not set ({reasons})")
