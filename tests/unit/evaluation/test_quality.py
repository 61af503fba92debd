"""Quality of class probabilities: hand-computed figures, float labels, one class, multi-class."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aire.errors import InputError
from aire.evaluation.quality import positive_label, quality
from tests.support.german import binary_case


# --- quality ---------------------------------------------------------------------------
def test_quality_matches_hand_computation() -> None:
    y, proba = binary_case()
    result = quality(y, proba, [0, 1])
    # predictions 0,1,1,1,0: 3 of 5 right; F1 class 0 = 1/2, class 1 = 2/3
    assert result.accuracy == pytest.approx(0.6)
    assert result.macro_f1 == pytest.approx((0.5 + 2 / 3) / 2)
    assert result.roc_auc == pytest.approx(5 / 6)  # 5 of 6 positive/negative pairs ordered
    # bins: 0.8 right, 0.6 x2 wrong, 0.9 right, 0.7 right -> (.2 + 2*.6 + .1 + .3) / 5
    assert result.ece == pytest.approx(0.36)
    assert result.positive_label == 1
    assert json.loads(json.dumps(result.to_dict(), allow_nan=False))["accuracy"] == pytest.approx(0.6)


def test_quality_accepts_float_labels_and_uses_largest_class_as_positive() -> None:
    y, proba = binary_case()
    flipped = quality(y.astype(float), proba[:, ::-1], [1, 0])  # columns in another order
    assert flipped.accuracy == pytest.approx(0.6) and flipped.roc_auc == pytest.approx(5 / 6)
    assert positive_label(["bad", "good"]) == "good"


def test_single_class_gives_no_auc_but_a_reason() -> None:
    proba = np.array([[0.9, 0.1], [0.3, 0.7]])
    result = quality([1, 1], proba, [0, 1])
    assert result.roc_auc is None and "one class" in str(result.roc_auc_reason)
    assert result.accuracy == pytest.approx(0.5)


def test_multiclass_auc_is_one_vs_rest_and_needs_every_class() -> None:
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.5, 0.3, 0.2]])
    assert quality(["a", "b", "c", "a"], proba, ["a", "b", "c"]).roc_auc == pytest.approx(1.0)
    partial = quality(["a", "b", "b", "a"], proba, ["a", "b", "c"])
    assert partial.roc_auc is None and "'c'" in str(partial.roc_auc_reason)


@pytest.mark.parametrize(("y", "proba", "rule"), [
    ([0, 2], [[0.5, 0.5], [0.5, 0.5]], "label in classes"),
    ([0, 1], [[0.5, 0.5]], "shape"),
    ([0, 1], [[0.5, 0.4], [0.5, 0.5]], "rows sum to 1"),
    ([0, 1], [[np.nan, 1.0], [0.5, 0.5]], "finite probabilities"),
    ([], np.zeros((0, 2)), "row count >= 1"),
])
def test_quality_rejects_bad_input(y: list[int], proba: object, rule: str) -> None:
    with pytest.raises(InputError, match=rule):
        quality(y, np.asarray(proba, dtype=float), [0, 1])


# --- fairness --------------------------------------------------------------------------
