"""Boosted-tree fold models: the batch's full class layout, small folds, slices, bad folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aire.config import Features
from aire.errors import InputError
from aire.model.boosted import fit_boosted

FEATURES = Features(numeric=["x0", "x1"], categorical=["c"])


def frame(rows: int, labels: np.ndarray | list[int], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = np.asarray(labels)
    # x0 carries the label, so a fitted model ranks its own class first
    return pd.DataFrame({"x0": y + rng.normal(scale=0.3, size=rows),
                         "x1": rng.normal(size=rows),
                         "c": rng.choice(["a", "b"], size=rows), "y": y})


def test_a_class_the_fold_never_saw_gets_probability_zero() -> None:
    train = frame(200, np.arange(200) % 2)
    model = fit_boosted(train, FEATURES, "y", [0, 1, 2], seed=0)
    proba = model.predict_proba(frame(50, np.arange(50) % 2, seed=1))
    assert proba.shape == (50, 3)
    assert (proba[:, 2] == 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    scored = frame(50, np.arange(50) % 2, seed=1)
    assert (proba.argmax(axis=1) == scored["y"]).mean() > 0.9


def test_a_fold_with_one_row_of_a_class_still_trains() -> None:
    # sklearn's stratified early-stopping split needs two rows per class: this fold trains
    # a fixed number of rounds instead of failing
    labels = np.r_[np.arange(120) % 2, [2]]
    model = fit_boosted(frame(121, labels), FEATURES, "y", [0, 1, 2], seed=0)
    assert model.estimator.n_iter_ == model.estimator.max_iter
    assert model.predict_proba(frame(10, np.arange(10) % 2)).shape == (10, 3)


def test_large_folds_stop_early() -> None:
    model = fit_boosted(frame(2000, np.arange(2000) % 2), FEATURES, "y", [0, 1], seed=0)
    assert model.estimator.n_iter_ < model.estimator.max_iter


def test_scoring_in_slices_gives_the_same_probabilities() -> None:
    model = fit_boosted(frame(300, np.arange(300) % 2), FEATURES, "y", [0, 1], seed=0)
    rows = frame(103, np.arange(103) % 2, seed=2)
    np.testing.assert_array_equal(model.predict_proba(rows, batch_size=10),
                                  model.predict_proba(rows))
    with pytest.raises(InputError, match="batch_size"):
        model.predict_proba(rows, batch_size=0)


def test_a_single_class_fold_predicts_its_class() -> None:
    # a batch whose rare class has fewer rows than folds leaves folds without it
    model = fit_boosted(frame(50, np.zeros(50, dtype=int)), FEATURES, "y", [0, 1], seed=0)
    proba = model.predict_proba(frame(5, [0, 1, 0, 1, 1], seed=3))
    np.testing.assert_array_equal(proba, np.tile([1.0, 0.0], (5, 1)))
