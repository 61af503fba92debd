"""The model's input encoding for scoring: the preprocessor's, vectorized, and never raising.

``TabularPreprocessor.transform`` raises on the first bad cell, which is right for training
and wrong for scoring, where one bad row must not stop a million good ones. This encodes
the same way (the unit test holds it equal to ``transform``) and returns, per numeric
column, which rows could not be read as a finite number; categories are looked up once per
distinct value, not once per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from aire.model.preprocessing import MISSING, TabularPreprocessor, _category_key


@dataclass(frozen=True)
class Encoded:
    matrix: np.ndarray  # float32, rows x input_dim; bad numeric cells are 0 (the mean)
    bad_numeric: dict[str, np.ndarray]  # column -> rows not a finite number (NaN, inf, text, missing)
    raw_numeric: dict[str, np.ndarray]  # column -> float64 values (NaN where bad)
    unknown_category: dict[str, np.ndarray]  # column -> rows with a value the fit never saw
    missing_category: dict[str, np.ndarray]  # column -> rows with the value missing


def numeric_values(series: pd.Series) -> np.ndarray:
    values: np.ndarray = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return values


def category_slots(series: pd.Series, known: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's one-hot slot (``len(known)``: unknown) and whether it is missing,
    with ``_category_key`` called once per distinct value."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    slot_of = {value: slot for slot, value in enumerate(known)}
    keys = [_category_key(v) for v in uniques] + [MISSING]  # code -1 (missing) picks the last
    slots = np.array([slot_of.get(k, len(known)) for k in keys], dtype=np.int64)[codes]
    return slots, codes < 0


def encode(prep: TabularPreprocessor, df: pd.DataFrame) -> Encoded:
    """``prep.transform(df)`` for the rows it would accept; bad numeric cells reported, not raised."""
    out = np.zeros((len(df), prep.input_dim), dtype=np.float32)
    bad: dict[str, np.ndarray] = {}
    raw: dict[str, np.ndarray] = {}
    for i, column in enumerate(prep.numeric):
        values = numeric_values(df[column])
        raw[column] = values
        bad[column] = ~np.isfinite(values)
        with np.errstate(invalid="ignore"):
            scaled = (values - prep.means[column]) / prep.stds[column]
        out[:, i] = np.where(bad[column], 0.0, scaled)
    offset = len(prep.numeric)
    rows = np.arange(len(df))
    unknown: dict[str, np.ndarray] = {}
    missing: dict[str, np.ndarray] = {}
    for column in prep.categorical:
        known = prep.categories[column]
        slots, missing[column] = category_slots(df[column], known)
        # A missing value the fit had seen is the MISSING category, not unknown.
        unknown[column] = (slots == len(known)) & ~missing[column]
        out[rows, offset + slots] = 1.0
        offset += len(known) + 1
    return Encoded(out, bad, raw, unknown, missing)
