"""Tabular preprocessing: standardized numbers and one-hot categories, as plain JSON.

Fitted on the training data and saved as ``preprocessing.json`` in the model directory;
a warm start reuses the champion's, so the network's input layout never changes under it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from aire.config import Features
from aire.errors import InputError

PREPROCESSING_FILE = "preprocessing.json"

# Missing categorical values become a category of their own when the fit data has them;
# otherwise they fall into the unknown slot like any value the fit never saw.
MISSING = "<missing>"
UNKNOWN = "<unknown>"

def _category_key(value: object) -> str:
    """One string per category value, so that 2, 2.0 and "2" from CSV and JSON agree."""
    if value is None or value is pd.NA or value is pd.NaT:
        return MISSING
    if isinstance(value, float):
        if math.isnan(value):
            return MISSING
        if value.is_integer():
            return str(int(value))
    return str(value)


def _require_columns(df: pd.DataFrame, columns: Sequence[str], role: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"column(s) {missing} break rule 'required {role} column': "
                         "not in the data")


def _numeric_column(df: pd.DataFrame, column: str) -> np.ndarray:
    values: np.ndarray = pd.to_numeric(df[column], errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        examples = df[column][bad].head(3).tolist()
        raise InputError(
            f"column '{column}' breaks rule 'numeric feature: finite number, not missing': "
            f"{int(bad.sum())} bad value(s), e.g. {examples}"
        )
    return values


@dataclass(frozen=True)
class TabularPreprocessor:
    """Standardizes numeric columns and one-hot encodes categorical ones.

    Every categorical column gets one extra "unknown" slot, so values the fit never saw
    (a new product, a typo that validation let through) still produce a valid input row.
    """

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    means: Mapping[str, float]
    stds: Mapping[str, float]
    categories: Mapping[str, tuple[str, ...]]

    @classmethod
    def fit(cls, df: pd.DataFrame, features: Features) -> TabularPreprocessor:
        if len(df) == 0:
            raise InputError("cannot fit the preprocessor on an empty table")
        _require_columns(df, [*features.numeric, *features.categorical], "feature")
        means: dict[str, float] = {}
        stds: dict[str, float] = {}
        for column in features.numeric:
            values = _numeric_column(df, column)
            means[column] = float(values.mean())
            std = float(values.std())
            stds[column] = std if std > 0 else 1.0  # a constant column must not divide by 0
        categories = {
            column: tuple(sorted(set(df[column].map(_category_key))))
            for column in features.categorical
        }
        return cls(tuple(features.numeric), tuple(features.categorical), means, stds, categories)

    @property
    def feature_names(self) -> list[str]:
        """The encoded columns, in the order the network sees them."""
        names = list(self.numeric)
        for column in self.categorical:
            names += [f"{column}={value}" for value in self.categories[column]]
            names.append(f"{column}={UNKNOWN}")
        return names

    def spans(self) -> dict[str, slice]:
        """The encoded columns of each input: one for a number, a one-hot block per category."""
        spans = {column: slice(i, i + 1) for i, column in enumerate(self.numeric)}
        offset = len(self.numeric)
        for column in self.categorical:
            width = len(self.categories[column]) + 1
            spans[column] = slice(offset, offset + width)
            offset += width
        return spans

    @property
    def input_dim(self) -> int:
        return len(self.numeric) + sum(len(self.categories[c]) + 1 for c in self.categorical)

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        _require_columns(df, [*self.numeric, *self.categorical], "feature")
        out = np.zeros((len(df), self.input_dim), dtype=np.float32)
        for i, column in enumerate(self.numeric):
            out[:, i] = (_numeric_column(df, column) - self.means[column]) / self.stds[column]
        offset = len(self.numeric)
        rows = np.arange(len(df))
        for column in self.categorical:
            known = self.categories[column]
            slot_of = {value: slot for slot, value in enumerate(known)}
            keys = df[column].map(_category_key)
            slots = keys.map(slot_of).fillna(len(known)).to_numpy(dtype=np.int64)
            out[rows, offset + slots] = 1.0
            offset += len(known) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "means": dict(self.means),
            "stds": dict(self.stds),
            "categories": {c: list(v) for c, v in self.categories.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TabularPreprocessor:
        try:
            numeric = tuple(str(c) for c in data["numeric"])
            categorical = tuple(str(c) for c in data["categorical"])
            means = {c: float(data["means"][c]) for c in numeric}
            stds = {c: float(data["stds"][c]) for c in numeric}
            categories = {c: tuple(str(v) for v in data["categories"][c]) for c in categorical}
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{PREPROCESSING_FILE}: malformed preprocessing state: "
                             f"{exc!r}") from None
        return cls(numeric, categorical, means, stds, categories)


