"""aire_score through Airflow (`airflow dags test`) on the embedded home.

Two champions are built in-process first; one DAG run must score a batch with the verified
champion and write the output and its summary; with the champion's weights tampered, a
second run falls back to the previous version and opens one incident.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from aire.data.datasets import german_credit, make_batch
from aire.home import PROJECT_ROOT, Home
from aire.incidents.store import IncidentStore
from aire.pipeline.home_setup import airflow_bin, airflow_env, prepare_home
from aire.pipeline.run_context import RunSpec
from aire.pipeline.runner import run_all
from aire.registry.mlflow_registry import Registry
from tests.support.homes import isolated_home

pytestmark = pytest.mark.e2e

CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    with isolated_home(tmp_path_factory.mktemp("aire-home")):
        home = Home.from_env()
        prepare_home(home)
        promoted = 0
        for seed in range(1, 7):
            batch, _ = make_batch(german_credit(), n_rows=700, seed=seed)
            batch.to_csv(home.root / f"train-{seed}.csv", index=False)
            promoted += run_all(RunSpec(str(CONFIG), str(home.root / f"train-{seed}.csv"),
                                        f"train-{seed}"))["outcome"] == "promoted"
            if promoted == 2:
                break
        assert promoted == 2
        yield home


def score_run(home: Home, batch: Path, out: Path, batch_id: str) -> tuple[str, str]:
    conf = json.dumps({"config": str(CONFIG), "batch": str(batch), "out": str(out), "batch_id": batch_id})
    done = subprocess.run([airflow_bin(), "dags", "test", "aire_score", "--conf", conf], env=airflow_env(home),
                          capture_output=True, text=True, timeout=600, check=False)
    with sqlite3.connect(home.airflow_home / "airflow.db") as db:
        state = db.execute("SELECT state FROM dag_run WHERE dag_id='aire_score' ORDER BY id DESC").fetchone()[0]
    return state, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def test_aire_score_scores_with_the_champion_then_falls_back_when_it_is_tampered(home: Home) -> None:
    batch, _ = make_batch(german_credit(), n_rows=300, seed=21)
    batch.to_csv(home.root / "to-score.csv", index=False)
    registry = Registry(home.mlflow_tracking_uri)
    champion, previous = registry.champion("credit-risk"), registry.by_alias("credit-risk", "previous")
    assert champion is not None and previous is not None

    state, log = score_run(home, home.root / "to-score.csv", home.root / "out" / "first.parquet", "first")
    assert state == "success", log
    scored = pd.read_parquet(home.root / "out" / "first.parquet")
    assert len(scored) == 300 and set(scored["model_version"]) == {champion.version}
    summary = json.loads((home.root / "out" / "first.summary.json").read_text())
    assert summary["served_by"]["source"] == "champion" and summary["by"].startswith("dag:aire_score run ")

    weights = next((home.mlflow_dir / "artifacts").rglob(f"{champion.signed_digest}/model/weights.safetensors"))
    original = weights.read_bytes()
    try:
        weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        state, log = score_run(home, home.root / "to-score.csv", home.root / "out" / "second.parquet", "second")
    finally:
        weights.write_bytes(original)
    assert state == "success", log
    scored = pd.read_parquet(home.root / "out" / "second.parquet")
    assert set(scored["model_version"]) == {previous.version}
    fallbacks = [i for i in IncidentStore(home.incidents_db_url).list() if i.source.kind == "scoring_fallback"]
    assert len(fallbacks) == 1 and "weights.safetensors" in json.dumps(fallbacks[0].evidence)


def test_aire_demo_score_shows_odd_and_shadow_and_the_monitor_opens_an_incident(home: Home) -> None:
    from aire.scoring.demo import run_score_demo

    lines: list[str] = []
    assert run_score_demo(home, CONFIG, say=lines.append) == 0
    text = "\n".join(lines)
    assert "out (known category, column purpose)" in text and "out (finite number, column age)" in text
    assert "shadow challenger v" in text and "agreement" in text
    assert "breached" in text and "incident" in text
    assert "challenger" not in Registry(home.mlflow_tracking_uri).aliases("credit-risk")  # the stand-in is gone


def test_a_refused_batch_fails_the_task_with_one_incident_and_nothing_written(home: Home) -> None:
    batch, _ = make_batch(german_credit(), n_rows=50, seed=22)
    batch.drop(columns=["duration"]).to_csv(home.root / "no-duration.csv", index=False)
    before = {i.id for i in IncidentStore(home.incidents_db_url).list()}
    state, log = score_run(home, home.root / "no-duration.csv", home.root / "out" / "refused.parquet", "refused")
    assert state == "failed", log
    assert not (home.root / "out" / "refused.parquet").exists()
    new = [i for i in IncidentStore(home.incidents_db_url).list() if i.id not in before]
    assert len(new) == 1, [i.title for i in new]  # the refusal and the task's failure are one incident
    assert "column 'duration' breaks rule 'column exists'" in new[0].title
