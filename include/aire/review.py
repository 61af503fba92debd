"""Most-confident review and the leakage check: where shortcut learning hides.

High-loss rows show wrong labels; the *most confident* predictions show what the model
leans on hardest. For each class, the K rows predicted most confidently as that class are
listed with the features that drive them, measured by occlusion: the drop in the class's
probability when one feature takes the values of rows drawn from the batch instead of
its own (averaged over the draws). It needs nothing but ``predict_proba``, so it explains
the champion and cross-fitted fold models alike, each row with the model that scored it.

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

from aire.model import TrainedModel

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
    ``class_index`` is each row's predicted class. One ``predict_proba`` call per model.
    """
    if rows.empty:
        return []
    background = batch.sample(n=min(BACKGROUND, len(batch)), random_state=seed)
    original = batch.iloc[rows["position"].to_numpy()].reset_index(drop=True)
    drops = np.zeros((len(original), len(features)))
    for m, model in enumerate(models):
        mine = np.flatnonzero(model_of_row[rows["position"].to_numpy()] == m)
        if not len(mine):
            continue
        subset = original.iloc[mine]
        repeated = subset.iloc[np.tile(np.arange(len(mine)), len(background))]
        variants = [subset] + [
            repeated.assign(**{column: np.repeat(background[column].to_numpy(), len(mine))})
            for column in features]
        p = model.predict_proba(pd.concat(variants, ignore_index=True))
        classes = np.concatenate([class_index[mine],
                                  np.tile(class_index[mine], len(background) * len(features))])
        picked = p[np.arange(len(p)), classes]
        occluded = picked[len(mine):].reshape(len(features), len(background), len(mine))
        drops[mine] = (picked[:len(mine)] - occluded.mean(axis=1)).T
    described = []
    for i, row in enumerate(drops):
        order = np.argsort(-row, kind="stable")[:DRIVERS]
        described.append("; ".join(
            f"{features[j]}={original.at[i, features[j]]} ({row[j]:+.3f})" for j in order))
    return described


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
    """Small integer codes: categories as they are, numbers cut into quantile bins."""
    if pd.api.types.is_numeric_dtype(column) and column.nunique(dropna=False) > _BINS:
        binned = pd.qcut(column, q=_BINS, labels=False, duplicates="drop")
        return np.asarray(pd.Series(binned).fillna(-1).to_numpy(dtype=np.int64) + 1)
    codes, _ = pd.factorize(column, use_na_sentinel=False)  # a missing value is a value
    return np.asarray(codes, dtype=np.int64)


def _two_fold_balanced_accuracy(codes: np.ndarray, labels: np.ndarray, half: np.ndarray,
                                n_classes: int) -> float:
    n_codes = int(codes.max()) + 1 if len(codes) else 1
    correct = np.zeros(n_classes)
    for learn in (half, ~half):
        score = ~learn
        table = np.bincount(codes[learn] * n_classes + labels[learn],
                            minlength=n_codes * n_classes).reshape(n_codes, n_classes)
        fallback = int(np.bincount(labels[learn], minlength=n_classes).argmax())
        guess = np.where(table.sum(axis=1) > 0, table.argmax(axis=1), fallback)
        hit = guess[codes[score]] == labels[score]
        correct += np.bincount(labels[score], weights=hit, minlength=n_classes)
    support = np.bincount(labels, minlength=n_classes)
    present = support > 0
    return float((correct[present] / support[present]).mean()) if present.any() else 0.0
