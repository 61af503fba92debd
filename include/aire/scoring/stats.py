"""Distribution summaries that a scored batch and its model's reference share, for monitoring.

The reference side is computed once per model digest on the model's verified training batch
(its outputs there stand in for "what the champion predicts on data like its own"); the
batch side with the same bin edges, so the monitor compares two small JSON objects and never
re-reads a batch. Shares are fractions of rows; histograms have fixed edges.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CONFIDENCE_EDGES = [round(0.1 * i, 1) for i in range(11)]
NUMERIC_BINS = 10


def quantile_edges(values: np.ndarray) -> list[float]:
    """Interior decile edges of the reference's finite values (deduplicated)."""
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return []
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1]))
    return [float(e) for e in edges]


def bin_counts(values: np.ndarray, edges: list[float]) -> np.ndarray:
    finite = values[np.isfinite(values)]
    return np.bincount(np.searchsorted(np.asarray(edges), finite, side="right"), minlength=len(edges) + 1)


@dataclass
class Distribution:
    """Counts that add up across chunks; ``to_dict`` turns them into shares."""

    classes: list[str]
    numeric_edges: dict[str, list[float]]
    rows: int = 0
    class_counts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    confidence_counts: np.ndarray = field(default_factory=lambda: np.zeros(len(CONFIDENCE_EDGES) - 1))
    numeric_counts: dict[str, np.ndarray] = field(default_factory=dict)
    category_counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, proba: np.ndarray | None, numeric: dict[str, np.ndarray],
            categories: dict[str, Any]) -> None:
        if proba is not None and len(proba):
            if len(self.class_counts) == 0:
                self.class_counts = np.zeros(len(self.classes))
            self.class_counts += np.bincount(proba.argmax(axis=1), minlength=len(self.classes))
            confidence = proba.max(axis=1)
            self.confidence_counts += np.histogram(confidence, bins=CONFIDENCE_EDGES)[0]
            self.rows += len(proba)
        for column, values in numeric.items():
            edges = self.numeric_edges.get(column)
            if edges is not None:
                counts = bin_counts(values, edges)
                self.numeric_counts[column] = self.numeric_counts.get(column, 0) + counts
        for column, series in categories.items():
            seen = self.category_counts.setdefault(column, {})
            for value, count in series.value_counts(dropna=False).items():
                seen[str(value)] = seen.get(str(value), 0) + int(count)

    def to_dict(self) -> dict[str, Any]:
        def shares(counts: np.ndarray) -> list[float]:
            total = float(np.sum(counts))
            return [float(c) / total if total else 0.0 for c in counts]

        return {
            "rows": self.rows,
            "classes": list(self.classes),
            "class_shares": shares(self.class_counts) if len(self.class_counts) else [],
            "confidence_edges": CONFIDENCE_EDGES,
            "confidence_shares": shares(self.confidence_counts),
            "mean_confidence": _mean_confidence(self.confidence_counts),
            "numeric_edges": self.numeric_edges,
            "numeric_shares": {c: shares(v) for c, v in self.numeric_counts.items()},
            "category_shares": {c: {k: n / max(1, sum(v.values())) for k, n in v.items()}
                                for c, v in self.category_counts.items()},
        }


def _mean_confidence(counts: np.ndarray) -> float | None:
    total = float(np.sum(counts))
    if not total:
        return None
    centres = [(a + b) / 2 for a, b in itertools.pairwise(CONFIDENCE_EDGES)]
    return float(np.dot(counts, centres) / total)


def psi(expected: list[float], actual: list[float], floor: float = 1e-4) -> float:
    """Population stability index between two share vectors of the same bins."""
    e = np.maximum(np.asarray(expected, dtype=float), floor)
    a = np.maximum(np.asarray(actual, dtype=float), floor)
    return float(np.sum((a - e) * np.log(a / e)))


def total_variation(p: list[float], q: list[float]) -> float:
    """Half the L1 distance between two share vectors (0 same, 1 disjoint)."""
    if len(p) != len(q):
        return 1.0
    return float(0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum())


def category_tv(reference: dict[str, float], batch: dict[str, float]) -> float:
    keys = set(reference) | set(batch)
    return 0.5 * sum(abs(reference.get(k, 0.0) - batch.get(k, 0.0)) for k in keys)
