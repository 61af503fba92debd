"""Most-confident review: what the model leans on hardest, by occlusion.

High-loss rows show wrong labels; the *most confident* predictions show what the model
leans on hardest. For each class, the K rows predicted most confidently as that class are
listed with the features that drive them, measured by occlusion: the drop in the class's
probability when one feature takes the values of rows drawn from the batch instead of
its own (averaged over the draws). It explains the champion and cross-fitted fold models
alike, each row with the model that scored it, and works on the encoded rows: each model
encodes the reviewed rows and the background once, and the variants swap a feature's
encoded columns, so the cost is one small forward pass per model (no pandas per variant).

The other place shortcuts hide, a single feature that gives the label away, is
``aire.analysis.leakage``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from aire.model.preprocessing import TabularPreprocessor


class EncodedScorer(Protocol):
    """What occlusion needs of a model: its encoding and scores of encoded rows.

    ``aire.model.tabular.TrainedModel`` and ``aire.model.boosted.BoostedFoldModel`` both are.
    """

    @property
    def preprocessor(self) -> TabularPreprocessor: ...

    def predict_proba_encoded(self, encoded: np.ndarray) -> np.ndarray: ...

DRIVERS = 3  # features named per reviewed row
BACKGROUND = 16  # batch rows whose values stand in for an occluded feature


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
                      models: Sequence[EncodedScorer], model_of_row: np.ndarray,
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


def _occlusion_drops(model: EncodedScorer, subset: pd.DataFrame, background: pd.DataFrame,
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
