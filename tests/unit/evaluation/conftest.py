"""Fixtures the evaluation tests share: the German Credit frame, its config, two drift results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aire.config import PipelineConfig
from aire.evaluation.drift import DriftResult, drift
from tests.support.german import german_config, german_frame


@pytest.fixture(scope="module")
def german() -> pd.DataFrame:
    return german_frame()


@pytest.fixture(scope="module")
def config() -> PipelineConfig:
    return german_config()


@pytest.fixture(scope="module")
def same_population(german: pd.DataFrame, config: PipelineConfig,
                    tmp_path_factory: pytest.TempPathFactory) -> DriftResult:
    shuffled = german.sample(frac=1.0, random_state=3).reset_index(drop=True)
    return drift(german, shuffled, config, tmp_path_factory.mktemp("same"))


@pytest.fixture(scope="module")
def shifted(german: pd.DataFrame, config: PipelineConfig, tmp_path_factory: pytest.TempPathFactory) -> DriftResult:
    current = german.copy()
    current["credit_amount"] = current["credit_amount"] * 3
    current["age"] = current["age"] + 20
    return drift(german, current, config, tmp_path_factory.mktemp("shifted"))


@pytest.fixture(scope="module")
def predictions(german: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = german["risk"].to_numpy()
    return y, np.where(rng.random(len(y)) < 0.8, y, 1 - y)
