"""Most-confident review: the drivers come from the models that scored each row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aire.analysis.error_analysis import analyze, run_error_analysis
from aire.analysis.review import most_confident
from aire.config import PipelineConfig, parse_config
from aire.data.datasets import german_credit

FEATURES = {"numeric": ["age", "credit_amount", "duration", "job"],
            "categorical": ["housing", "saving_accounts", "checking_account", "purpose"]}
ALL = [*FEATURES["numeric"], *FEATURES["categorical"]]


def make_config(extra_numeric: list[str] | None = None) -> PipelineConfig:
    features = {**FEATURES, "numeric": FEATURES["numeric"] + (extra_numeric or [])}
    return parse_config({"name": "credit-risk",
                         "dataset": {"label": "risk", "sensitive": ["sex"], "features": features},
                         "analysis": {"review_k": 5}})


@pytest.fixture(scope="module")
def german() -> pd.DataFrame:
    return german_credit()


def labels(df: pd.DataFrame) -> np.ndarray:
    return df["risk"].to_numpy()


def test_the_stage_reports_leakage_and_the_review_names_the_driver(german: pd.DataFrame) -> None:
    batch = german.assign(leak=labels(german))
    result = run_error_analysis(batch, make_config(["leak"]), champion=None, folds=3,
                                seed=0, epochs=15, device="cpu")
    assert result.to_dict()["leakage"]["flagged"] == ["leak"]
    review = result.review
    assert len(review) == 10 and review.groupby("predicted").size().tolist() == [5, 5]
    # the leaking feature is what the most confident predictions lean on most
    assert review["drivers"].str.startswith("leak=").all(), review["drivers"].tolist()


def test_clean_batch_review_has_drivers_from_the_scoring_models(german: pd.DataFrame) -> None:
    result = run_error_analysis(german, make_config(), champion=None, folds=3, seed=0,
                                epochs=10, device="cpu")
    assert result.to_dict()["leakage"]["flagged"] == []
    drivers = result.review["drivers"]
    assert (drivers.str.count(";") == 2).all()  # three named features per row
    named = {part.split("=")[0].strip() for text in drivers for part in text.split(";")}
    assert named <= set(ALL)


def test_most_confident_lists_the_top_rows_of_each_predicted_class() -> None:
    p1 = np.array([.99, .2, .8, .05, .6, .7, .01, .95])
    samples = pd.DataFrame({"predicted": (p1 > .5).astype(int),
                            "confidence": np.maximum(p1, 1 - p1), "position": np.arange(8)})
    top = most_confident(samples, per_class=2)
    assert top["position"].tolist() == [6, 3, 0, 7]
    assert top["rank"].tolist() == [1, 2, 1, 2]


def test_review_without_the_models_has_no_drivers() -> None:
    config = make_config()
    p1 = np.array([.1, .2, .9, .8])
    result = analyze(pd.DataFrame({"risk": [0, 0, 1, 1]}), np.column_stack([1 - p1, p1]), [0, 1],
                     config)
    assert (result.review["drivers"] == "").all() and len(result.review) == 4
