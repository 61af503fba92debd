"""The leakage check: a single feature that alone predicts the label.

The leakage check asks, for each model input on its own, how well it predicts the label
on rows it has not seen: a table of label counts per value (numeric inputs cut into
quantile bins) is learned on one half of the batch and scored on the other, both ways.
A balanced accuracy near 1 means one feature alone gives the label away (a copied
label, an outcome recorded after the fact). Learning on one half keeps an id-like
column, which separates rows perfectly in sample, from looking like a leak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

_BINS = 20  # quantile bins for a numeric feature


@dataclass(frozen=True)
class LeakageFinding:
    feature: str
    balanced_accuracy: float  # of the one-feature predictor on held-out halves
    flagged: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def leakage_check(batch: pd.DataFrame, features: Sequence[str], labels: np.ndarray,
                  n_classes: int, threshold: float, seed: int) -> tuple[LeakageFinding, ...]:
    """Each feature's held-out balanced accuracy as the only input; highest first."""
    rng = np.random.default_rng(seed)
    half = rng.random(len(batch)) < 0.5
    findings = []
    for column in features:
        codes = _codes(batch[column])
        score = _two_fold_balanced_accuracy(codes, labels, half, n_classes)
        findings.append(LeakageFinding(column, round(score, 4), score >= threshold))
    return tuple(sorted(findings, key=lambda f: -f.balanced_accuracy))


def _codes(column: pd.Series) -> np.ndarray:
    """Small integer codes: categories as they are, numbers cut into quantile bins.

    Bins are pd.qcut's (right-closed, duplicate edges dropped; missing is code 0), computed
    with numpy: the check runs on every feature of every batch.
    """
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        present = values[~np.isnan(values)]
        if len(np.unique(present)) + (len(present) < len(values)) > _BINS:
            edges = np.unique(np.quantile(present, np.linspace(0, 1, _BINS + 1)))
            codes = np.searchsorted(edges[1:-1], values, side="left") + 1
            return np.asarray(np.where(np.isnan(values), 0, codes), dtype=np.int64)
    codes, _ = pd.factorize(column, use_na_sentinel=False)  # a missing value is a value
    return np.asarray(codes, dtype=np.int64)


def _two_fold_balanced_accuracy(codes: np.ndarray, labels: np.ndarray, half: np.ndarray,
                                n_classes: int) -> float:
    """Each half scored by the value->label table learned on the other; mean recall per class."""
    n_codes = int(codes.max()) + 1 if len(codes) else 1
    side = half.astype(np.int64)
    # table[h, value, label]: counts on half h, both halves in one pass
    table = np.bincount((side * n_codes + codes) * n_classes + labels,
                        minlength=2 * n_codes * n_classes).reshape(2, n_codes, n_classes)
    fallback = table.sum(axis=1).argmax(axis=1)  # the majority label of each half
    guess = np.where(table.sum(axis=2) > 0, table.argmax(axis=2), fallback[:, None])
    hit = guess[1 - side, codes] == labels
    correct = np.bincount(labels, weights=hit, minlength=n_classes)
    support = np.bincount(labels, minlength=n_classes)
    present = support > 0
    return float((correct[present] / support[present]).mean()) if present.any() else 0.0
