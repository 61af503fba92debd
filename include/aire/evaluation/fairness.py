"""Group fairness of a model's predictions per sensitive attribute.

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
names the parts that could be measured. These are fairlearn's between-groups differences
(the unit tests hold them to ``fairlearn.metrics.MetricFrame``), computed here with numpy
counts so that the bootstrap below can afford 200 replicates.

Multi-class: each class in turn is the "positive" label, one-vs-rest (selection rate: share
predicted as that class; TPR: that class's recall; FPR: share of the other classes' rows
predicted as it); the attribute's differences are the worst over the classes, and
``worst_class`` names the class. The group table shows the rates of ``positive_label``.
A binary problem needs only its positive class: the other class gives the same
demographic parity difference, and its TPR and FPR differences are the positive class's
FPR and TPR differences.

An attribute whose column is missing, all null, with more than ``max_groups`` distinct
values (an id or zip code, not a group attribute), with fewer than two groups to compare,
or with neither part of equalized odds measurable, is "not computable"; then ``max_gap`` is
None and the gate rejects with that reason: an unmeasured gap is not a small one.

``paired_gap_errors`` gives bootstrap standard errors of the candidate's gap and of the
candidate's minus the champion's gap, both models scored on the same resampled holdout
rows in each replicate (the gate's ``fairness_gap_increase_vs_champion``).
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
MAX_GROUPS = 50  # the default of gates.max_sensitive_groups
_METRICS = ("selection_rate", "tpr", "fpr", "accuracy")
REPLICATES = 200
MAX_ROWS = 5000  # bootstrap draws over at most this many rows; the SE is scaled to the holdout


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
    worst_class: str | None = None  # multi-class: the class whose one-vs-rest gap is the largest

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
                "equalized_odds_basis": list(self.equalized_odds_basis), "worst_class": self.worst_class,
                "gap": self.gap}


@dataclass(frozen=True)
class FairnessResult:
    positive_label: Any
    min_group_count: int
    attributes: dict[str, AttributeFairness]
    max_gap: float | None
    reason: str | None  # why max_gap is None
    classes_compared: int = 1  # 1: the positive label; K: one-vs-rest over K classes

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

    def small_groups(self) -> list[str]:
        """'attribute=group (rows)' for each group under min_group_count: reported, not compared."""
        return [f"{name}={g.group} ({g.count} rows)" for name, a in self.attributes.items()
                for g in a.groups if g.count < self.min_group_count]

    def to_dict(self) -> dict[str, Any]:
        label = self.positive_label.item() if isinstance(self.positive_label, np.generic) else self.positive_label
        return {"positive_label": label if isinstance(label, (int, float, str, bool)) else str(label),
                "min_group_count": self.min_group_count, "max_gap": self.max_gap, "reason": self.reason,
                "classes_compared": self.classes_compared, "small_groups": self.small_groups(),
                "attributes": {name: a.to_dict() for name, a in self.attributes.items()}}


# --- encoding ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Encoded:
    """Rows as integer codes: group per attribute, true and predicted class, the classes to judge."""

    groups: dict[str, tuple[np.ndarray, list[str]] | str]  # codes and names, or why not computable
    truth: np.ndarray
    classes: list[Any]
    judged: list[int]  # class indices taken as "positive" in turn
    positive: int


def _encode(frame: pd.DataFrame, names: Sequence[str], truth: np.ndarray, predictions: Sequence[np.ndarray],
            positive_label: Any, classes: Sequence[Any] | None, max_groups: int) -> tuple[_Encoded, list[np.ndarray]]:
    keys = [group_key(v) for v in (*truth, *(p for pred in predictions for p in pred))]
    listed = [group_key(c) for c in classes] if classes is not None else []
    names_of = list(dict.fromkeys([*listed, *sorted(set(keys) - set(listed), key=str)]))
    index = {k: i for i, k in enumerate(names_of)}
    y = np.array([index[group_key(v)] for v in truth], dtype=np.int64)
    preds = [np.array([index[group_key(v)] for v in pred], dtype=np.int64) for pred in predictions]
    positive_key = group_key(positive_label)
    positive = index.get(positive_key, -1)
    judged = [positive] if len(names_of) <= 2 else list(range(len(names_of)))
    groups: dict[str, tuple[np.ndarray, list[str]] | str] = {}
    for name in names:
        groups[name] = _group_codes(frame, name, max_groups)
    return _Encoded(groups, y, names_of, judged, positive), preds


def _group_codes(frame: pd.DataFrame, name: str, max_groups: int) -> tuple[np.ndarray, list[str]] | str:
    if name not in frame.columns:
        return f"column '{name}' is missing from the evaluated data"
    column = frame[name]
    if len(column) and column.isna().all():
        return f"column '{name}' is null in every row: there are no groups to compare"
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    labels = [*(group_key(u) for u in uniques), MISSING_GROUP]
    distinct = len(uniques) + int((codes < 0).any())
    if distinct > max_groups:
        return (f"column '{name}' has {distinct} distinct values (> gates.max_sensitive_groups {max_groups}): "
                "not a group attribute; bin it or leave it out of dataset.sensitive")
    codes = np.where(codes < 0, len(labels) - 1, codes)
    # Groups named by value; the same value read as 1 and 1.0 is one group.
    merged = list(dict.fromkeys(labels))
    remap = np.array([merged.index(v) for v in labels], dtype=np.int64)
    return remap[codes], merged


# --- rates -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Rates:
    count: np.ndarray
    positives: np.ndarray
    selection: np.ndarray
    tpr: np.ndarray
    fpr: np.ndarray


def _rates(codes: np.ndarray, n_groups: int, actual: np.ndarray, chosen: np.ndarray) -> _Rates:
    count = np.bincount(codes, minlength=n_groups).astype(np.float64)
    positives = np.bincount(codes, weights=actual, minlength=n_groups)
    negatives = count - positives
    with np.errstate(invalid="ignore", divide="ignore"):
        selection = np.bincount(codes, weights=chosen, minlength=n_groups) / count
        tpr = np.bincount(codes, weights=actual * chosen, minlength=n_groups) / positives
        fpr = np.bincount(codes, weights=(1 - actual) * chosen, minlength=n_groups) / negatives
    return _Rates(count, positives, selection, tpr, fpr)


def _differences(codes: np.ndarray, n_groups: int, y: np.ndarray, pred: np.ndarray, judged: Sequence[int],
                 min_count: int) -> tuple[float | None, float | None, tuple[str, ...], int | None]:
    """(demographic parity difference, equalized odds difference, basis, worst class) over ``judged``."""
    worst: tuple[float, float | None, float | None, tuple[str, ...], int | None] = (-1.0, None, None, (), None)
    dpd_all: float | None = None
    for k in judged:
        r = _rates(codes, n_groups, (y == k).astype(np.float64), (pred == k).astype(np.float64))
        large = r.count >= min_count
        dpd = _spread(r.selection[large])
        parts = {"tpr": _spread(r.tpr[large & (r.positives >= min_count)]),
                 "fpr": _spread(r.fpr[large & (r.count - r.positives >= min_count)])}
        basis = tuple(rate for rate, spread in parts.items() if spread is not None)
        eod = max((parts[b] for b in basis), default=None)  # type: ignore[type-var]
        if dpd is not None:
            dpd_all = dpd if dpd_all is None else max(dpd_all, dpd)
        score = max(v for v in (dpd, eod, -1.0) if v is not None)
        if dpd is not None and eod is not None and score > worst[0]:
            worst = (score, dpd, eod, basis, k)
    _, best_dpd, best_eod, best_basis, worst_class = worst
    if best_eod is None:
        return dpd_all, None, (), None
    return best_dpd, best_eod, best_basis, worst_class


def _spread(rates: np.ndarray) -> float | None:
    """Largest minus smallest rate: fairlearn's between-groups difference."""
    return float(rates.max() - rates.min()) if len(rates) >= 2 else None


