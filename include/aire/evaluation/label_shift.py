"""Per-group label rates of the new batch against the champion's training batch.

Labels that someone changed for one group only (60% of one group's positive labels turned
negative, say) leave the features alone, so drift does not see them, and the models trained
on them learn the bias, so their suspect rates and fairness gaps move little. What does move
is the share of each class within that group, relative to the other groups. Per sensitive
attribute, group g and class k (binary: the positive label only, the other class mirrors
it; multi-class: every class, one-vs-rest), the shift is a difference in differences:

    (share of k in g - share of k in the rest) now  -  the same in the reference,

with the standard error of four independent proportions, each Agresti-Caffo adjusted (one
pseudo-row in and one out), so a small group or a class it never had still has an honest
error. A group needs ``min_group_count`` rows in both batches (and so does its rest);
smaller ones are listed, not measured. Groups that differ in their base rates differ the
same way in both batches and cancel. The gate (``group_label_shift``) judges the largest
shift with a family-wise z over all the shifts measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from aire.evaluation.fairness import MISSING_GROUP, group_key


@dataclass(frozen=True)
class GroupShift:
    column: str
    group: str
    label: str
    rows: int
    reference_rows: int
    share: float  # of the label in the group, now
    rest_share: float
    reference_share: float
    reference_rest_share: float
    shift: float
    se: float

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "group": self.group, "label": self.label, "rows": self.rows,
                "reference_rows": self.reference_rows, "share": self.share, "rest_share": self.rest_share,
                "reference_share": self.reference_share, "reference_rest_share": self.reference_rest_share,
                "shift": self.shift, "se": self.se}


@dataclass(frozen=True)
class LabelShift:
    shifts: tuple[GroupShift, ...]
    small_groups: tuple[str, ...]  # 'column=group (rows, reference rows)'
    not_measured: tuple[str, ...]  # attributes that could not be compared, with why

    def to_dict(self) -> dict[str, Any]:
        return {"shifts": [s.to_dict() for s in self.shifts], "small_groups": list(self.small_groups),
                "not_measured": list(self.not_measured)}


def group_label_shift(reference: pd.DataFrame, batch: pd.DataFrame, label: str, sensitive: Sequence[str],
                      positive_label: Any, *, min_group_count: int = 20, max_groups: int = 50) -> LabelShift:
    """The shift of every (attribute, group, class) measurable in both frames."""
    shifts: list[GroupShift] = []
    small: list[str] = []
    skipped: list[str] = []
    if label not in reference.columns or label not in batch.columns:
        return LabelShift((), (), (f"label column '{label}' is missing",))
    classes = sorted({group_key(v) for v in (*reference[label].dropna(), *batch[label].dropna())}, key=str)
    judged = [group_key(positive_label)] if len(classes) <= 2 else classes
    for column in sensitive:
        if column not in reference.columns or column not in batch.columns:
            skipped.append(f"'{column}': not in both batches")
            continue
        now_groups, then_groups = _keys(batch[column]), _keys(reference[column])
        distinct = len(set(now_groups) | set(then_groups))
        if distinct > max_groups:
            skipped.append(f"'{column}': {distinct} distinct values (> max_sensitive_groups {max_groups})")
            continue
        now_labels, then_labels = _keys(batch[label]), _keys(reference[label])
        for group in sorted(set(now_groups) & set(then_groups) - {MISSING_GROUP}):
            here, there = now_groups == group, then_groups == group
            counts = (int(here.sum()), int((~here).sum()), int(there.sum()), int((~there).sum()))
            if min(counts) < min_group_count:
                small.append(f"{column}={group} ({counts[0]} rows, reference {counts[2]})")
                continue
            for k in judged:
                shares = [float(np.mean(labels[mask] == k)) for labels, mask in
                          ((now_labels, here), (now_labels, ~here), (then_labels, there), (then_labels, ~there))]
                se = math.sqrt(sum(_adjusted_variance(n, p) for n, p in zip(counts, shares, strict=True)))
                shift = (shares[0] - shares[1]) - (shares[2] - shares[3])
                shifts.append(GroupShift(column, group, str(k), counts[0], counts[2], shares[0], shares[1],
                                         shares[2], shares[3], shift, se))
    return LabelShift(tuple(shifts), tuple(small), tuple(skipped))


def _keys(column: pd.Series) -> np.ndarray:
    return np.array([group_key(v) for v in column.to_numpy()], dtype=object)


def _adjusted_variance(rows: int, share: float) -> float:
    adjusted = (share * rows + 1) / (rows + 2)
    return adjusted * (1 - adjusted) / (rows + 2)
