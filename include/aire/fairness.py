"""Group fairness of a model's predictions per sensitive attribute (fairlearn).

For each attribute in ``config.dataset.sensitive`` the rows are grouped by its value (a
missing value is a group of its own, "<missing>"), and each group gets its count,
selection rate (share predicted as the positive label), true- and false-positive rate and
accuracy. A rate from a handful of rows is noise, so a group with fewer than
``min_group_count`` rows has its metrics reported as undefined (None with a reason),
never as 0 or 1, and takes no part in the differences. TPR is undefined for a group with
no actual positives and FPR for one with no actual negatives.

The attribute's gap is the larger of the demographic parity difference (over the defined
groups) and the equalized odds difference (over the defined groups that hold both
labels). An attribute whose column is missing, or with fewer than two groups to compare,
is "not computable"; then ``max_gap`` is None and the gate rejects: an unmeasured gap is
not a small one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from aire.config import PipelineConfig
from aire.errors import InputError

MISSING_GROUP = "<missing>"
_METRICS = ("selection_rate", "tpr", "fpr", "accuracy")


@dataclass(frozen=True)
class GroupMetrics:
    group: str
    count: int
    selection_rate: float | None
    tpr: float | None
    fpr: float | None
    accuracy: float | None
    undefined: dict[str, str]  # metric name -> why it is None

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "count": self.count, "selection_rate": self.selection_rate,
                "tpr": self.tpr, "fpr": self.fpr, "accuracy": self.accuracy, "undefined": dict(self.undefined)}


@dataclass(frozen=True)
class AttributeFairness:
    attribute: str
    computable: bool
    reason: str | None
    groups: tuple[GroupMetrics, ...]
    demographic_parity_difference: float | None
    equalized_odds_difference: float | None

    @property
    def gap(self) -> float | None:
        if not self.computable or self.demographic_parity_difference is None \
                or self.equalized_odds_difference is None:
            return None
        return max(self.demographic_parity_difference, self.equalized_odds_difference)

    def to_dict(self) -> dict[str, Any]:
        return {"attribute": self.attribute, "computable": self.computable, "reason": self.reason,
                "groups": [g.to_dict() for g in self.groups],
                "demographic_parity_difference": self.demographic_parity_difference,
                "equalized_odds_difference": self.equalized_odds_difference, "gap": self.gap}


@dataclass(frozen=True)
class FairnessResult:
    positive_label: Any
    min_group_count: int
    attributes: dict[str, AttributeFairness]
    max_gap: float | None
    reason: str | None  # why max_gap is None

    def not_computable(self) -> list[tuple[str, str]]:
        """(what, why) for everything that could not be measured, for the report."""
        items: list[tuple[str, str]] = []
        if not self.attributes and self.reason:
            items.append(("fairness", self.reason))
        for name, attribute in self.attributes.items():
            if not attribute.computable:
                items.append((f"fairness for '{name}'", attribute.reason or "unknown"))
            for group in attribute.groups:
                by_reason: dict[str, list[str]] = {}
                for metric, why in group.undefined.items():
                    by_reason.setdefault(why, []).append(metric)
                items.extend((f"{', '.join(metrics)} of {name}={group.group}", why)
                             for why, metrics in by_reason.items())
        return items

    def to_dict(self) -> dict[str, Any]:
        label = self.positive_label.item() if isinstance(self.positive_label, np.generic) else self.positive_label
        return {"positive_label": label if isinstance(label, (int, float, str, bool)) else str(label),
                "min_group_count": self.min_group_count, "max_gap": self.max_gap, "reason": self.reason,
                "attributes": {name: a.to_dict() for name, a in self.attributes.items()}}


def fairness(frame: pd.DataFrame, y_true: Sequence[Any] | np.ndarray | pd.Series,
             y_pred: Sequence[Any] | np.ndarray | pd.Series, config: PipelineConfig, positive_label: Any,
             min_group_count: int = 20) -> FairnessResult:
    """Per-group metrics and gaps for each sensitive attribute; rows of ``frame``, ``y_true``
    and ``y_pred`` are matched by position."""
    truth = np.asarray(y_true, dtype=object).ravel()
    predicted = np.asarray(y_pred, dtype=object).ravel()
    if not len(frame) == len(truth) == len(predicted):
        raise InputError(f"fairness inputs break rule 'same row count': frame {len(frame)}, "
                         f"y_true {len(truth)}, y_pred {len(predicted)}")
    if min_group_count < 1:
        raise InputError(f"min_group_count breaks rule '>= 1': got {min_group_count}")
    attributes = {
        name: _attribute(frame, name, truth, predicted, positive_label, min_group_count)
        for name in config.dataset.sensitive
    }
    reason: str | None = None
    if not attributes:
        reason = "the config lists no sensitive attribute (dataset.sensitive)"
    elif any(a.gap is None for a in attributes.values()):
        failing = [n for n, a in attributes.items() if a.gap is None]
        reason = f"not computable for {failing}"
    max_gap = None if reason else max(a.gap for a in attributes.values() if a.gap is not None)
    return FairnessResult(positive_label, min_group_count, attributes, max_gap, reason)


def _attribute(frame: pd.DataFrame, name: str, truth: np.ndarray, predicted: np.ndarray,
               positive: Any, min_count: int) -> AttributeFairness:
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    if name not in frame.columns:
        return AttributeFairness(name, False, f"column '{name}' is missing from the evaluated data",
                                 (), None, None)
    groups = pd.Series([_group_key(v) for v in frame[name].to_numpy()], name=name)
    # One-vs-rest on the positive label (1 = positive): fairlearn's rates take two classes only.
    actual = np.array([v == positive for v in truth], dtype=np.int64)
    chosen = np.array([v == positive for v in predicted], dtype=np.int64)
    rates = MetricFrame(
        metrics={"selection_rate": lambda t, p: selection_rate(t, p, pos_label=1),
                 "tpr": lambda t, p: true_positive_rate(t, p, pos_label=1),
                 "fpr": lambda t, p: false_positive_rate(t, p, pos_label=1)},
        y_true=actual, y_pred=chosen, sensitive_features=groups,
    ).by_group
    hits = MetricFrame(metrics={"accuracy": accuracy_score}, y_true=[str(v) for v in truth],
                       y_pred=[str(v) for v in predicted], sensitive_features=groups).by_group

    results: list[GroupMetrics] = []
    for group in sorted(rates.index, key=str):
        mask = (groups == group).to_numpy()
        count, positives = int(mask.sum()), int(actual[mask].sum())
        values: dict[str, float | None] = {
            "selection_rate": float(rates.loc[group, "selection_rate"]), "tpr": float(rates.loc[group, "tpr"]),
            "fpr": float(rates.loc[group, "fpr"]), "accuracy": float(hits.loc[group, "accuracy"]),
        }
        undefined: dict[str, str] = {}
        if count < min_count:
            undefined = {m: f"{count} row(s) < min_group_count {min_count}" for m in _METRICS}
        else:
            if positives == 0:
                undefined["tpr"] = "no actual positives in the group"
            if positives == count:
                undefined["fpr"] = "no actual negatives in the group"
        for metric in undefined:
            values[metric] = None
        results.append(GroupMetrics(str(group), count, values["selection_rate"], values["tpr"],
                                    values["fpr"], values["accuracy"], undefined))

    sized = [g.group for g in results if g.count >= min_count]
    both_labels = [g.group for g in results if g.tpr is not None and g.fpr is not None]
    if len(sized) < 2 or len(both_labels) < 2:
        small = [f"{g.group} ({g.count})" for g in results]
        reason = (f"fewer than two groups with >= {min_count} rows" if len(sized) < 2 else
                  "fewer than two groups with both actual positives and negatives")
        return AttributeFairness(name, False, f"{reason}; groups: {', '.join(small)}", tuple(results), None, None)

    keep = groups.isin(sized).to_numpy()
    dpd = float(demographic_parity_difference(actual[keep], chosen[keep], sensitive_features=groups[keep]))
    keep = groups.isin(both_labels).to_numpy()
    eod = float(equalized_odds_difference(actual[keep], chosen[keep], sensitive_features=groups[keep],
                                          agg="worst_case"))
    return AttributeFairness(name, True, None, tuple(results), dpd, eod)


def _group_key(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return MISSING_GROUP
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
