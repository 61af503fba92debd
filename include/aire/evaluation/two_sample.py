"""Per-feature two-sample tests of a batch against the reference, computed natively.

Evidently's verdicts feed ``drift_share`` (how many features moved). A filtered
sub-population (a batch of only the oldest customers, of one region) moves one or two
features a long way and leaves the share low, so the gate also asks of each feature alone:
is the change both real (its p-value, Bonferroni-corrected over the features, below the
family-wise level) and large (an effect size on a 0..1 scale above a floor that keeps a
million-row batch from failing on a trivial difference)? The gate applies both limits;
this module only measures.

- numeric: Kolmogorov-Smirnov; the effect is the statistic D, the largest difference
  between the two empirical distribution functions (the share of rows below any value);
- categorical: chi-squared on the two count vectors; the effect is the total variation
  distance, half the L1 distance between the category shares (the share of rows that would
  have to change category). Missing values are left out of both (null rates are judged
  apart, ``aire.evaluation.drift``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FeatureTest", "categorical_test", "numeric_test", "value_key"]


@dataclass(frozen=True)
class FeatureTest:
    method: str  # "ks" or "chi2"
    effect: float  # KS D or total variation distance, in [0, 1]
    p_value: float
    reference_rows: int  # non-missing values behind the test
    current_rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "effect": self.effect, "p_value": self.p_value,
                "reference_rows": self.reference_rows, "current_rows": self.current_rows}


def value_key(value: object) -> str:
    """2, 2.0 (an int column upcast by a NaN) and "2" are one category."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def numeric_test(reference: pd.Series, current: pd.Series) -> FeatureTest:
    from scipy.stats import ks_2samp

    ref = reference.dropna().to_numpy(dtype=np.float64)
    cur = current.dropna().to_numpy(dtype=np.float64)
    result = ks_2samp(ref, cur, method="asymp")  # exact is quadratic in rows; asymp is fine from ~100
    return FeatureTest("ks", float(result.statistic), float(result.pvalue), len(ref), len(cur))


def categorical_test(reference: pd.Series, current: pd.Series) -> FeatureTest:
    from scipy.stats import chi2_contingency

    # As drift does: 2, 2.0 (an int column upcast by a NaN) and "2" are one category.
    ref, cur = _category_counts(reference), _category_counts(current)
    categories = ref.index.union(cur.index)
    table = np.vstack([ref.reindex(categories, fill_value=0).to_numpy(),
                       cur.reindex(categories, fill_value=0).to_numpy()]).astype(np.float64)
    n_ref, n_cur = int(table[0].sum()), int(table[1].sum())
    effect = 0.5 * float(np.abs(table[0] / n_ref - table[1] / n_cur).sum())
    if len(categories) < 2:  # one category on both sides: nothing can have moved
        return FeatureTest("chi2", effect, 1.0, n_ref, n_cur)
    p_value = float(chi2_contingency(table, correction=False).pvalue)
    return FeatureTest("chi2", effect, p_value, n_ref, n_cur)


def _category_counts(values: pd.Series) -> pd.Series:
    """Counts per category (``value_key``), keyed once per distinct value, not once per row:
    a million-row column maps a few dozen values."""
    counts = values.dropna().value_counts()
    counts = counts[counts > 0]  # a categorical dtype lists its unused categories too
    counts.index = counts.index.map(value_key)
    return counts.groupby(level=0).sum()
