"""Paired bootstrap standard errors of "champion minus candidate" for macro F1, ROC AUC and
calibration error, so the gate can tell a regression from the noise of a small holdout.

Accuracy has a closed-form paired standard error (``aire.evaluation.quality.compare_quality``);
these three metrics do not, because they are not means of per-row values. Both models are
scored on the same resampled rows in each replicate, which keeps the correlation between
them (it is what makes a paired difference far less noisy than two separate scores).

The metrics themselves are ``aire.evaluation.metrics``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from aire.evaluation.metrics import scores

REPLICATES = 200
# Replicates are drawn over at most this many rows, and the standard error is scaled to the
# full holdout (it shrinks as 1/sqrt(rows)): memory and time stay flat on 1M-row holdouts.
MAX_ROWS = 5000


@dataclass(frozen=True)
class DropErrors:
    """Standard errors of champion - candidate (F1, AUC) and candidate - champion (ECE)."""

    macro_f1: float
    roc_auc: float | None
    ece: float


def paired_drop_errors(y_candidate: np.ndarray, candidate: np.ndarray, positive_candidate: int,
                       y_champion: np.ndarray, champion: np.ndarray, positive_champion: int,
                       *, replicates: int = REPLICATES, max_rows: int = MAX_ROWS, seed: int = 0) -> DropErrors:
    """Bootstrap over rows, both models on the same draw each time. ``y_*`` are the true labels
    as each model's class indices (the two models may order their classes differently)."""
    n = len(y_candidate)
    if n < 2:
        return DropErrors(0.0, None, 0.0)
    rng = np.random.default_rng(seed)
    m = min(n, max_rows)
    base = rng.choice(n, size=m, replace=False) if m < n else np.arange(n)
    f1, auc, ece = [], [], []
    for _ in range(replicates):
        rows = base[rng.integers(0, m, size=m)]
        a = scores(y_candidate[rows], candidate[rows], positive_candidate)
        b = scores(y_champion[rows], champion[rows], positive_champion)
        f1.append(b.macro_f1 - a.macro_f1)
        ece.append(a.ece - b.ece)
        if a.roc_auc is not None and b.roc_auc is not None:
            auc.append(b.roc_auc - a.roc_auc)
    scale = math.sqrt(m / n)  # from the standard error over m rows to that over n

    def se(values: list[float]) -> float:
        return float(np.std(values, ddof=1) * scale)

    # A replicate missing a class has no AUC; with most of them missing there is no estimate.
    return DropErrors(se(f1), se(auc) if len(auc) >= replicates // 2 else None, se(ece))