# --- the result ----------------------------------------------------------------------------
def fairness(frame: pd.DataFrame, y_true: Sequence[Any] | np.ndarray | pd.Series,
             y_pred: Sequence[Any] | np.ndarray | pd.Series, config: PipelineConfig, positive_label: Any,
             min_group_count: int = 20, *, classes: Sequence[Any] | None = None,
             max_groups: int = MAX_GROUPS) -> FairnessResult:
    """Per-group metrics and gaps for each sensitive attribute; rows of ``frame``, ``y_true``
    and ``y_pred`` are matched by position. ``classes``: the model's classes (with three or
    more, every class is judged one-vs-rest)."""
    truth = np.asarray(y_true, dtype=object).ravel()
    predicted = np.asarray(y_pred, dtype=object).ravel()
    if not len(frame) == len(truth) == len(predicted):
        raise InputError(f"fairness inputs break rule 'same row count': frame {len(frame)}, "
                         f"y_true {len(truth)}, y_pred {len(predicted)}")
    if min_group_count < 1:
        raise InputError(f"min_group_count breaks rule '>= 1': got {min_group_count}")
    encoded, (pred,) = _encode(frame, config.dataset.sensitive, truth, [predicted], positive_label, classes,
                               max_groups)
    attributes = {name: _attribute(name, encoded, pred, min_group_count) for name in config.dataset.sensitive}
    reason: str | None = None
    if not attributes:
        reason = "the config lists no sensitive attribute (dataset.sensitive)"
    elif any(a.gap is None for a in attributes.values()):
        failing = {n: a.reason for n, a in attributes.items() if a.gap is None}
        reason = "not computable for " + "; ".join(f"'{n}': {why}" for n, why in failing.items())
    max_gap = None if reason else max(a.gap for a in attributes.values() if a.gap is not None)
    return FairnessResult(positive_label, min_group_count, attributes, max_gap, reason, len(encoded.judged))


