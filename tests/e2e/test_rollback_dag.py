"""aire_rollback through Airflow (`airflow dags test`): one run, target `previous`.

Two champions are built in-process first (the clean batch, then a second clean batch);
the DAG run must verify v1, make it the champion with v2 as `previous`, and record the
rollback in the ledger under the DAG run's name. Refusals (unknown or tampered target)
are covered without Airflow in tests/integration/test_promotion.py.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator

import pytest

from aire.constants import CHAMPION, PREVIOUS
from aire.data.datasets import german_credit, make_batch
from aire.home import PROJECT_ROOT, Home
from aire.pipeline.home_setup import airflow_bin, airflow_env, prepare_home
from aire.pipeline.run_context import RunSpec
from aire.pipeline.runner import run_all
from aire.registry.mlflow_registry import Registry
from aire.trust.ledger import FileLedger
from tests.support.homes import isolated_home

pytestmark = pytest.mark.e2e

CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    with isolated_home(tmp_path_factory.mktemp("aire-home")):
        home = Home.from_env()
        prepare_home(home)
        yield home


def test_rollback_dag_restores_the_previous_champion(home: Home) -> None:
    assert run_all(RunSpec(str(CONFIG), str(home.data_dir / "batch_clean.csv"), "first"))["outcome"] == "promoted"
    second, _ = make_batch(german_credit(), n_rows=700, seed=3)
    second.to_csv(home.root / "second.csv", index=False)
    assert run_all(RunSpec(str(CONFIG), str(home.root / "second.csv"), "second"))["outcome"] == "promoted"

    conf = json.dumps({"config": str(CONFIG), "target": "previous", "reason": "drill"})
    done = subprocess.run([airflow_bin(), "dags", "test", "aire_rollback", "--conf", conf], env=airflow_env(home),
                          capture_output=True, text=True, timeout=600, check=False)
    with sqlite3.connect(home.airflow_home / "airflow.db") as db:
        run_id, state = db.execute("SELECT run_id, state FROM dag_run WHERE dag_id='aire_rollback'").fetchone()
    assert state == "success", f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert Registry(home.mlflow_tracking_uri).aliases("credit-risk") == {CHAMPION: 1, PREVIOUS: 2}
    entry = FileLedger(home.ledger_path).entries()[-1]
    assert entry.kind == "rollback" and (entry.entry["from_version"], entry.entry["to_version"]) == (2, 1)
    assert entry.entry["by"] == f"dag:aire_rollback run {run_id}" and entry.entry["reason"] == "drill"
    FileLedger(home.ledger_path).verify()
