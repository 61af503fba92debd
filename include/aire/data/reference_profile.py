"""What the champion's training data looked like: the reference that validation learns from.

A ReferenceProfile travels inside the signed model directory (``reference_profile.json``):
numeric ranges, category sets and label classes of the data the champion was trained on.
See aire.data.validation for how learned ranges are widened and applied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aire.config import PipelineConfig
from aire.errors import DataValidationError, InputError

if TYPE_CHECKING:
    import pandas as pd

Scalar = str | int | float | bool
LEARNED_RANGE_TOLERANCE = 0.5


class ColumnKind(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    kind: ColumnKind
    minimum: float | None = None  # numeric only
    maximum: float | None = None
    values: tuple[Scalar, ...] | None = None  # categorical only, sorted
    # Categorical only: the share of the reference's non-missing values whose category occurs
    # exactly once, Good-Turing's estimate of how often a fresh value is one never seen. 0 for
    # a closed set (every category seen twice or more); None in profiles written before it,
    # which validation reads as 0 (no unseen value allowed).
    singleton_share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "values": None if self.values is None else list(self.values),
            "singleton_share": self.singleton_share,
        }


@dataclass(frozen=True)
class ReferenceProfile:
    """What the champion's training data looked like; JSON round-trips via to_dict/from_dict."""

    label: str
    label_classes: tuple[Scalar, ...]
    row_count: int
    columns: tuple[ColumnProfile, ...]
    range_tolerance: float = LEARNED_RANGE_TOLERANCE

    def column(self, name: str) -> ColumnProfile | None:
        return next((c for c in self.columns if c.name == name), None)

    def learned_range(self, name: str) -> tuple[float, float] | None:
        """The reference's [min, max] widened by the tolerance; None for non-numeric columns."""
        learned = self.column(name)
        if learned is None or learned.minimum is None or learned.maximum is None:
            return None
        tolerance = self.range_tolerance
        if learned.minimum >= 0:  # never negative: widen on a log1p scale, never below 0
            low, high = math.log1p(learned.minimum), math.log1p(learned.maximum)
            margin = tolerance * (high - low)
            return max(0.0, math.expm1(low - margin)), math.expm1(high + margin)
        margin = tolerance * (learned.maximum - learned.minimum)
        return learned.minimum - margin, learned.maximum + margin

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "label_classes": list(self.label_classes),
            "row_count": self.row_count,
            "range_tolerance": self.range_tolerance,
            "columns": [c.to_dict() for c in self.columns],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceProfile:
        try:
            columns = tuple(
                ColumnProfile(
                    name=str(c["name"]),
                    kind=ColumnKind(c["kind"]),
                    minimum=None if c.get("minimum") is None else float(c["minimum"]),
                    maximum=None if c.get("maximum") is None else float(c["maximum"]),
                    values=None if c.get("values") is None else _scalars(c["values"]),
                    singleton_share=_share(c.get("singleton_share")),
                )
                for c in data["columns"]
            )
            return cls(
                label=str(data["label"]),
                label_classes=_scalars(data["label_classes"]),
                row_count=int(data["row_count"]),
                columns=columns,
                range_tolerance=float(data.get("range_tolerance", LEARNED_RANGE_TOLERANCE)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f"reference profile is malformed: {type(exc).__name__}: {exc}"
            ) from None


def _share(raw: Any) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0.0 <= float(raw) <= 1.0:
        raise ValueError(f"singleton_share must be a number in [0, 1], got {raw!r:.80}")
    return float(raw)


def _scalars(raw: Any) -> tuple[Scalar, ...]:
    """A JSON list of plain values; a bare string would otherwise become its characters."""
    if not isinstance(raw, list) or not all(isinstance(v, str | int | float) for v in raw):
        raise TypeError(f"expected a list of strings or numbers, got {raw!r:.80}")
    return tuple(raw)


def learn_profile(
    df: pd.DataFrame,
    config: PipelineConfig,
    *,
    source: str = "<reference>",
    range_tolerance: float = LEARNED_RANGE_TOLERANCE,
) -> ReferenceProfile:
    """Learn ranges, category sets and label classes from the champion's training data.

    Numeric features get a range; categorical features and sensitive columns (groups are
    categories) get their value set. The reference must itself be clean: a learned rule
    built on NaN or inf would be meaningless, so those raise DataValidationError.
    """
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    dataset = config.dataset
    if len(df) == 0:
        raise DataValidationError(source, None, "row count >= 1", "the reference has no rows")
    for column in [*dataset.features.all, *dataset.sensitive, dataset.label]:
        if column not in df.columns:
            raise DataValidationError(source, column, "column exists", "missing from the reference")
    columns: list[ColumnProfile] = []
    for column in dataset.features.numeric:
        series = df[column]
        if not is_numeric_dtype(series.dtype) or is_bool_dtype(series.dtype):
            raise DataValidationError(source, column, "numeric dtype", f"dtype is {series.dtype}")
        values = series.dropna().astype(float)
        if values.empty:
            raise DataValidationError(source, column, "not null", "every value is missing")
        if not values.map(math.isfinite).all():
            raise DataValidationError(source, column, "finite", "the reference holds +inf or -inf")
        columns.append(
            ColumnProfile(column, ColumnKind.NUMERIC, float(values.min()), float(values.max()))
        )
    categorical = [
        c
        for c in [*dataset.features.categorical, *dataset.sensitive]
        if c not in dataset.features.numeric
    ]
    for column in dict.fromkeys(categorical):
        columns.append(ColumnProfile(column, ColumnKind.CATEGORICAL, values=_distinct(df[column]),
                                     singleton_share=_singleton_share(df[column])))
    classes = _distinct(df[dataset.label])
    if not classes:
        raise DataValidationError(source, dataset.label, "not null", "the reference has no labels")
    return ReferenceProfile(dataset.label, classes, len(df), tuple(columns), range_tolerance)


def _singleton_share(series: pd.Series) -> float:
    counts = series.dropna().map(json_safe).value_counts()
    total = int(counts.sum())
    return float((counts == 1).sum()) / total if total else 0.0


def _distinct(series: pd.Series) -> tuple[Scalar, ...]:
    """Distinct non-missing values as plain Python scalars, in a stable order."""
    values = {json_safe(v) for v in series.dropna().unique()}
    return tuple(sorted(values, key=lambda v: (type(v).__name__, v)))



def json_safe(value: Any) -> Any:
    """Plain JSON: numpy scalars to Python, NaN/inf to strings, unknown objects to text."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # 'nan', 'inf', '-inf'
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
