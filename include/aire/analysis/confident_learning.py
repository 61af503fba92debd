"""Confident learning: which labels are likely wrong, and how many, from probabilities alone.

The rule is Northcutt et al.'s "prune by noise rate", the one cleanlab's
``find_label_issues(filter_by="prune_by_noise_rate")`` applies: per-class thresholds (the
mean self-confidence of each class) make it robust to classes whose probabilities run
low or high; the confident joint of given vs likely-true labels, calibrated to the label
counts, says how many rows of each given label belong to each other class; that many
rows per cell are flagged. The calibrated joint's off-diagonal mass is the noise estimate.

Probabilities must be out of sample (see ``aire.analysis.error_analysis``): in-sample ones hide
the errors a model has memorised. Everything here is vectorised numpy over the n x k
probability matrix, with temporaries of that size at most, so 1M rows cost seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Rows sitting exactly on a threshold count as confident (float round-off otherwise
# decides whether the mean row of a class is in or out).
_ON_THRESHOLD = 1e-6


@dataclass(frozen=True)
class ConfidentLearning:
    thresholds: np.ndarray  # t_j per class; inf for a class no row is labeled with
    calibrated_joint: np.ndarray  # counts, [given label, likely true label], sums to n
    noise_rate: float  # off-diagonal share of the calibrated joint
    suspected: np.ndarray  # bool per row


def confident_learning(labels: np.ndarray, proba: np.ndarray) -> ConfidentLearning:
    """Confident learning on out-of-sample probabilities (cleanlab's prune_by_noise_rate).

    1. t_j = mean p_j over rows labeled j.
    2. Confident joint C[j, k]: rows labeled j whose most probable class among those with
       p >= t is k; calibrated so row j sums to the count of label j and the total to n.
    3. For every off-diagonal cell, the round(C[j, k]) rows labeled j with the largest
       margin p_k - p_j are suspects; rows whose argmax is still the given label are not.

    Step 3 pools all rows labeled j, not only the raw off-diagonal of C: calibration only
    ever scales a cell up, so pruning the raw off-diagonal would never bind. On the same
    probabilities this flags the same rows as cleanlab 2.9 (checked in bench/error_analysis.py).
    """
    n, k = proba.shape
    counts = np.bincount(labels, minlength=k)
    thresholds = per_class_thresholds(labels, proba)
    confident = proba >= thresholds - _ON_THRESHOLD
    has_confident = confident.any(axis=1)
    likely_true = np.where(confident, proba, -np.inf).argmax(axis=1)
    del confident  # n x k temporaries: keep at most two alive at 1M rows
    joint = np.zeros((k, k))
    np.add.at(joint, (labels[has_confident], likely_true[has_confident]), 1.0)
    calibrated = _calibrate(joint, counts)
    total = float(calibrated.sum())
    noise_rate = float(1.0 - np.trace(calibrated) / total) if total > 0 else 0.0

    suspected = np.zeros(n, dtype=bool)
    for given, true in zip(*np.nonzero(calibrated * (1 - np.eye(k))), strict=True):
        pool = np.flatnonzero(labels == given)
        # never flag a whole class: keep at least one row of every given label
        keep = min(round(float(calibrated[given, true])), len(pool) - 1)
        margin = proba[pool, true] - proba[pool, given]
        suspected[pool[np.argsort(-margin, kind="stable")[:keep]]] = True
    suspected &= proba.argmax(axis=1) != labels
    return ConfidentLearning(thresholds, calibrated, noise_rate, suspected)


def per_class_thresholds(labels: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Mean self-confidence of each class; inf for a class that labels no row."""
    k = proba.shape[1]
    counts = np.bincount(labels, minlength=k)
    sums = np.bincount(labels, weights=proba[np.arange(len(labels)), labels], minlength=k)
    thresholds = np.full(k, np.inf)
    present = counts > 0
    thresholds[present] = sums[present] / counts[present]
    return thresholds


def _calibrate(joint: np.ndarray, counts: np.ndarray) -> np.ndarray:
    # Scale each given-label row to that label's count, then the whole matrix to n rows:
    # rows below every threshold are thereby spread like the confident ones.
    row_sums = joint.sum(axis=1, keepdims=True)
    scaled = np.divide(joint * counts[:, None], row_sums, out=np.zeros_like(joint),
                       where=row_sums > 0)
    total = float(scaled.sum())
    calibrated: np.ndarray = scaled / total * counts.sum() if total > 0 else scaled
    return calibrated
