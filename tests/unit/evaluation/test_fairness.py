"""Group fairness per sensitive attribute (real fairlearn): gaps, tiny groups, what is not computable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aire.config import PipelineConfig
from aire.errors import InputError
from aire.evaluation.fairness import fairness
from tests.support.german import german_config as _config


def test_fairness_per_group_and_gaps(german: pd.DataFrame, config: PipelineConfig,
                                     predictions: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = predictions
    result = fairness(german, y, p, config, positive_label=1)
    sex = result.attributes["sex"]
    groups = {g.group: g for g in sex.groups}
    female = german["sex"].to_numpy() == "female"
    assert groups["female"].count == int(female.sum())
    assert groups["female"].selection_rate == pytest.approx(np.mean(p[female] == 1))
    assert groups["male"].tpr == pytest.approx(np.mean(p[~female & (y == 1)] == 1))
    assert sex.demographic_parity_difference == pytest.approx(
        abs(groups["female"].selection_rate - groups["male"].selection_rate))  # type: ignore[operator]
    assert result.max_gap == sex.gap == max(sex.demographic_parity_difference,  # type: ignore[type-var]
                                            sex.equalized_odds_difference)


def test_tiny_group_is_undefined_not_zero_or_one(german: pd.DataFrame, config: PipelineConfig,
                                                 predictions: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = predictions
    frame = german.copy()
    frame.loc[:4, "sex"] = "<b>other</b>"  # 5 rows; the name is also HTML-escaped in the report
    result = fairness(frame, y, p, config, positive_label=1)
    groups = {g.group: g for g in result.attributes["sex"].groups}
    tiny = groups["<b>other</b>"]
    assert tiny.count == 5
    assert (tiny.selection_rate, tiny.tpr, tiny.fpr, tiny.accuracy) == (None, None, None, None)
    assert "min_group_count 20" in tiny.undefined["selection_rate"]
    assert result.attributes["sex"].computable  # the two large groups remain
    big = [g.selection_rate for g in groups.values() if g.selection_rate is not None]
    assert result.attributes["sex"].demographic_parity_difference == pytest.approx(max(big) - min(big))


def test_missing_sensitive_column_is_not_computable(german: pd.DataFrame, config: PipelineConfig,
                                                    predictions: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = predictions
    result = fairness(german.drop(columns=["sex"]), y, p, config, positive_label=1)
    assert not result.attributes["sex"].computable
    assert "missing" in str(result.attributes["sex"].reason)
    assert result.max_gap is None and result.reason


def test_fewer_than_two_defined_groups_is_not_computable(german: pd.DataFrame,
                                                         predictions: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = predictions
    frame = german.assign(sex=["male"] * 990 + ["female"] * 10)
    result = fairness(frame, y, p, _config(), positive_label=1)
    assert not result.attributes["sex"].computable and "fewer than two groups" in str(result.attributes["sex"].reason)
    assert result.max_gap is None
    nothing = fairness(german, y, p, _config(sensitive=[]), positive_label=1)
    assert nothing.max_gap is None and "no sensitive attribute" in str(nothing.reason)


def test_group_without_positives_has_no_tpr(german: pd.DataFrame) -> None:
    frame = german.iloc[:100].assign(sex=["a"] * 50 + ["b"] * 50)
    y = np.array([1, 0] * 25 + [0] * 50)
    p = np.array([1] * 100)
    result = fairness(frame, y, p, _config(), positive_label=1)
    sex = result.attributes["sex"]
    b = {g.group: g for g in sex.groups}["b"]
    assert b.tpr is None and "no actual positives" in b.undefined["tpr"]
    assert b.fpr == pytest.approx(1.0)
    # Equalized odds from the part both groups can measure (FPR), and the report says so.
    assert sex.computable and sex.equalized_odds_basis == ("fpr",)
    assert ("TPR part of equalized odds for 'sex'", "fewer than two groups with a defined TPR") \
        in result.not_computable()


def test_rates_need_min_group_count_rows_in_their_own_denominator(german: pd.DataFrame) -> None:
    """60 rows per group, but only 12 actual negatives in b: its FPR is noise, not a rate."""
    frame = german.iloc[:120].assign(sex=["a"] * 60 + ["b"] * 60)
    y = np.array([1, 0] * 30 + [1] * 48 + [0] * 12)
    p = np.array([1, 0] * 30 + [1] * 40 + [0] * 8 + [1] * 12)
    result = fairness(frame, y, p, _config(), positive_label=1)
    sex = result.attributes["sex"]
    a, b = (g for g in sex.groups)
    assert b.fpr is None and b.undefined["fpr"] == "12 actual negatives < min_group_count 20"
    assert b.tpr == pytest.approx(40 / 48) and a.tpr == pytest.approx(1.0) and a.fpr == pytest.approx(0.0)
    assert sex.equalized_odds_basis == ("tpr",)
    assert sex.equalized_odds_difference == pytest.approx(1 - 40 / 48)
    # With a lower bar the FPR (12 of 12 chosen) counts, and dominates.
    lowered = fairness(frame, y, p, _config(), positive_label=1, min_group_count=10).attributes["sex"]
    assert lowered.equalized_odds_basis == ("tpr", "fpr") and lowered.equalized_odds_difference == pytest.approx(1.0)


def test_no_measurable_part_of_equalized_odds_is_not_computable(german: pd.DataFrame) -> None:
    frame = german.iloc[:60].assign(sex=["a"] * 30 + ["b"] * 30)
    y = np.array([1, 0] * 30)  # 15 positives and 15 negatives per group: below 20 each
    result = fairness(frame, y, y, _config(), positive_label=1)
    sex = result.attributes["sex"]
    assert not sex.computable and "equalized odds" in str(sex.reason) and result.max_gap is None
    assert sex.demographic_parity_difference == pytest.approx(0.0)  # measured, but not enough alone


def test_fairness_worst_gap_over_attributes_and_row_count_check(german: pd.DataFrame,
                                                                 predictions: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = predictions
    result = fairness(german, y, p, _config(sensitive=["sex", "housing"]), positive_label=1)
    gaps = [a.gap for a in result.attributes.values()]
    assert result.max_gap == max(gaps)  # type: ignore[type-var]
    with pytest.raises(InputError, match="same row count"):
        fairness(german, y[:-1], p, _config(), positive_label=1)


# --- report ----------------------------------------------------------------------------
