"""One scored chunk: encode, judge the domain, score each distinct row once, apply the policy.

Pure apart from the row cache: it takes loaded models and a frame and returns the output
frame and its ODD verdicts; ``aire.scoring.score`` reads, writes and reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from aire.config import OutOfDomain
from aire.scoring.cache import RowCache, row_hashes, unique_rows
from aire.scoring.encoding import encode
from aire.scoring.odd import OUT, Verdicts, judge_confidence, judge_inputs

if TYPE_CHECKING:
    from aire.scoring.fallback import Baseline
    from aire.scoring.loader import LoadedModel

SCORED_BY_NONE = "none"


@dataclass
class ChunkResult:
    frame: pd.DataFrame  # the output rows
    verdicts: Verdicts
    proba: np.ndarray  # the served probabilities (NaN rows: withheld)
    champion_proba: np.ndarray  # the primary model's probabilities (NaN: unscorable)
    scored_rows: int  # rows the model actually ran on (distinct, not in the cache)


def model_proba(loaded: LoadedModel, encoded: np.ndarray, hashes: np.ndarray, scorable: np.ndarray,
                cache: RowCache | None) -> tuple[np.ndarray, int]:
    """Probabilities of ``loaded`` for every scorable row, each distinct row run once."""
    n_classes = len(loaded.model.classes)
    every = bool(scorable.all())
    rows = None if every else np.flatnonzero(scorable)
    picked = hashes if rows is None else hashes[rows]
    if len(picked) == 0:
        return np.full((len(encoded), n_classes), np.nan), 0
    first, inverse = unique_rows(picked)
    distinct = picked[first]
    found, cached = (cache.lookup(loaded.digest, distinct) if cache is not None
                     else (np.zeros(len(distinct), dtype=bool), None))
    todo = ~found
    if cached is None and len(distinct) == len(picked):  # no repeats, no cache hits: no gather needed
        every_row = loaded.model.predict_proba_encoded(encoded if rows is None else encoded[rows])
        if cache is not None:
            cache.add(loaded.digest, picked, every_row)
        if rows is None:
            return every_row, len(every_row)
        out = np.full((len(encoded), n_classes), np.nan)
        out[rows] = every_row
        return out, len(every_row)
    source = first[todo] if rows is None else rows[first[todo]]
    fresh = loaded.model.predict_proba_encoded(encoded[source]) if todo.any() else None
    if cached is None and fresh is not None:
        values = fresh  # nothing from the cache: the fresh rows are every distinct row, in order
    else:
        values = np.empty((len(distinct), n_classes))
        if cached is not None:
            values[found] = cached
        if fresh is not None:
            values[todo] = fresh
    if cache is not None and fresh is not None:
        cache.add(loaded.digest, distinct[todo], fresh)
    if rows is None:
        return values[inverse], int(todo.sum())
    out = np.full((len(encoded), n_classes), np.nan)
    out[rows] = values[inverse]
    return out, int(todo.sum())


def score_chunk(df: pd.DataFrame, primary: LoadedModel | None, baseline: Baseline | None, *,
                policy: OutOfDomain, fallback: LoadedModel | Baseline | None, id_column: str | None,
                row_offset: int, cache: RowCache | None, primary_label: str) -> ChunkResult:
    """Score one chunk with ``primary`` (or the baseline alone when no version verified)."""
    from aire.scoring.fallback import Baseline as _Baseline

    if primary is None:
        assert baseline is not None
        return _baseline_only(df, baseline, id_column, row_offset)
    model = primary.model
    encoded = encode(model.preprocessor, df)
    verdicts = judge_inputs(primary.odd, model, encoded)
    features = [*model.preprocessor.numeric, *model.preprocessor.categorical]
    hashes = row_hashes(df, features)
    champion_proba, scored = model_proba(primary, encoded.matrix, hashes, verdicts.scorable, cache)
    confidence = np.nan_to_num(champion_proba.max(axis=1, initial=0.0, where=~np.isnan(champion_proba)))
    judge_confidence(primary.odd, verdicts, confidence)
    proba = champion_proba.copy()
    scored_by = np.where(verdicts.scorable, primary_label, SCORED_BY_NONE).astype(object)
    out_rows = (verdicts.code == 1) & verdicts.scorable
    if policy is OutOfDomain.WITHHOLD and out_rows.any():
        proba[out_rows] = np.nan
        scored_by[out_rows] = SCORED_BY_NONE
    elif policy is OutOfDomain.FALLBACK and out_rows.any():
        if isinstance(fallback, _Baseline):
            proba[out_rows] = fallback.predict_proba(int(out_rows.sum()))
            scored_by[out_rows] = "baseline"
        elif fallback is not None:
            other, more = model_proba(fallback, encoded.matrix, hashes, out_rows, cache)
            proba[out_rows] = other[out_rows]
            scored_by[out_rows] = f"fallback:v{fallback.version}"
            scored += more
        else:
            proba[out_rows] = np.nan
            scored_by[out_rows] = SCORED_BY_NONE
    frame = _frame(df, proba, [str(c) for c in model.classes], model.classes, verdicts, scored_by,
                   id_column, row_offset)
    served = {primary_label: primary}
    if fallback is not None and not isinstance(fallback, _Baseline):
        served[f"fallback:v{fallback.version}"] = fallback
    _stamp(frame, {label: (m.version, m.digest) for label, m in served.items()})
    return ChunkResult(frame, verdicts, proba, champion_proba, scored)


def _stamp(frame: pd.DataFrame, models: dict[str, tuple[int | None, str]]) -> None:
    """Each row's model version and digest, from who scored it (``scored_by``), per category."""
    by = frame["scored_by"].cat
    codes = by.codes.to_numpy()
    labels = list(by.categories)
    versions = pd.array([models.get(label, (None, ""))[0] for label in labels] + [None], dtype="Int64")
    digests = np.array([models[label][1] if label in models else None for label in labels] + [None], dtype=object)
    frame["model_version"] = versions[codes]  # code -1 (none) picks the trailing missing value
    frame["model_digest"] = pd.Categorical(digests[codes])


