"""A ``challenger`` scoring the same batch in shadow: agreement, distance, quality once labeled.

The challenger is loaded like any served model (verified, cached per digest). With
``scoring.shadow.canary_share`` < 1 it scores only that share of rows, chosen by row hash so
the same row is always in or out. Per batch it records: rows compared, agreement of the
predicted class with the champion's, the total-variation distance between their
predicted-class shares, the mean absolute difference of their probabilities, and, when the
batch carries the label column, both models' accuracy on the same rows. A batch is healthy
when agreement >= ``min_agreement`` and distance <= ``max_distance``. The records are one JSON
line per batch in ``<home>/scoring/<pipeline>/shadow.jsonl``; ``healthy_streak`` reads them
back (``aire.promotion.shadow_record``; ``aire.promotion.promote`` asks it before a
challenger is promoted). An unhealthy batch ends the challenger when
``scoring.shadow.end_unhealthy`` (and a promotion is required to wait for shadow batches):
the alias goes, and the ledger records why (``challenger_ended``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aire.constants import CHALLENGER
from aire.errors import AireError
from aire.promotion.shadow_record import healthy_streak, shadow_log
from aire.scoring.cache import PROCESS_CACHE, row_hashes
from aire.scoring.encoding import encode
from aire.scoring.loader import LoadedModel, load_verified

if TYPE_CHECKING:
    import pandas as pd

    from aire.config import PipelineConfig, Shadow
    from aire.home import Home
    from aire.registry.mlflow_registry import Registry
    from aire.scoring.batch import ChunkResult
    from aire.trust.ledger import Ledger

log = logging.getLogger(__name__)


@dataclass
class ShadowTally:
    challenger: LoadedModel
    settings: Shadow
    label: str
    classes: Sequence[object]
    rows: int = 0
    agree: int = 0
    abs_diff: float = 0.0
    champion_counts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    challenger_counts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    labeled: int = 0
    champion_correct: int = 0
    challenger_correct: int = 0

    def add(self, chunk: pd.DataFrame, result: ChunkResult) -> None:
        from aire.scoring.batch import model_proba

        model = self.challenger.model
        if [str(c) for c in model.classes] != [str(c) for c in self.classes]:
            raise AireError("the challenger's classes differ from the champion's: no shadow comparison")
        encoded = encode(model.preprocessor, chunk)
        hashes = row_hashes(chunk, [*model.preprocessor.numeric, *model.preprocessor.categorical])
        rows = result.verdicts.scorable & ~np.isnan(result.champion_proba).any(axis=1)
        for column in model.preprocessor.numeric:
            rows &= ~encoded.bad_numeric[column]
        if self.settings.canary_share < 1:
            rows &= (hashes % np.uint64(10_000)) < np.uint64(int(self.settings.canary_share * 10_000))
        proba, _ = model_proba(self.challenger, encoded.matrix, hashes, rows, PROCESS_CACHE)
        champion = result.champion_proba[rows]
        challenger = proba[rows]
        if not len(champion):
            return
        n_classes = len(self.classes)
        if not len(self.champion_counts):
            self.champion_counts, self.challenger_counts = np.zeros(n_classes), np.zeros(n_classes)
        top_a, top_b = champion.argmax(axis=1), challenger.argmax(axis=1)
        self.rows += len(champion)
        self.agree += int((top_a == top_b).sum())
        self.abs_diff += float(np.abs(champion - challenger).sum() / n_classes)
        self.champion_counts += np.bincount(top_a, minlength=n_classes)
        self.challenger_counts += np.bincount(top_b, minlength=n_classes)
        if self.label in chunk.columns:
            index = {str(c): i for i, c in enumerate(self.classes)}
            labels = chunk[self.label].to_numpy()[rows]
            truth = np.array([index.get(_key(v), -1) for v in labels])
            known = truth >= 0
            self.labeled += int(known.sum())
            self.champion_correct += int((top_a[known] == truth[known]).sum())
            self.challenger_correct += int((top_b[known] == truth[known]).sum())

    def to_dict(self) -> dict[str, Any]:
        from aire.scoring.stats import total_variation

        def shares(counts: np.ndarray) -> list[float]:
            total = float(counts.sum()) if len(counts) else 0.0
            return [float(c) / total for c in counts] if total else []

        agreement = self.agree / self.rows if self.rows else None
        distance = total_variation(shares(self.champion_counts), shares(self.challenger_counts)) \
            if self.rows else None
        healthy = bool(self.rows and agreement is not None and distance is not None
                       and agreement >= self.settings.min_agreement and distance <= self.settings.max_distance)
        return {
            "challenger": {"version": self.challenger.version, "digest": self.challenger.digest},
            "rows": self.rows, "canary_share": self.settings.canary_share,
            "agreement": agreement, "distance": distance,
            "mean_abs_probability_diff": self.abs_diff / self.rows if self.rows else None,
            "labeled_rows": self.labeled,
            "champion_accuracy": self.champion_correct / self.labeled if self.labeled else None,
            "challenger_accuracy": self.challenger_correct / self.labeled if self.labeled else None,
            "healthy": healthy,
            "thresholds": {"min_agreement": self.settings.min_agreement, "max_distance": self.settings.max_distance},
        }


def _key(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "item"):
        return _key(value.item())
    return str(value)


@dataclass
class ShadowRun:
    tally_factory: Any

    def tally(self) -> ShadowTally:
        return self.tally_factory()  # type: ignore[no-any-return]


def load_challenger(registry: Registry, config: PipelineConfig, champion: LoadedModel, *, public_key: Path,
                    ledger: Ledger) -> ShadowRun | None:
    """The verified challenger, ready to score in shadow; None when there is none (or it is the champion)."""
    version = registry.by_alias(config.name, CHALLENGER)
    if version is None or version.version == champion.version:
        return None
    try:
        loaded = load_verified(registry, version, public_key=public_key, ledger=ledger, settings=config.scoring)
    except AireError as exc:
        log.warning("challenger v%s not verified; no shadow scoring: %s", version.version, exc)
        return None
    settings = config.scoring.shadow
    classes = list(champion.model.classes)
    return ShadowRun(lambda: ShadowTally(loaded, settings, config.dataset.label, classes))


def record_shadow(home: Home, config: PipelineConfig, record: dict[str, Any], batch_id: str) -> dict[str, Any]:
    """Append this batch's record; returns it with the challenger's healthy streak."""
    path = shadow_log(home, config.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    from datetime import UTC, datetime

    entry = {**record, "batch_id": batch_id, "recorded_at": datetime.now(UTC).isoformat(timespec="microseconds")}
    with path.open("a", encoding="utf-8") as handle:  # one line per batch: an append is one write
        handle.write(json.dumps(entry, default=str, allow_nan=False) + "\n")
    version = record["challenger"]["version"]
    entry["healthy_streak"] = healthy_streak(home, config.name, version)
    shadow = config.scoring.shadow
    if shadow.required_healthy_batches > 0:
        from aire.promotion.promote import end_challenger, promote_after_shadow
        from aire.registry.mlflow_registry import Registry
        from aire.trust.ledger import Ledger

        registry, ledger = Registry(home.mlflow_tracking_uri, home.mlflow_artifact_root), Ledger.for_home(home)
        if not record["healthy"] and shadow.end_unhealthy:
            entry["ended"] = end_challenger(home, registry, ledger, config.name, version, record)
        elif record["healthy"]:
            entry["promotion"] = promote_after_shadow(home, registry, ledger, config.name, version)
    return entry
