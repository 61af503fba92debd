"""What fine-tuning does with suspected label errors: keep, drop, or down-weight them.

The action is set in the config (``analysis.action``) and applied to the training split
only: the holdout keeps its rows as they came, so the evaluation measures the model on
the batch as delivered, not on a set the analysis has already cleaned.

Fine-tuning runs in another task than the analysis, so it reads the suspects back from
``error_analysis.csv`` and matches them to the batch by row id (the config's id column,
or the row's position in the batch when there is none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aire.errors import AireError, InputError


class Action(StrEnum):
    KEEP = "keep"
    DROP = "drop"
    DOWNWEIGHT = "downweight"


@dataclass(frozen=True)
class TrainingSet:
    """The fine-tuning rows after the configured action, and what the action did."""

    frame: pd.DataFrame = field(repr=False)
    sample_weight: np.ndarray | None = field(repr=False)
    action: str
    n_suspected: int | None  # None: not looked up (action keep in the pipeline)
    n_dropped: int
    n_downweighted: int
    weight: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "n_rows": len(self.frame), "n_suspected": self.n_suspected,
                "n_dropped": self.n_dropped, "n_downweighted": self.n_downweighted,
                "weight": self.weight}


def apply_action(df: pd.DataFrame, suspected: np.ndarray, action: Action | str,
                 weight: float = 0.2) -> TrainingSet:
    """``drop`` leaves suspects out; ``downweight`` gives them ``weight`` (others 1.0);
    ``keep`` trains on every row with no weights. ``suspected`` is aligned with ``df``'s rows.
    """
    chosen = _action(action)
    if not 0 < weight <= 1:
        raise InputError(f"downweight weight must be in (0, 1], got {weight}")
    suspected = np.asarray(suspected, dtype=bool)
    if suspected.shape != (len(df),):
        raise InputError(f"the suspect mask covers {suspected.size} rows "
                         f"but the data has {len(df)}")
    n = int(suspected.sum())
    if chosen is Action.DROP:
        return TrainingSet(df[~suspected].copy(), None, chosen.value, n, n, 0, None)
    if chosen is Action.DOWNWEIGHT:
        return TrainingSet(df.copy(), np.where(suspected, weight, 1.0), chosen.value, n, 0, n,
                           weight)
    return TrainingSet(df.copy(), None, chosen.value, n, 0, 0, None)


def suspects_from_table(table_csv: Path, batch: pd.DataFrame, id_column: str | None) -> np.ndarray:
    """Suspected or not, per row of ``batch``, as ``error_analysis.csv`` records it.

    Ids are compared as text (the CSV's only type), so ``7`` in Parquet matches ``7`` in the
    CSV; a table that does not cover exactly the batch's rows is an input error.
    """
    try:
        table = pd.read_csv(table_csv, dtype={"row_id": str}, usecols=["row_id", "suspected"],
                            keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{table_csv}: cannot read the error analysis table: {exc}") from None
    keys = (batch[id_column].astype(str) if id_column else
            pd.Series(np.arange(len(batch))).astype(str)).to_numpy()
    what = f"column '{id_column}'" if id_column else "row positions"
    if len(set(keys)) != len(keys):
        raise InputError(f"{what} breaks rule 'unique row id': the suspects cannot be matched")
    if table.empty:  # a skipped analysis lists no rows and suspects none
        return np.zeros(len(batch), dtype=bool)
    flags = table.set_index("row_id")["suspected"].astype(str).str.lower() == "true"
    if len(table) != len(batch) or not flags.index.is_unique or not flags.index.isin(keys).all():
        raise InputError(f"{table_csv}: {what} do not match the batch's "
                         f"({len(table)} analysed rows, {len(batch)} in the batch)")
    return np.asarray(flags.reindex(keys).to_numpy(), dtype=bool)


def training_set(train: pd.DataFrame, batch: pd.DataFrame, analysis_dir: Path, *,
                 action: Action | str, weight: float, id_column: str | None) -> TrainingSet:
    """The configured action applied to ``train`` (rows of ``batch``, indexed as in it).

    ``keep`` reads nothing (``n_suspected`` None): a default must not fail on the analysis'
    files. ``drop`` and ``downweight`` refuse to train without the analysis' table.
    """
    if _action(action) is Action.KEEP:
        return TrainingSet(train.copy(), None, Action.KEEP.value, None, 0, 0, None)
    table = analysis_dir / "error_analysis.csv"
    if not table.exists():
        raise AireError(f"{table} is missing: run the 'analyze_errors' stage first "
                        f"(analysis.action is '{action}')")
    positions = batch.index.get_indexer(train.index)
    if (positions < 0).any():
        raise InputError("the training split has rows that are not in the batch")
    return apply_action(train, suspects_from_table(table, batch, id_column)[positions], action,
                        weight)


def _action(action: Action | str) -> Action:
    try:
        return Action(action)
    except ValueError:
        raise InputError(f"action '{action}' is not one of {[a.value for a in Action]}") from None
