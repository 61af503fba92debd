"""Incidents through real Airflow: retries, final failures, a SIGKILLed task, and the sweep.

One run of a tiny DAG (written to a temporary folder) under the LocalExecutor, so each
task runs in a process of its own under Airflow's supervisor, as on a real worker:

- ``flaky`` fails its first try and succeeds on the retry: no incident;
- ``broken`` fails both tries: the failure callback opens exactly one incident (try 2);
- ``oom`` SIGKILLs itself, as the out-of-memory killer would: the supervisor marks it
  FAILED but no callback runs, so no incident, until the aire_incident_sweep DAG (one
  ``dag.test`` run of the real DAG file) opens one.

``dag.test(use_executor=True)`` needs an execution API server for the LocalExecutor's
workers; the runner serves Airflow's own in-process execution API app (the one
``dag.test`` uses without an executor) on a loopback port instead of a full API server.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aire.home import PROJECT_ROOT, Home
from aire.incidents.store import IncidentStore, dedup_key
from aire.incidents.sweep import failed_task_instances, sweep_failures
from aire.pipeline.home_setup import airflow_env, migrate_airflow_db
from tests.support.homes import isolated_home

pytestmark = pytest.mark.e2e

CONFIG = str(PROJECT_ROOT / "include" / "config" / "credit_risk.yaml")

KILLTEST_DAG = '''
import os
import signal
from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task

from aire_airflow.callbacks import on_task_failure


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
     tags=["aire", "test"], params={"config": "CONFIG"},
     default_args={"retries": 1, "retry_delay": timedelta(0), "on_failure_callback": on_task_failure})
def aire_killtest():
    @task(retries=0)  # a killed try with retries left stays RUNNING until the scheduler's
    def oom():        # heartbeat check; the last try is marked FAILED by the supervisor at once
        os.kill(os.getpid(), signal.SIGKILL)

    @task(retries=2)
    def flaky():
        if get_current_context()["ti"].try_number == 1:
            raise ConnectionError("transient: the feature store timed out")

    @task
    def broken():
        raise ValueError("always: a bug")

    oom()
    flaky()
    broken()


aire_killtest()
'''.replace('"CONFIG"', repr(CONFIG))

# Serves the execution API on loopback, then runs the DAG with the LocalExecutor.
RUN_WITH_EXECUTOR = textwrap.dedent('''
    import os, socket, sys, threading, time
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"http://127.0.0.1:{port}/"
    import uvicorn
    from airflow.api_fastapi.execution_api.app import InProcessExecutionAPI
    from airflow.dag_processing.dagbag import DagBag
    server = uvicorn.Server(uvicorn.Config(InProcessExecutionAPI().app, host="127.0.0.1",
                                           port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    try:
        run = DagBag(dag_folder=sys.argv[1]).dags[sys.argv[2]].test(
            use_executor=True, run_conf={"config": sys.argv[3]})
        print("STATE", run.state, flush=True)
    except BaseException:
        import traceback
        traceback.print_exc()
        print("STATE crashed", flush=True)
    sys.stderr.flush()
    os._exit(0)  # a crashed executor loop can leave workers that would block a normal exit
''')

RUN_IN_PROCESS = textwrap.dedent('''
    import json, sys
    from airflow.dag_processing.dagbag import DagBag
    run = DagBag(dag_folder=sys.argv[1]).dags[sys.argv[2]].test(run_conf=json.loads(sys.argv[3]))
    print("STATE", run.state)
''')


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    with isolated_home(tmp_path_factory.mktemp("aire-home")):
        home = Home.from_env().ensure()
        migrate_airflow_db(home)
        yield home


def _airflow(home: Home, script: str, dags: Path, *args: str, executor: bool = False) -> str:
    env = {**airflow_env(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags)}
    if executor:
        # One task at a time: fewer writers at once on the SQLite metadata DB.
        env.update({"AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": "1"})
    try:
        done = subprocess.run([sys.executable, "-c", script, str(dags), *args], env=env,
                              capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired as stuck:
        pytest.fail(f"{args[0]} did not finish in 300 s:\n{_text(stuck.stdout)[-3000:]}\n"
                    f"{_text(stuck.stderr)[-5000:]}")
    assert "STATE" in done.stdout, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    state = done.stdout.rsplit("STATE", 1)[1].strip()
    assert state != "crashed", done.stderr[-5000:]
    return state


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def _tasks(home: Home, dag_id: str) -> dict[str, tuple[str, int]]:
    with sqlite3.connect(home.airflow_home / "airflow.db") as db:
        rows = db.execute("SELECT task_id, state, try_number FROM task_instance WHERE dag_id = ?",
                          (dag_id,)).fetchall()
    return {task: (state, tries) for task, state, tries in rows}


@pytest.fixture(scope="module")
def killtest(home: Home, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, int]]:
    dags = tmp_path_factory.mktemp("dags")
    (dags / "aire_killtest.py").write_text(KILLTEST_DAG)
    assert _airflow(home, RUN_WITH_EXECUTOR, dags, "aire_killtest", CONFIG, executor=True) == "failed"
    return _tasks(home, "aire_killtest")


def _incidents(home: Home) -> dict[str, list]:
    with IncidentStore(home.incidents_db_url) as store:
        found = [i for i in store.list() if i.source.dag_id == "aire_killtest"]
    return {task: [i for i in found if i.source.task_id == task] for task in ("oom", "flaky", "broken")}


def test_callbacks_open_one_incident_per_final_failure_only(home: Home, killtest: dict) -> None:
    assert killtest == {"oom": ("failed", 1), "flaky": ("success", 2), "broken": ("failed", 2)}
    found = _incidents(home)
    assert found["flaky"] == []  # its failed first try had a retry left
    [broken] = found["broken"]
    assert broken.source.kind == "task_failure" and broken.source.try_number == 2
    assert broken.count == 1 and broken.evidence["exception"]["message"] == "always: a bug"
    assert found["oom"] == []  # SIGKILL: the process died before any callback could run


def test_the_sweep_dag_opens_the_killed_task_and_nothing_else(home: Home, killtest: dict) -> None:
    conf = {"dag_id_prefix": "aire_killtest", "grace_minutes": 0, "configs": [CONFIG]}
    state = _airflow(home, RUN_IN_PROCESS, PROJECT_ROOT / "dags", "aire_incident_sweep",
                     json.dumps(conf))
    assert state == "success", _tasks(home, "aire_incident_sweep")
    found = _incidents(home)
    [oom] = found["oom"]
    assert oom.source.kind == "incident_sweep" and oom.source.try_number == 1
    assert oom.dedup_key == dedup_key("aire_killtest", oom.source.run_id, "oom", 1)
    assert oom.pipeline == "credit-risk" and Path(str(oom.postmortem)).is_file()
    assert "/dags/aire_killtest/runs/" in oom.evidence["log_url"]
    assert [i.count for i in found["broken"]] == [1] and found["flaky"] == []
    # Sweeping again, straight through the library, finds both failures recorded.
    failed = failed_task_instances(home.airflow_db_url, since=oom.first_seen.replace(year=2020),
                                   until=oom.first_seen.replace(year=2100),
                                   dag_id_prefix="aire_killtest")
    assert sorted(ti.task_id for ti in failed) == ["broken", "oom"]
    again = sweep_failures(failed, default_config=CONFIG)
    assert (again.already_recorded, again.opened) == (2, ())
