"""evaluate_candidate on real trained models: the comparison on rows new to the champion,
and bad input that must end in a report saying what is missing and a gate that rejects."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from aire.config import Gates, PipelineConfig, load_config
from aire.data.datasets import german_credit, make_batch
from aire.evaluation.candidate import evaluate_candidate
from aire.evaluation.quality import compare_quality, unseen_rows
from aire.home import PROJECT_ROOT
from aire.model.tabular import TrainedModel
from aire.model.training import fit
from aire.promotion.evidence import evidence_from_files
from aire.promotion.gate import decide

CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"


@pytest.fixture(scope="module")
def config() -> PipelineConfig:
    return load_config(CONFIG)


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    base = german_credit()
    reference, _ = make_batch(base, n_rows=700, seed=1)
    batch, _ = make_batch(base, n_rows=700, seed=5)
    return {"reference": reference, "batch": batch, "holdout": batch.iloc[525:].reset_index(drop=True)}


@pytest.fixture(scope="module")
def models(config: PipelineConfig, data: dict[str, pd.DataFrame]) -> dict[str, TrainedModel]:
    champion = fit(data["reference"].iloc[:525], config, epochs=15, seed=0).model
    candidate = fit(data["batch"].iloc[:525], config, init_from=champion, epochs=15, seed=0).model
    return {"champion": champion, "candidate": candidate}


def _gate(out: Path, first_run: bool = False) -> Any:
    evidence = evidence_from_files(out / "evaluation.json", None, None, first_run)
    evidence = replace(evidence, validation_passed=True, noise_rate=0.2, champion_noise_rate=0.2, noise_rows=700,
                       noise_classes=2, champion_noise_rows=700, leaking_features=(), group_suspect_rates=(),
                       champion_group_suspect_rates=(), signature_verified=True)
    return decide(Gates(), evidence)


def _run(config: PipelineConfig, holdout: pd.DataFrame, models: dict[str, TrainedModel], out: Path,
         reference: pd.DataFrame | None, batch: pd.DataFrame | None = None) -> dict[str, Any]:
    evaluate_candidate(config, holdout, models["candidate"], out, champion=models["champion"],
                       reference=reference, batch=holdout if batch is None else batch)
    return dict(json.loads((out / "evaluation.json").read_text()))


# --- the comparison ------------------------------------------------------------------------
def test_unseen_rows_match_by_content_whatever_the_dtype() -> None:
    reference = pd.DataFrame({"x": [1, 2, 3], "c": ["a", "b", "c"], "id": [10, 11, 12]})
    holdout = pd.DataFrame({"x": [1.0, 2.0, 9.0], "c": ["a", "z", "c"], "id": [99, 98, 97]})
    assert unseen_rows(holdout, reference, ["x", "c"]).tolist() == [False, True, True]  # ids ignored
    assert unseen_rows(holdout, reference, ["missing"]).all()


def test_comparison_uses_rows_new_to_the_champion_and_its_paired_error() -> None:
    y = np.array([1, 0] * 20)
    right = np.column_stack([1 - y * 0.8 - 0.1, y * 0.8 + 0.1])
    wrong = right[:, ::-1]
    # The champion is right on the first 10 rows only, the candidate everywhere.
    champion = np.vstack([right[:10], wrong[10:]])
    unseen = np.arange(40) >= 5  # 35 rows new to the champion
    result = compare_quality(y, (right, [0, 1]), (champion, [0, 1]), unseen, min_rows=30)
    assert (result.n_rows, result.n_excluded) == (35, 5) and "never trained on" in result.basis
    assert result.accuracy_drop == pytest.approx(5 / 35 - 1.0)  # the candidate is better
    d = np.r_[np.zeros(5), -np.ones(30)]
    assert result.accuracy_drop_se == pytest.approx(d.std(ddof=1) / np.sqrt(35))
    few = compare_quality(y, (right, [0, 1]), (champion, [0, 1]), np.arange(40) >= 20, min_rows=30)
    assert few.n_rows == 40 and "favours it" in few.basis


def test_a_clean_batch_is_compared_on_new_rows_and_passes(config: PipelineConfig, data: dict[str, pd.DataFrame],
                                                          models: dict[str, TrainedModel], tmp_path: Path) -> None:
    record = _run(config, data["holdout"], models, tmp_path, data["reference"], data["batch"])
    comparison = record["quality"]["comparison"]
    new = unseen_rows(data["holdout"], data["reference"], [*config.dataset.features.all, "sex", "risk"])
    assert comparison["n_rows"] == int(new.sum()) and 30 <= comparison["n_rows"] < len(data["holdout"])
    assert comparison["accuracy_drop_se"] > 0 and record["drift"]["drift_share"] == 0.0
    assert record["not_computed"] == [] or all("part of equalized odds" in i["what"] for i in record["not_computed"])
    assert _gate(tmp_path).failed == []
    assert "Candidate vs champion, on the same rows" in (tmp_path / "evaluation.html").read_text()


# --- bad input: the report says what is missing, the gate rejects, nothing raises ------------
def _all_nan(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return frame.assign(**{column: np.nan})


REGRESSIONS = ["accuracy_drop_vs_champion", "macro_f1_drop_vs_champion", "roc_auc_drop_vs_champion",
               "calibration_error_increase_vs_champion"]
BAD = {
    "sensitive column missing": (lambda h: h.drop(columns=["sex"]), "candidate fairness for 'sex'",
                                 ["fairness_gap", "fairness_gap_increase_vs_champion"]),
    "a group with zero rows": (lambda h: h.assign(sex="male"), "fewer than two groups",
                               ["fairness_gap", "fairness_gap_increase_vs_champion"]),
    "single-class holdout": (lambda h: h[h["risk"] == 1].reset_index(drop=True), "single class",
                             ["accuracy", *REGRESSIONS]),
    "all-NaN numeric column": (lambda h: _all_nan(h, "age"), "age",
                               ["drift_share", "null_rate_increase", "accuracy", *REGRESSIONS, "fairness_gap",
                                "fairness_gap_increase_vs_champion"]),
    "all-NaN categorical column": (lambda h: _all_nan(h, "housing"), "drift of column 'housing'",
                                   ["drift_share", "null_rate_increase"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_reported_and_rejected(config: PipelineConfig, data: dict[str, pd.DataFrame],
                                            models: dict[str, TrainedModel], tmp_path: Path, case: str) -> None:
    damage, named, failing = BAD[case]
    holdout = damage(data["holdout"])
    record = _run(config, holdout, models, tmp_path, data["reference"])
    assert named in json.dumps(record["not_computed"]), record["not_computed"]
    decision = _gate(tmp_path)
    assert decision.failed == failing
    # An emptied column is measured, not missing: its null rate rose from 0 to 1.
    for check in decision.checks:
        if check.name == "null_rate_increase" and not check.passed:
            assert "0.000 -> 1.000" in check.reason and check.value == [named.split("'")[1] if "'" in named else named]
        elif not check.passed:
            assert check.reason.startswith("missing evidence"), check
    html = (tmp_path / "evaluation.html").read_text()
    assert "Not computed" in html and "Everything was computed" not in html


def test_a_report_from_an_earlier_try_never_survives(config: PipelineConfig, data: dict[str, pd.DataFrame],
                                                     models: dict[str, TrainedModel], tmp_path: Path) -> None:
    (tmp_path / "evaluation.json").write_text('{"drift": {"drift_share": 0.0}}')

    class Exploding:
        classes = (0, 1)

        def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
            raise MemoryError("out of memory while scoring")

    out = evaluate_candidate(config, data["holdout"], Exploding(), tmp_path)  # type: ignore[arg-type]
    record = json.loads(out["json"].read_text())
    assert record["drift"] is None and record["quality"]["candidate"] is None
    assert "MemoryError" in json.dumps(record["not_computed"])
    assert _gate(tmp_path, first_run=True).failed == ["accuracy", "fairness_gap"]
