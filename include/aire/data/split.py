"""The batch's split into the rows a candidate trains on and the holdout it is judged on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def split_batch(frame: pd.DataFrame, label: str, *, holdout_fraction: float,
                seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and holdout rows, stratified by label when every class has two rows or more.

    Seeded, so a re-run of the same run gets the same split (and so the same digest).
    """
    from sklearn.model_selection import train_test_split

    labels = frame[label]
    stratify = labels if labels.value_counts().min() >= 2 else None
    train, holdout = train_test_split(frame, test_size=holdout_fraction, random_state=seed, stratify=stratify)
    return train, holdout
