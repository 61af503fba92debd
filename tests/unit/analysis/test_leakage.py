"""The leakage check: a copied label is caught, clean data and an id-like column are not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aire.analysis.leakage import leakage_check
from aire.data.datasets import german_credit
from tests.support.german import CATEGORICAL, NUMERIC

ALL = [*NUMERIC, *CATEGORICAL]


@pytest.fixture(scope="module")
def german() -> pd.DataFrame:
    return german_credit()


def labels(df: pd.DataFrame) -> np.ndarray:
    return df["risk"].to_numpy()


def test_clean_features_are_not_flagged(german: pd.DataFrame) -> None:
    findings = leakage_check(german, ALL, labels(german), 2, 0.95, seed=0)
    assert [f.feature for f in findings if f.flagged] == []
    assert {f.feature for f in findings} == set(ALL)
    # German credit's best single feature (checking account) is far from giving it away
    assert max(f.balanced_accuracy for f in findings) < 0.7
    scores = [f.balanced_accuracy for f in findings]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("copy", [
    lambda y: y,                                          # the label itself, as a number
    lambda y: np.where(y == 1, "good", "bad"),            # the label as a category
    lambda y: y * 1000.0 + np.arange(len(y)) % 7,         # the label hidden in a wide number
])
def test_a_copied_label_column_is_flagged(german: pd.DataFrame, copy: object) -> None:
    batch = german.assign(leak=copy(labels(german)))  # type: ignore[operator]
    findings = {f.feature: f for f in leakage_check(batch, [*ALL, "leak"], labels(batch), 2,
                                                     0.95, seed=0)}
    assert findings["leak"].flagged and findings["leak"].balanced_accuracy > 0.99
    assert [name for name, f in findings.items() if f.flagged] == ["leak"]


def test_almost_perfect_is_flagged_and_a_loose_correlate_is_not(german: pd.DataFrame) -> None:
    rng = np.random.default_rng(1)
    y = labels(german)
    near = np.where(rng.random(len(y)) < 0.02, 1 - y, y)   # 2% disagree: still a leak
    loose = np.where(rng.random(len(y)) < 0.25, 1 - y, y)  # 25% disagree: a plain feature
    batch = german.assign(near=near, loose=loose)
    found = {f.feature: f.flagged for f in leakage_check(batch, ["near", "loose"], y, 2, 0.95, 0)}
    assert found == {"near": True, "loose": False}


def test_an_id_like_column_is_not_mistaken_for_a_leak(german: pd.DataFrame) -> None:
    # every value unique: a lookup table separates rows perfectly in sample, never held out
    batch = german.assign(loan=[f"L{i}" for i in range(len(german))])
    (finding,) = leakage_check(batch, ["loan"], labels(batch), 2, 0.95, seed=0)
    assert not finding.flagged and finding.balanced_accuracy == pytest.approx(0.5, abs=0.05)


