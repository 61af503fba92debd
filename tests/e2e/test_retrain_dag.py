"""aire_retrain through Airflow (`airflow dags test`) on a fresh embedded home.

One home for the module, the story of `make demo` in order: a clean batch becomes the
champion; a corrupted batch is rejected with one incident and the champion unchanged; a
batch that breaks a rule stops at validation with one incident; clearing and re-running
the first run's tasks registers no second model version.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from aire.home import PROJECT_ROOT, Home
from aire.incidents.store import IncidentStore
from aire.pipeline.home_setup import airflow_bin, airflow_env, prepare_home
from aire.pipeline.status import pipeline_status
from aire.registry.mlflow_registry import Registry
from tests.support.homes import isolated_home

pytestmark = pytest.mark.e2e

CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"
FIRST_DATE = "2026-03-01T00:00:00+00:00"  # run_after of the first run, fixed


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    with isolated_home(tmp_path_factory.mktemp("aire-home")):
        home = Home.from_env()
        prepare_home(home)
        yield home


# `airflow dags test` names each run after the current time. Passing run_after to
# DAG.test pins the run id, so a second call clears and re-runs the same run's tasks.
RUN_PINNED = """
import json, sys
from datetime import datetime
from airflow.dag_processing.dagbag import DagBag
when = datetime.fromisoformat(sys.argv[2])
DagBag(dag_folder=sys.argv[1]).dags["aire_retrain"].test(run_after=when, logical_date=when,
                                                          run_conf=json.loads(sys.argv[3]))
"""


def dags_test(home: Home, batch: Path, run_after: str | None = None) -> tuple[str, str, dict[str, str]]:
    """Run aire_retrain once through Airflow; the run's id, state and each task's state."""
    conf = json.dumps({"config": str(CONFIG), "batch": str(batch)})
    if run_after:
        command = [sys.executable, "-c", RUN_PINNED, str(PROJECT_ROOT / "dags"), run_after, conf]
    else:
        command = [airflow_bin(), "dags", "test", "aire_retrain", "--conf", conf]
    done = subprocess.run(command, env=airflow_env(home), capture_output=True, text=True, timeout=900)
    with sqlite3.connect(home.airflow_home / "airflow.db") as db:
        run_id, state = db.execute("SELECT run_id, state FROM dag_run WHERE dag_id='aire_retrain' "
                                   "ORDER BY last_scheduling_decision DESC, id DESC LIMIT 1").fetchone()
        tasks = dict(db.execute("SELECT task_id, state FROM task_instance WHERE dag_id='aire_retrain' "
                                "AND run_id=?", (run_id,)).fetchall())
    assert tasks, f"no task ran:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return run_id, state, tasks


@pytest.fixture(scope="module")
def first_run(home: Home) -> dict:
    run_id, state, tasks = dags_test(home, home.data_dir / "batch_clean.csv", FIRST_DATE)
    return {"run_id": run_id, "state": state, "tasks": tasks, "status": pipeline_status(CONFIG, home)}


def test_clean_batch_becomes_a_verified_champion(home: Home, first_run: dict) -> None:
    assert first_run["tasks"]["promote"] == "success" and first_run["tasks"]["reject"] == "skipped"
    champion = first_run["status"]["champion"]
    assert champion["version"] == 1 and champion["verified"] is True
    assert len(champion["digest"]) == 64
    run_dir = home.run_dir("credit-risk", first_run["run_id"])
    for report in ("validation/validation.json", "analysis/error_analysis.csv", "analysis/summary.json",
                   "evaluation/evaluation.html", "decision.json", "model/weights.safetensors", "model.sig"):
        assert (run_dir / report).is_file(), report
    # The CLI reports the same champion, in the documented shape.
    out = subprocess.run([str(Path(sys.executable).with_name("aire")), "status", "--json"],
                         env=airflow_env(home), capture_output=True, text=True, check=True)
    status = json.loads(out.stdout)
    assert status["champion"]["version"] == 1 and status["champion"]["verified"] is True
    assert set(status) == {"model", "champion", "incidents", "using"}
    assert status["using"]["home"] == str(home.root)  # where every store comes from (aire env)
    assert set(status["champion"]) == {"version", "digest", "verified"} and status["incidents"]["open"] == 0


def test_corrupted_batch_is_rejected_with_one_incident(home: Home, first_run: dict) -> None:
    run_id, _, tasks = dags_test(home, home.data_dir / "batch_corrupt.csv")
    assert tasks["gate"] == "success" and tasks["reject"] == "success" and tasks["promote"] == "skipped"
    decision = json.loads((home.run_dir("credit-risk", run_id) / "decision.json").read_text())
    failed = {check["name"] for check in decision["checks"] if not check["passed"]}
    assert "drift_share" in failed and decision["promote"] is False
    assert pipeline_status(CONFIG, home)["champion"] == first_run["status"]["champion"]
    incidents = [i for i in IncidentStore(home.incidents_db_url).list() if i.source.run_id == run_id]
    assert len(incidents) == 1 and incidents[0].source.kind == "gate_rejection"
    postmortem = Path(incidents[0].postmortem)
    assert postmortem.is_file() and "drift_share" in postmortem.read_text()


def test_batch_breaking_a_rule_stops_at_validation(home: Home, first_run: dict, tmp_path: Path) -> None:
    broken = pd.read_csv(home.data_dir / "batch_clean.csv").drop(columns=["housing"])
    path = tmp_path / "missing_column.csv"
    broken.to_csv(path, index=False)
    run_id, state, tasks = dags_test(home, path)
    assert state == "failed" and tasks["validate_data"] == "failed"
    assert tasks["fine_tune"] == "upstream_failed" and tasks["promote"] == "upstream_failed"
    incidents = [i for i in IncidentStore(home.incidents_db_url).list() if i.source.run_id == run_id]
    assert len(incidents) == 1, "one incident per final failure, none for retries"
    incident = incidents[0]
    assert incident.source.kind == "validation_failure" and incident.count == 1
    assert "housing" in json.dumps(incident.evidence) and Path(incident.postmortem).is_file()
    assert pipeline_status(CONFIG, home)["champion"] == first_run["status"]["champion"]


def test_rerunning_a_finished_run_registers_no_second_version(home: Home, first_run: dict) -> None:
    run_dir = home.run_dir("credit-risk", first_run["run_id"])
    first_decision = (run_dir / "decision.json").stat().st_mtime_ns
    run_id, _, tasks = dags_test(home, home.data_dir / "batch_clean.csv", FIRST_DATE)
    assert run_id == first_run["run_id"], "the same run, cleared and run again"
    assert (run_dir / "decision.json").stat().st_mtime_ns > first_decision, "its tasks really ran again"
    assert tasks["promote"] == "success"
    versions = Registry(home.mlflow_tracking_uri).versions("credit-risk")
    assert [v.version for v in versions] == [1]
    # It retrained from the same pinned start, so it reproduced the registered model exactly.
    assert json.loads((run_dir / "signing.json").read_text())["digest"] == versions[0].signed_digest
    assert pipeline_status(CONFIG, home)["champion"] == first_run["status"]["champion"]