def _frame(df: pd.DataFrame, proba: np.ndarray, names: list[str], classes: Sequence[object], verdicts: Verdicts,
           scored_by: np.ndarray, id_column: str | None, row_offset: int) -> pd.DataFrame:
    withheld = np.isnan(proba).any(axis=1)
    top = np.where(withheld, 0, np.nan_to_num(proba).argmax(axis=1))
    prediction = pd.Series(np.asarray(classes, dtype=object)[top]).where(~withheld, None)
    odd, rule, column = verdicts.labels()
    columns: dict[str, object] = {}
    if id_column and id_column in df.columns:
        columns[id_column] = df[id_column].to_numpy()
    else:
        columns["row"] = np.arange(row_offset, row_offset + len(df), dtype=np.int64)
    columns["prediction"] = prediction.to_numpy()
    for i, name in enumerate(names):
        columns[f"proba_{name}"] = proba[:, i]
    columns["confidence"] = np.where(withheld, np.nan, np.nan_to_num(proba).max(axis=1))
    columns["withheld"] = withheld
    columns["scored_by"] = pd.Categorical(scored_by)
    columns["odd"] = pd.Categorical(odd, categories=["in", OUT, "uncertain"])
    columns["odd_rule"] = pd.Categorical(rule)
    columns["odd_column"] = pd.Categorical(column)
    return pd.DataFrame(columns)


def _baseline_only(df: pd.DataFrame, baseline: Baseline, id_column: str | None, row_offset: int) -> ChunkResult:
    rows = len(df)
    verdicts = Verdicts(np.zeros(rows, dtype=np.int8), np.full(rows, -1, dtype=np.int16), [],
                        np.ones(rows, dtype=bool), None)
    proba = baseline.predict_proba(rows)
    scored_by = np.full(rows, "baseline", dtype=object)
    frame = _frame(df, proba, baseline.classes, list(baseline.classes), verdicts, scored_by, id_column, row_offset)
    _stamp(frame, {"baseline": (None, "baseline")})
    return ChunkResult(frame, verdicts, proba, proba, 0)
