"""Gradient-boosted trees for cross-fitting: fast fold models that are never deployed.

Error analysis without a champion needs out-of-fold probabilities for every row of the
batch, so it trains K fold models on the batch itself. Trained as the tabular MLP, that is
K full trainings: at 30k rows most of the stage's wall. sklearn's histogram gradient
boosting fits the same encoded rows in about a second per fold on two cores and, on the
calibration panel, ranks flipped labels as well (bench/error_analysis_panel.py; the
figures are in the docstring of ``aire.analysis.error_analysis``).

A fold model is used only inside the stage: to score its held-out rows and to explain the
most confident of them (occlusion in ``aire.analysis.review``), so it offers the same
scoring surface as ``TrainedModel`` (``preprocessor``, ``classes``, ``predict_proba`` and
``predict_proba_encoded``) and has no file format: nothing here is saved, signed or served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from aire.config import Features
from aire.errors import InputError
from aire.model.preprocessing import TabularPreprocessor
from aire.model.tabular import ClassLabel, encode_labels

# Boosting rounds at most; early stopping on a 10% validation split ends most fits sooner.
MAX_ITER = 200
# Rows of a fold's training set held out for early stopping, and the rounds without gain
# after which it stops (sklearn's defaults, fixed here so the bench's figures stay valid).
VALIDATION_FRACTION = 0.1
N_ITER_NO_CHANGE = 10
FIXED_ITER = 100  # rounds of a fold too small to hold out a validation split (sklearn's default)


@dataclass
class BoostedFoldModel:
    """A fitted HistGradientBoostingClassifier over the tabular encoding, full class layout."""

    preprocessor: TabularPreprocessor
    classes: list[ClassLabel]
    label: str
    estimator: Any = field(repr=False)  # sklearn HistGradientBoostingClassifier
    # column of each of the estimator's classes in ``classes`` (a fold may miss a rare class)
    columns: np.ndarray = field(repr=False)

    def predict_proba(self, df: pd.DataFrame, batch_size: int = 65536) -> np.ndarray:
        """Class probabilities in ``classes`` order, encoded and scored a slice at a time."""
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        out = np.empty((len(df), len(self.classes)), dtype=np.float64)
        for start in range(0, len(df), batch_size):
            chunk = self.preprocessor.transform(df.iloc[start:start + batch_size])
            out[start:start + len(chunk)] = self.predict_proba_encoded(chunk)
        return out

    def predict_proba_encoded(self, encoded: np.ndarray) -> np.ndarray:
        """Probabilities of encoded rows; a class the fold never saw gets probability 0."""
        proba = np.zeros((len(encoded), len(self.classes)), dtype=np.float64)
        if len(encoded):
            proba[:, self.columns] = self.estimator.predict_proba(encoded)
        return proba


def fit_boosted(train_df: pd.DataFrame, features: Features, label: str,
                classes: Sequence[ClassLabel], *, seed: int) -> BoostedFoldModel:
    """One fold model on ``train_df``; ``classes`` is the batch's layout (all folds share it)."""
    from sklearn.ensemble import HistGradientBoostingClassifier  # heavy: only when cross-fitting

    preprocessor = TabularPreprocessor.fit(train_df, features)
    y = encode_labels(train_df[label], classes, label)
    present = np.unique(y)
    if len(present) == 1:
        # A batch whose rarer class has fewer rows than folds leaves some folds with one
        # class: as the MLP would, the fold model predicts it, so a held-out row of the
        # other class reads as a likely label error.
        return BoostedFoldModel(preprocessor, list(classes), label, _OneClass(), present)
    counts = np.bincount(y)[present]
    # sklearn splits the validation rows stratified: every class needs two rows, and the
    # split a row per class. A fold too small for that trains the fixed rounds instead.
    stop_early = counts.min() >= 2 and int(VALIDATION_FRACTION * len(y)) >= len(present)
    estimator = HistGradientBoostingClassifier(
        max_iter=MAX_ITER if stop_early else FIXED_ITER, early_stopping=stop_early,
        validation_fraction=VALIDATION_FRACTION, n_iter_no_change=N_ITER_NO_CHANGE,
        random_state=seed)
    estimator.fit(preprocessor.transform(train_df), y)
    return BoostedFoldModel(preprocessor, list(classes), label, estimator,
                            np.asarray(estimator.classes_, dtype=np.int64))


class _OneClass:
    """The estimator of a fold with one class: that class, with probability 1."""

    def predict_proba(self, encoded: np.ndarray) -> np.ndarray:
        return np.ones((len(encoded), 1))
