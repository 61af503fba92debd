"""Every DAG parses, is tagged, retries, reports failures, and keeps parsing light."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aire.pipeline.stage_registry import AWAIT_APPROVAL, OUTCOMES, PIPELINE

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "pandas", "great_expectations", "evidently", "mlflow", "sklearn", "fairlearn")

# Parsing runs in a fresh interpreter: this test process may already hold heavy modules
# that other tests imported, which would hide a DAG importing them at module level.
PARSE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dags = {}
for dag_id, dag in bag.dags.items():
    dags[dag_id] = {
        "file": dag.fileloc, "tags": sorted(dag.tags),
        "tasks": {t.task_id: {"retries": t.retries, "upstream": sorted(t.upstream_task_ids),
                              "retry_policy": type(getattr(t, "retry_policy", None)).__name__,
                              "on_failure_callback": bool(t.on_failure_callback)} for t in dag.tasks},
    }
heavy = [m for m in json.loads(sys.argv[2]) if m in sys.modules]
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": dags, "heavy": heavy}))
"""


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("home")
    env = {**os.environ, "AIRE_HOME": str(home), "AIRFLOW_HOME": str(home / "airflow"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", PARSE, str(ROOT / "dags"), json.dumps(HEAVY)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_dag_file_parses_without_import_errors(parsed: dict) -> None:
    assert parsed["errors"] == {}
    files = {Path(d["file"]).name for d in parsed["dags"].values()}
    assert files == {p.name for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_")}


def test_dag_ids_match_file_names(parsed: dict) -> None:
    for dag_id, dag in parsed["dags"].items():
        assert Path(dag["file"]).stem == dag_id


def test_retraining_dag_runs_the_stage_registry(parsed: dict) -> None:
    """The DAG's tasks are the registry's stages (plus the approval task), wired as it says."""
    tasks = parsed["dags"]["aire_retrain"]["tasks"]
    assert set(tasks) == {entry.name for entry in (*PIPELINE, *OUTCOMES)} | {AWAIT_APPROVAL}
    for entry in PIPELINE:
        assert tasks[entry.name]["upstream"] == sorted({*entry.needs, *entry.after}), entry.name


@pytest.mark.parametrize("rule", ["tags", "retries", "retry_policy", "failure_callback"])
def test_every_dag_follows_the_house_rules(parsed: dict, rule: str) -> None:
    for dag_id, dag in parsed["dags"].items():
        if rule == "tags":
            assert dag["tags"], f"{dag_id} has no tags"
        for task_id, task in dag["tasks"].items():
            if rule == "retries":
                assert task["retries"] >= 2, f"{dag_id}.{task_id} retries {task['retries']}"
            if rule == "retry_policy":  # an InputError fails at once: a retry cannot fix bad input
                assert task["retry_policy"] == "ExceptionRetryPolicy", f"{dag_id}.{task_id} retries bad input"
            if rule == "failure_callback":
                assert task["on_failure_callback"], f"{dag_id}.{task_id} has no failure callback"


def test_parsing_imports_no_heavy_library(parsed: dict) -> None:
    assert parsed["heavy"] == []
