"""Group fairness of a model's predictions per sensitive attribute (fairlearn).

For each attribute in ``config.dataset.sensitive`` the rows are grouped by its value (a
missing value is a group of its own, "<missing>"), and each group gets its count,
selection rate (share predicted as the positive label), true- and false-positive rate and
accuracy. A rate from a handful of rows is noise, so each rate needs ``min_group_count``
rows in its own denominator: selection rate and accuracy the group's rows, TPR its actual
positives, FPR its actual negatives. A rate short of that is reported as undefined (None
with a reason), never as 0 or 1, and takes no part in the differences. (On a 175-row
German Credit holdout the women's actual negatives number 13-25; an FPR over 13 rows moved
the equalized odds difference by up to 0.3 between two clean batches.)

The attribute's gap is the larger of the demographic parity difference (over the groups
with a selection rate) and the equalized odds difference: the larger of the TPR and the
FPR differences, each over the groups where that rate is defined; ``equalized_odds_basis``
names the parts that could be measured. An attribute whose column is missing, with fewer
than two groups to compare, or with neither part of equalized odds measurable, is "not
computable"; then ``max_gap`` is None and the gate rejects: an unmeasured gap is not a
small one.
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
    equalized_odds_basis: tuple[str, ...] = ()  # "tpr", "fpr": the parts measured

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
                "equalized_odds_difference": self.equalized_odds_difference,
                "equalized_odds_basis": list(self.equalized_odds_basis), "gap": self.gap}


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
            else:
                items.extend((f"{rate.upper()} part of equalized odds for '{name}'",
                              f"fewer than two groups with a defined {rate.upper()}")
                             for rate in ("tpr", "fpr") if rate not in attribute.equalized_odds_basis)
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
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    if name not in frame.columns:
        return AttributeFairness(name, False, f"column '{name}' is missing from the evaluated data",
                                 (), None, None)
    # Rows reduced to their distinct (group, actual, chosen, correct) combinations with a
    # count, passed to fairlearn as sample weights: the same rates, at a cost that does not
    # grow with the row count (fairlearn's own per-row work took ~3 s per 100k rows).
    codes, uniques = pd.factorize(frame[name], use_na_sentinel=True)
    keys = np.array([*(_group_key(u) for u in uniques), MISSING_GROUP], dtype=object)
    # One-vs-rest on the positive label (1 = positive): fairlearn's rates take two classes only.
    rows = pd.DataFrame({"group": keys[codes], "actual": _equals(truth, positive),
                         "chosen": _equals(predicted, positive), "correct": _equals(truth, predicted)})
    combos = rows.value_counts().reset_index(name="n")
    weight = {"sample_weight": combos["n"].to_numpy()}
    rates = MetricFrame(
        metrics={"selection_rate": lambda t, p, sample_weight: selection_rate(t, p, pos_label=1,
                                                                              sample_weight=sample_weight),
                 "tpr": lambda t, p, sample_weight: true_positive_rate(t, p, pos_label=1, sample_weight=sample_weight),
                 "fpr": lambda t, p, sample_weight: false_positive_rate(t, p, pos_label=1,
                                                                        sample_weight=sample_weight)},
        y_true=combos["actual"], y_pred=combos["chosen"], sensitive_features=combos["group"].rename(name),
        sample_params={"selection_rate": weight, "tpr": weight, "fpr": weight},
    ).by_group
    groups = pd.Series(rows["group"].to_numpy(), name=name)
    actual = rows["actual"].to_numpy()
    correct = rows.groupby("group")["correct"].mean()

    results: list[GroupMetrics] = []
    for group in sorted(rates.index, key=str):
        mask = (groups == group).to_numpy()
        count, positives = int(mask.sum()), int(actual[mask].sum())
        values: dict[str, float | None] = {
            "selection_rate": float(rates.loc[group, "selection_rate"]), "tpr": float(rates.loc[group, "tpr"]),
            "fpr": float(rates.loc[group, "fpr"]), "accuracy": float(correct.loc[group]),
        }
        undefined: dict[str, str] = {}
        if count < min_count:
            undefined = {m: f"{count} row(s) < min_group_count {min_count}" for m in _METRICS}
        else:
            for metric, n, what in (("tpr", positives, "positives"), ("fpr", count - positives, "negatives")):
                if n < min_count:
                    undefined[metric] = (f"no actual {what} in the group" if n == 0 else
                                         f"{n} actual {what} < min_group_count {min_count}")
        for metric in undefined:
            values[metric] = None
        results.append(GroupMetrics(str(group), count, values["selection_rate"], values["tpr"],
                                    values["fpr"], values["accuracy"], undefined))

    listing = ", ".join(f"{g.group} ({g.count})" for g in results)
    dpd = _spread([g.selection_rate for g in results])
    if dpd is None:
        return AttributeFairness(name, False, f"fewer than two groups with >= {min_count} rows; groups: {listing}",
                                 tuple(results), None, None)
    parts = {"tpr": _spread([g.tpr for g in results]), "fpr": _spread([g.fpr for g in results])}
    basis = tuple(rate for rate, spread in parts.items() if spread is not None)
    if not basis:
        return AttributeFairness(name, False, f"equalized odds: fewer than two groups with >= {min_count} actual "
                                 f"positives, and fewer than two with >= {min_count} actual negatives; groups: "
                                 f"{listing}", tuple(results), dpd, None)
    eod = max(parts[rate] for rate in basis)  # type: ignore[type-var]
    return AttributeFairness(name, True, None, tuple(results), dpd, eod, basis)


def _spread(rates: Sequence[float | None]) -> float | None:
    """Largest minus smallest of the defined rates: fairlearn's between-groups difference."""
    defined = [r for r in rates if r is not None]
    return float(max(defined) - min(defined)) if len(defined) >= 2 else None


def _equals(values: np.ndarray, other: Any) -> np.ndarray:
    """Element-wise ==, as 0/1: 1 == 1.0 (a label read back as float) and "a" != 1 alike."""
    return np.asarray(np.asarray(values, dtype=object) == other, dtype=np.int64)


def _group_key(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return MISSING_GROUP
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
