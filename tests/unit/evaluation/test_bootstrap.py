"""The gate's bootstrap standard errors: the numpy metrics agree with scikit-learn, and the
errors behave as standard errors (zero for identical models, shrinking with more rows)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from aire.evaluation.bootstrap import paired_drop_errors
from aire.evaluation.metrics import scores


def _models(n: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    signal = np.eye(n_classes)[y] * 1.5
    a = rng.normal(size=(n, n_classes)) + signal
    b = a + rng.normal(scale=0.7, size=(n, n_classes))  # a second, correlated model
    softmax = lambda z: np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return y, softmax(a), softmax(b)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_metrics_agree_with_scikit_learn(n_classes: int) -> None:
    y, proba, _ = _models(500, n_classes, seed=1)
    got = scores(y, proba, positive=n_classes - 1)
    assert got.macro_f1 == pytest.approx(f1_score(y, proba.argmax(axis=1), average="macro"), abs=1e-12)
    expected_auc = (roc_auc_score(y == 1, proba[:, 1]) if n_classes == 2
                    else roc_auc_score(y, proba, multi_class="ovr"))
    assert got.roc_auc == pytest.approx(expected_auc, abs=1e-12)
    confidence, correct = proba.max(axis=1), proba.argmax(axis=1) == y
    bins = np.minimum((confidence * 10).astype(int), 9)
    ece = sum((bins == b).mean() * abs(correct[bins == b].mean() - confidence[bins == b].mean())
              for b in range(10) if (bins == b).any())
    assert got.ece == pytest.approx(ece, abs=1e-12)


def test_auc_is_undefined_without_both_classes() -> None:
    proba = np.array([[0.2, 0.8], [0.4, 0.6]])
    assert scores(np.array([1, 1]), proba, positive=1).roc_auc is None


def test_identical_models_have_no_paired_error() -> None:
    y, proba, _ = _models(300, 2, seed=2)
    errors = paired_drop_errors(y, proba, 1, y, proba, 1)
    assert (errors.macro_f1, errors.roc_auc, errors.ece) == (0.0, 0.0, 0.0)


def test_errors_shrink_with_rows_and_subsampling_scales_them() -> None:
    small = paired_drop_errors(*_pair(400), *_pair(400, champion=True))
    large = paired_drop_errors(*_pair(20000), *_pair(20000, champion=True))
    capped = paired_drop_errors(*_pair(20000), *_pair(20000, champion=True), max_rows=2000)
    for name in ("macro_f1", "roc_auc", "ece"):
        s, big, cap = getattr(small, name), getattr(large, name), getattr(capped, name)
        assert s > 0 and big > 0
        assert big < s / 3  # 50x the rows: about 1/7 the error
        assert cap == pytest.approx(big, rel=0.35)  # 2,000 drawn rows, scaled to 20,000


def _pair(n: int, champion: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
    y, a, b = _models(n, 2, seed=3)
    return y, (b if champion else a), 1


def test_models_with_different_class_orders_are_compared_row_by_row() -> None:
    y, proba, _ = _models(300, 2, seed=4)
    flipped = proba[:, ::-1]  # the champion lists its classes the other way round
    errors = paired_drop_errors(y, proba, 1, 1 - y, flipped, 0)
    assert (errors.macro_f1, errors.roc_auc, errors.ece) == (0.0, 0.0, 0.0)
