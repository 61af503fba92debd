"""A small trained German Credit model and its ODD, shared by the scoring unit tests."""

from __future__ import annotations

import pandas as pd
import pytest

from aire.config import PipelineConfig, Scoring
from aire.data.reference_profile import learn_profile
from aire.model.tabular import TrainedModel
from aire.model.training import fit
from aire.scoring.loader import LoadedModel
from aire.scoring.odd import learn_odd
from tests.support.german import german_config, german_frame


@pytest.fixture(scope="package")
def german() -> pd.DataFrame:
    return german_frame()


@pytest.fixture(scope="package")
def config() -> PipelineConfig:
    return german_config()


@pytest.fixture(scope="package")
def trained(german: pd.DataFrame, config: PipelineConfig) -> TrainedModel:
    return fit(german, config, epochs=3, seed=0, device="cpu").model


@pytest.fixture(scope="package")
def loaded(german: pd.DataFrame, config: PipelineConfig, trained: TrainedModel) -> LoadedModel:
    odd = learn_odd(trained, learn_profile(german, config), german, "d" * 64, Scoring())
    return LoadedModel(1, "d" * 64, trained, odd)
