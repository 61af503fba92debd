"""The evaluation report: evaluation.json parses, the page renders, a first run says what is missing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aire.config import PipelineConfig
from aire.evaluation.drift import DriftResult
from aire.evaluation.fairness import fairness
from aire.evaluation.quality import quality
from aire.evaluation.report import write_report
from tests.support.german import binary_case


def test_write_report_files_parse(shifted: DriftResult, german: pd.DataFrame, config: PipelineConfig,
                                  predictions: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    y, p = predictions
    frame = german.copy()
    frame.loc[:4, "sex"] = "<b>other</b>"
    candidate_fair = fairness(frame, y, p, config, positive_label=1)
    champion_fair = fairness(german.drop(columns=["sex"]), y, p, config, positive_label=1)
    yq, proba = binary_case()
    paths = write_report(tmp_path, shifted, quality(yq, proba, [0, 1]), quality([1, 1], proba[:2], [0, 1]),
                         candidate_fair, champion_fair)
    record = json.loads(paths["json"].read_text())
    assert record["drift"]["drifted_columns"] == ["age", "credit_amount"]
    assert record["quality"]["candidate"]["accuracy"] == pytest.approx(0.6)
    assert record["fairness"]["champion"]["max_gap"] is None
    whats = " | ".join(item["what"] for item in record["not_computed"])
    assert "champion ROC AUC" in whats and "fairness for 'sex'" in whats and "<b>other</b>" in whats
    html = paths["html"].read_text()
    assert "href='drift.html'" in html and "&lt;b&gt;other&lt;/b&gt;" in html and "<b>other</b>" not in html
    assert "Not computable" in html


def test_first_run_report_says_what_is_missing(german: pd.DataFrame, config: PipelineConfig,
                                               predictions: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    y, p = predictions
    yq, proba = binary_case()
    paths = write_report(tmp_path, None, quality(yq, proba, [0, 1]), None,
                         fairness(german, y, p, config, positive_label=1), None)
    record = json.loads(paths["json"].read_text())
    assert record["drift"] is None and record["quality"]["champion"] is None
    assert {"drift", "champion quality and fairness"} <= {i["what"] for i in record["not_computed"]}
    assert "first run" in paths["html"].read_text()
