"""The native per-feature tests behind the gate's feature_shift check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aire.config import Gates
from aire.evaluation.two_sample import categorical_test, numeric_test
from aire.promotion.gate import Evidence, decide


def test_a_filtered_sub_population_is_a_large_significant_ks_effect() -> None:
    rng = np.random.default_rng(0)
    reference, pool = pd.Series(rng.normal(40, 12, 3000)), pd.Series(rng.normal(40, 12, 20_000))
    oldest = pool[pool > pool.quantile(0.7)].sample(1500, random_state=1)
    same = pool.sample(1500, random_state=2)
    shifted, clean = numeric_test(reference, oldest), numeric_test(reference, same)
    assert shifted.method == "ks" and shifted.effect > 0.6 and shifted.p_value < 1e-100
    assert clean.effect < 0.06 and clean.p_value > 1e-3
    assert (shifted.reference_rows, shifted.current_rows) == (3000, 1500)


def test_missing_values_are_left_out_of_both_tests() -> None:
    with_gaps = pd.Series([1.0, None, 2.0, 3.0, None])
    assert numeric_test(with_gaps, pd.Series([1.0, 2.0, 3.0])).effect == 0.0
    assert categorical_test(pd.Series(["a", None, "b"]), pd.Series(["a", "b"])).effect == 0.0


def test_an_integer_coded_category_upcast_by_missing_values_is_the_same_category() -> None:
    """A 0/1 column that gains NaNs becomes 0.0/1.0: that is no shift (the null rate is judged apart)."""
    reference = pd.Series([0, 1] * 500)
    current = pd.Series([0.0, 1.0, None, 1.0, 0.0, None] * 100)
    result = categorical_test(reference, current)
    assert result.effect == 0.0 and result.p_value == pytest.approx(1.0)


def test_the_categorical_effect_is_the_share_of_rows_that_changed_category() -> None:
    reference = pd.Series(["north"] * 500 + ["south"] * 500)
    current = pd.Series(["north"] * 800 + ["south"] * 200)
    result = categorical_test(reference, current)
    assert result.method == "chi2" and result.effect == pytest.approx(0.3) and result.p_value < 1e-30
    new_value = categorical_test(reference, pd.Series(["north"] * 500 + ["east"] * 500))
    assert new_value.effect == pytest.approx(0.5)  # a category the reference never held counts too
    assert categorical_test(pd.Series(["x"] * 5), pd.Series(["x"] * 3)).p_value == 1.0


def test_clean_batches_rarely_fail_the_family_wise_check() -> None:
    """200 clean batches x 10 features, each batch judged by the gate's own rule: at most
    drift_alpha (1%) may fail by chance; a Bonferroni bound, so it is usually far fewer."""
    rng = np.random.default_rng(7)
    gates, failed = Gates(), 0
    for _ in range(200):
        tests = []
        for j in range(10):
            if j % 2:
                test = numeric_test(pd.Series(rng.exponential(1.0, 300)), pd.Series(rng.exponential(1.0, 150)))
            else:
                test = categorical_test(pd.Series(rng.choice(list("abcd"), 300)),
                                        pd.Series(rng.choice(list("abcd"), 150)))
            tests.append((f"f{j}", test.method, test.effect, test.p_value))
        check = next(c for c in decide(gates, Evidence(feature_tests=tuple(tests))).checks
                     if c.name == "feature_shift")
        failed += not check.passed
    assert failed <= 4  # expected at most 2 (1% of 200); 4 leaves room for the bound's slack