def _attribute(name: str, encoded: _Encoded, pred: np.ndarray, min_count: int) -> AttributeFairness:
    grouped = encoded.groups[name]
    if isinstance(grouped, str):
        return AttributeFairness(name, False, grouped, (), None, None)
    codes, labels = grouped
    y, n_groups = encoded.truth, len(labels)
    shown = encoded.positive
    r = _rates(codes, n_groups, (y == shown).astype(np.float64), (pred == shown).astype(np.float64))
    correct = np.bincount(codes, weights=(y == pred).astype(np.float64), minlength=n_groups)
    results: list[GroupMetrics] = []
    for g in sorted((g for g in range(n_groups) if r.count[g] > 0), key=lambda g: labels[g]):
        count, positives = int(r.count[g]), int(r.positives[g])
        values: dict[str, float | None] = {"selection_rate": float(r.selection[g]), "tpr": _finite(r.tpr[g]),
                                           "fpr": _finite(r.fpr[g]), "accuracy": float(correct[g] / count)}
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
        results.append(GroupMetrics(labels[g], count, values["selection_rate"], values["tpr"],
                                    values["fpr"], values["accuracy"], undefined))
    listing = ", ".join(f"{g.group} ({g.count})" for g in results)
    if sum(g.count >= min_count for g in results) < 2:
        return AttributeFairness(name, False, f"fewer than two groups with >= {min_count} rows; groups: {listing}",
                                 tuple(results), None, None)
    dpd, eod, basis, worst = _differences(codes, n_groups, y, pred, encoded.judged, min_count)
    if eod is None:
        return AttributeFairness(name, False, f"equalized odds: fewer than two groups with >= {min_count} actual "
                                 f"positives, and fewer than two with >= {min_count} actual negatives; groups: "
                                 f"{listing}", tuple(results), dpd, None)
    worst_class = str(encoded.classes[worst]) if worst is not None and len(encoded.judged) > 1 else None
    return AttributeFairness(name, True, None, tuple(results), dpd, eod, basis, worst_class)


def _max_gap(encoded: _Encoded, y: np.ndarray, pred: np.ndarray, rows: np.ndarray, min_count: int) -> float | None:
    """The worst attribute gap on ``rows`` (None when any attribute is not computable there)."""
    gaps = []
    for grouped in encoded.groups.values():
        if isinstance(grouped, str):
            return None
        codes, labels = grouped
        dpd, eod, _, _ = _differences(codes[rows], len(labels), y[rows], pred[rows], encoded.judged, min_count)
        if dpd is None or eod is None:
            return None
        gaps.append(max(dpd, eod))
    return max(gaps) if gaps else None


@dataclass(frozen=True)
class GapErrors:
    """Bootstrap standard errors of the candidate's gap and of candidate - champion (same rows)."""

    candidate_gap_se: float | None
    increase_se: float | None
    replicates: int  # replicates where every gap was measurable

    def to_dict(self) -> dict[str, Any]:
        return {"candidate_gap_se": self.candidate_gap_se, "increase_se": self.increase_se,
                "replicates": self.replicates}


def paired_gap_errors(frame: pd.DataFrame, y_true: Sequence[Any] | np.ndarray, candidate_pred: Sequence[Any],
                      champion_pred: Sequence[Any] | None, config: PipelineConfig, positive_label: Any,
                      min_group_count: int = 20, *, classes: Sequence[Any] | None = None,
                      max_groups: int = MAX_GROUPS, replicates: int = REPLICATES, max_rows: int = MAX_ROWS,
                      seed: int = 0) -> GapErrors:
    """Resample holdout rows; in each replicate score both models' gaps on the same rows.

    A replicate where a gap is not measurable (a small group drew too few rows) is left
    out; with fewer than half the replicates left there is no estimate (None)."""
    truth = np.asarray(y_true, dtype=object).ravel()
    preds = [np.asarray(candidate_pred, dtype=object).ravel()]
    if champion_pred is not None:
        preds.append(np.asarray(champion_pred, dtype=object).ravel())
    encoded, coded = _encode(frame, config.dataset.sensitive, truth, preds, positive_label, classes, max_groups)
    n = len(truth)
    if n < 2 or not encoded.groups:
        return GapErrors(None, None, 0)
    rng = np.random.default_rng(seed)
    m = min(n, max_rows)
    base = rng.choice(n, size=m, replace=False) if m < n else np.arange(n)
    own, increase = [], []
    for _ in range(replicates):
        rows = base[rng.integers(0, m, size=m)]
        gaps = [_max_gap(encoded, encoded.truth, pred, rows, min_group_count) for pred in coded]
        if gaps[0] is not None:
            own.append(gaps[0])
        if len(gaps) > 1 and gaps[0] is not None and gaps[1] is not None:
            increase.append(gaps[0] - gaps[1])
    scale = math.sqrt(m / n)

    def se(values: list[float]) -> float | None:
        return float(np.std(values, ddof=1) * scale) if len(values) >= max(2, replicates // 2) else None

    return GapErrors(se(own), se(increase) if champion_pred is not None else None, len(increase or own))


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def group_key(value: object) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return MISSING_GROUP
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
