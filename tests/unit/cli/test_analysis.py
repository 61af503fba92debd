"""`aire analyze-errors`: files written, exit status, champion or cross-fit, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from aire.cli.main import main
from aire.data.datasets import german_credit, make_batch
from aire.home import PROJECT_ROOT
from tests.support.homes import isolated_home

CONFIG = str(PROJECT_ROOT / "include" / "config" / "credit_risk.yaml")
FILES = {"error_analysis.csv", "review_queue.csv", "most_confident.csv", "summary.json",
         "report.html"}


@pytest.fixture(scope="module")
def noisy_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    batch, _ = make_batch(german_credit(), n_rows=300, seed=8, label_noise=0.1)
    path = tmp_path_factory.mktemp("data") / "noisy.csv"
    batch.to_csv(path, index=False)
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["analyze-errors", "--config", CONFIG, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cross_fit_writes_every_file_and_prints_the_summary(
        aire_home: Path, tmp_path: Path, noisy_csv: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--data", str(noisy_csv), "--out", str(tmp_path / "out"),
                         "--model", "none")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["model"] == "cross_fit:5:boosted_trees" and summary["source"] == summary["model"]
    assert summary["n_rows"] == 300 and summary["n_suspected"] > 0
    assert {Path(p).name for p in summary["files"].values()} == FILES
    assert {p.name for p in (tmp_path / "out").iterdir()} == FILES
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["estimated_noise_rate"] == summary["estimated_noise_rate"]
    assert "no champion" not in err  # --model none does not look for one


def test_no_champion_says_so_and_cross_fits(
        aire_home: Path, tmp_path: Path, noisy_csv: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--data", str(noisy_csv), "--out", f"file://{tmp_path}/out")
    assert code == 0, err
    assert "no champion registered for 'credit-risk': cross-fitting 5 folds instead" in err
    assert json.loads(out)["source"] == "cross_fit:5:boosted_trees"
    assert (tmp_path / "out" / "summary.json").is_file()


@pytest.mark.parametrize("rows, reason", [
    (lambda df: df[df["risk"] == 1].head(40), "single-class batch: every 'risk' value is"),
    (lambda df: df.head(4), "fewer rows (4) than cross-fitting folds (5)"),
])
def test_a_skip_exits_3_and_the_summary_says_why(
        aire_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: object,
        reason: str) -> None:
    data = tmp_path / "batch.csv"
    rows(german_credit()).to_csv(data, index=False)  # type: ignore[operator]
    code, out, err = run(capsys, "--data", str(data), "--out", str(tmp_path / "out"),
                         "--model", "none")
    assert code == 3 and "analysis skipped" in err and json.loads(out)["skipped"] is True
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["skipped"] is True and summary["estimated_noise_rate"] is None
    assert reason in summary["reason"]


def test_bad_input_exits_2_naming_the_problem(
        aire_home: Path, tmp_path: Path, noisy_csv: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    no_label = tmp_path / "no_label.csv"
    pd.read_csv(noisy_csv).drop(columns=["risk"]).to_csv(no_label, index=False)
    code, out, err = run(capsys, "--data", str(no_label), "--out", str(tmp_path / "o"),
                         "--model", "none")
    assert code == 2 and "column 'risk' breaks rule 'required label column'" in err and out == ""
    code, _, err = run(capsys, "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path))
    assert code == 2 and "breaks rule 'file exists'" in err
    code, _, err = run(capsys, "--data", str(noisy_csv), "--out", "ftp://host/x", "--model", "none")
    assert code == 2 and "unsupported storage URI" in err
    with pytest.raises(SystemExit) as usage:
        run(capsys, "--data", str(noisy_csv), "--out", str(tmp_path), "--model", "latest")
    assert usage.value.code == 2


# --- with a registered champion --------------------------------------------------------------


@pytest.fixture(scope="module")
def champion_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from aire.home import Home
    from aire.pipeline.home_setup import prepare_home
    from aire.pipeline.run_context import RunSpec
    from aire.pipeline.runner import run_all

    with isolated_home(tmp_path_factory.mktemp("champion-home")) as root:
        home = Home.from_env()
        prepare_home(home, migrate_airflow=False)
        outcome = run_all(RunSpec(CONFIG, str(home.data_dir / "batch_clean.csv"), "champion"))
        assert outcome["outcome"] == "promoted"
        yield root


def test_the_verified_champion_scores_the_batch(
        champion_home: Path, tmp_path: Path, noisy_csv: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AIRE_HOME", str(champion_home))
    code, out, err = run(capsys, "--data", str(noisy_csv), "--out", str(tmp_path / "out"))
    assert code == 0, err
    summary = json.loads(out)
    assert summary["source"].startswith("champion")  # blended with a short cross-fit
    assert summary["model"].startswith("champion v1 (")
    assert summary["n_rows"] == 300 and "cross-fitting" not in err


def test_a_label_the_champion_does_not_know_exits_2(
        champion_home: Path, tmp_path: Path, noisy_csv: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AIRE_HOME", str(champion_home))
    data = tmp_path / "new_class.csv"
    pd.read_csv(noisy_csv).assign(risk=lambda f: f["risk"].where(f.index > 2, 2)).to_csv(
        data, index=False)
    code, out, err = run(capsys, "--data", str(data), "--out", str(tmp_path / "out"))
    assert code == 2 and "column 'risk' breaks rule 'label in classes [0, 1]'" in err
    assert out == "" and not (tmp_path / "out").exists()


def test_a_tampered_champion_is_refused_not_replaced_by_cross_fitting(
        champion_home: Path, tmp_path: Path, noisy_csv: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AIRE_HOME", str(champion_home))
    weights = next((champion_home / "mlflow").rglob("weights.safetensors"))
    original = weights.read_bytes()
    try:
        weights.write_bytes(original[:-4] + b"\x00\x00\x00\x01")
        code, out, err = run(capsys, "--data", str(noisy_csv), "--out", str(tmp_path / "out"))
    finally:
        weights.write_bytes(original)
    assert code == 2 and "version 1" in err and out == ""
    assert not (tmp_path / "out").exists()


def test_the_installed_command_keeps_the_exit_status(tmp_path: Path) -> None:
    data = tmp_path / "tiny.csv"
    german_credit().head(4).to_csv(data, index=False)
    env = {**os.environ, "AIRE_HOME": str(tmp_path / "home")}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [str(Path(sys.executable).with_name("aire")), "analyze-errors", "--config", CONFIG,
         "--data", str(data), "--out", str(tmp_path / "out"), "--model", "none"],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 3, done.stderr
    assert json.loads(done.stdout)["skipped"] is True
