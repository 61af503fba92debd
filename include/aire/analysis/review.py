"""Most-confident review and the leakage check: where shortcut learning hides.

High-loss rows show wrong labels; the *most confident* predictions show what the model
leans on hardest. For each class, the K rows predicted most confidently as that class are
listed with the features that drive them, measured by occlusion: the drop in the class's
probability when one feature takes the values of rows drawn from the batch instead of
its own (averaged over the draws). It explains the champion and cross-fitted fold models
alike, each row with the model that scored it, and works on the encoded rows: each model
encodes the reviewed rows and the background once, and the variants swap a feature's
encoded columns, so the cost is one small forward pass per model (no pandas per variant).

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

from aire.model.tabular import TrainedModel

DRIVERS = 3  # features named per reviewed row
BACKGROUND = 16  # batch rows whose values stand in for an occluded feature
_BINS = 20  # quantile bins for a numeric feature in the leakage check


@dataclass(frozen=True)
class LeakageFinding:
    feature: str
    balanced_accuracy: float  # of the one-feature predictor on held-out halves
    flagged: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def most_confident(samples: pd.DataFrame, per_class: int) -> pd.DataFrame:
    """The ``per_class`` rows predicted most confidently as each class, most confident first.

    ``samples`` is the analysis' per-row frame (``predicted``, ``confidence``, ``position``).
    Works on index arrays: a group-by would copy the whole frame, at 1M rows 200 MB.
    """
    predicted = samples["predicted"].to_numpy()
    confidence = samples["confidence"].to_numpy()
    picks, ranks = [], []
    for value in np.unique(predicted):
        rows = np.flatnonzero(predicted == value)
        top = rows[np.argsort(-confidence[rows], kind="stable")[:per_class]]
        picks.append(top)
        ranks.append(np.arange(1, len(top) + 1))
    if not picks:
        return samples.head(0).assign(rank=pd.Series(dtype=np.int64))
    return samples.iloc[np.concatenate(picks)].assign(rank=np.concatenate(ranks)).reset_index(
        drop=True)


def occlusion_drivers(rows: pd.DataFrame, batch: pd.DataFrame, features: Sequence[str],
                      models: Sequence[TrainedModel], model_of_row: np.ndarray,
                      class_index: np.ndarray, seed: int = 0) -> list[str]:
    """``feature=value (+drop)`` for the features whose occlusion lowers p(class) most.

    Occluding a feature gives it, in turn, the value of each of ``BACKGROUND`` rows drawn
    from the batch, and averages: one fixed "typical" value would show no effect for the
    many rows that already hold it. ``rows`` index ``batch`` by ``position``;
    ``class_index`` is each row's predicted class. Each model encodes its rows and the
    background once; the occluded variants are built by swapping a feature's encoded
    columns (encoding is row-wise, so this equals encoding the altered rows), and scored
    in one call. A feature the model does not take as input has no effect (drop 0).
    """
    if rows.empty:
        return []
    background = batch.sample(n=min(BACKGROUND, len(batch)), random_state=seed)
    original = batch.iloc[rows["position"].to_numpy()].reset_index(drop=True)
    drops = np.zeros((len(original), len(features)))
    for m, model in enumerate(models):
        mine = np.flatnonzero(model_of_row[rows["position"].to_numpy()] == m)
        if len(mine):
            drops[mine] = _occlusion_drops(model, original.iloc[mine], background, features,
                                           class_index[mine])
    described = []
    for i, row in enumerate(drops):
        order = np.argsort(-row, kind="stable")[:DRIVERS]
        described.append("; ".join(
            f"{features[j]}={original.at[i, features[j]]} ({row[j]:+.3f})" for j in order))
    return described


def _occlusion_drops(model: TrainedModel, subset: pd.DataFrame, background: pd.DataFrame,
                     features: Sequence[str], classes: np.ndarray) -> np.ndarray:
    """[row, feature]: p(class) minus its mean with the feature set to each background row."""
    n, b = len(subset), len(background)
    encoded = model.preprocessor.transform(pd.concat([subset, background], ignore_index=True))
    rows, others = encoded[:n], encoded[n:]
    spans = model.preprocessor.spans()
    used = [(j, spans[column]) for j, column in enumerate(features) if column in spans]
    # variants[f, k, i]: row i with feature f's columns taken from background row k
    variants = np.broadcast_to(rows, (len(used), b, n, rows.shape[1])).copy()
    for f, (_, span) in enumerate(used):
        variants[f, :, :, span] = others[:, None, span]
    p = model.predict_proba_encoded(np.concatenate([rows, variants.reshape(-1, rows.shape[1])]))
    picked = p[np.arange(len(p)), np.tile(classes, 1 + len(used) * b)]
    occluded = picked[n:].reshape(len(used), b, n).mean(axis=1)
    drops = np.zeros((n, len(features)))
    drops[:, [j for j, _ in used]] = (picked[:n] - occluded).T
    return drops


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
