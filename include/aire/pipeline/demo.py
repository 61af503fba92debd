"""`make demo`: two real runs of aire_retrain through Airflow on the embedded home.

Run 1 takes the clean example batch and must promote a champion. Run 2 takes the
corrupted batch and must be rejected, open an incident with a postmortem stub, and leave
the champion as it was. The demo checks that story and prints where everything is.

Each run is ``airflow dags test --use-executor``: the tasks go to a LocalExecutor, whose worker
runs each one under Airflow's task supervisor, as a scheduler's would. The supervisor writes the
task log where the api-server's log endpoint reads it (``<AIRFLOW_HOME>/logs/dag_id=…/run_id=…/
task_id=…/attempt=N.log``), so the demo's runs show their logs in the Airflow UI like any other
(the gate's log carries its decision table). A plain ``dags test`` runs the tasks inside its own
process and leaves no such file. The supervisor talks to Airflow's Execution API, so the demo
starts one (``airflow api-server --apps execution``) on a free loopback port for its runs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aire.config import load_config
from aire.errors import AireError
from aire.home import Home
from aire.incidents.store import IncidentStore
from aire.pipeline.home_setup import airflow_bin, airflow_env
from aire.pipeline.status import pipeline_status


@dataclass(frozen=True)
class DemoRun:
    batch: Path
    run_id: str
    state: str
    seconds: float
    task_seconds: dict[str, float]
    log: Path


def run_demo(home: Home, config: Path) -> int:
    home.ensure()
    name = load_config(config).name
    clean, corrupt = home.data_dir / "batch_clean.csv", home.data_dir / "batch_corrupt.csv"
    with execution_api(home) as api:
        first = _dags_test(home, config, clean, "clean", api)
        after_first = pipeline_status(config, home)
        second = _dags_test(home, config, corrupt, "corrupt", api)
    after_second = pipeline_status(config, home)

    incidents = [i for i in IncidentStore(home.incidents_db_url).list(pipeline=name)
                 if i.source.run_id == second.run_id]
    problems = []
    if not after_first["champion"] or not after_first["champion"]["verified"]:
        problems.append(f"run 1 on the clean batch did not leave a verified champion: {after_first}")
    if after_second["champion"] != after_first["champion"]:
        problems.append("run 2 on the corrupted batch changed the champion")
    if not incidents:
        problems.append("run 2 on the corrupted batch opened no incident")

    _summary(home, name, after_second, first, second, incidents)
    for problem in problems:
        print(f"DEMO FAILED: {problem}")
    return 1 if problems else 0


# What every task imports (the stages pull in MLflow and pandas; three stages torch), imported
# once by the `dags test` process: the LocalExecutor forks its workers from it (fork is the
# start method on Linux up to Python 3.13) and each task process is forked from a worker, so no
# task imports them again (about 2 s a task, 5 s more for torch, on the demo's machine). A
# plain `dags test` imports them once per run too.
PRELOAD = ("aire.pipeline.stages", "torch")


def executor_env(home: Home, api_url: str) -> dict[str, str]:
    """The environment of a demo run: the home's, a LocalExecutor, and the demo's Execution API."""
    return {**airflow_env(home), "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": api_url,
            # A forking LocalExecutor starts `parallelism` workers at once; the demo's DAG runs at
            # most two tasks at a time (Airflow's default is 32).
            "AIRFLOW__CORE__PARALLELISM": "4"}


def dags_test_command(config: Path, batch: Path) -> list[str]:
    """``airflow dags test --use-executor`` in a Python that has imported ``PRELOAD`` first."""
    conf = json.dumps({"config": str(config), "batch": str(batch)})
    airflow = f"import sys, {', '.join(PRELOAD)}; from airflow.__main__ import main; sys.exit(main())"
    return [sys.executable, "-c", airflow, "dags", "test", "aire_retrain", "--conf", conf, "--use-executor"]


def _api_server(port: int) -> list[str]:
    return [airflow_bin(), "api-server", "--apps", "execution", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1"]


@dataclass
class ExecutionApi:
    """A started Execution API server: its URL, and a wait until it answers."""

    url: str
    server: subprocess.Popen[bytes]
    log: Path
    timeout: float
    answered: bool = False

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while not self.answered:
            self.answered = _answers(f"{self.url}health")
            if self.answered:
                return
            if self.server.poll() is not None:
                raise AireError(f"airflow's execution API exited ({self.server.returncode}) before it answered; "
                                f"see {self.log}")
            if time.monotonic() > deadline:
                raise AireError(f"airflow's execution API did not answer {self.url}health within "
                                f"{self.timeout:.0f}s; see {self.log}")
            time.sleep(0.2)


@contextmanager
def execution_api(home: Home, *, timeout: float = 180.0,
                  command: Callable[[int], list[str]] = _api_server) -> Iterator[ExecutionApi]:
    """Airflow's Execution API on a free loopback port until exit, started but not waited for.

    Its output goes to ``<home>/logs/demo-execution-api.log``. ``command`` makes the server's
    command line for a port (tests start other servers). The server runs in a process group
    of its own and is stopped with it, workers included.
    """
    port = _free_port()
    log_path = home.root / "logs" / "demo-execution-api.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        server = subprocess.Popen(command(port), env=airflow_env(home), stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield ExecutionApi(f"http://127.0.0.1:{port}/execution/", server, log_path, timeout)
    finally:
        _stop(server)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return bool(response.status == 200)
    except OSError:
        return False  # not listening yet, or not healthy


def _stop(process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM to the process's group, then SIGKILL to whatever of it is left."""
    _signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(process.pid, signal.SIGKILL)
    process.wait(10)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass  # nothing of the group is left


def _dags_test(home: Home, config: Path, batch: Path, label: str, api: ExecutionApi) -> DemoRun:
    log_path = home.root / "logs" / f"demo-{label}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"== aire_retrain on the {label} batch ({batch.name}); log: {log_path}", flush=True)
    started = time.monotonic()
    with open(log_path, "w") as log:
        run = subprocess.Popen(dags_test_command(config, batch), env=executor_env(home, api.url), stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        # The run needs the API once its first task starts, which takes `dags test` longer than
        # the server takes to answer, so the first run and the server start together (a task
        # that comes early retries its connection).
        api.wait_ready()
        run.wait()
    finally:
        _stop(run)  # at once if it ended; else the API failed or we were interrupted
    seconds = time.monotonic() - started
    run_id, state, tasks = _last_run(home)
    print(f"   run {run_id}: {state} in {seconds:.1f}s", flush=True)
    return DemoRun(batch, run_id, state, seconds, tasks, log_path)


def _last_run(home: Home) -> tuple[str, str, dict[str, float]]:
    """The newest aire_retrain run in the embedded Airflow DB, with each task's duration."""
    with sqlite3.connect(home.airflow_home / "airflow.db") as db:
        run_id, state = db.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = 'aire_retrain' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        rows = db.execute(
            "SELECT task_id, state, duration FROM task_instance WHERE dag_id = 'aire_retrain' AND run_id = ? "
            "ORDER BY start_date IS NULL, start_date", (run_id,),
        ).fetchall()
    return run_id, state, {f"{task} ({task_state})": round(duration or 0.0, 1) for task, task_state, duration in rows}


def _summary(home: Home, name: str, status: dict[str, Any], first: DemoRun, second: DemoRun,
             incidents: list[Any]) -> None:
    champion = status["champion"] or {}
    print("\n================ AIRE demo summary ================")
    print(f"model            {name}")
    print(f"champion         version {champion.get('version')}  verified={champion.get('verified')}")
    print(f"champion digest  {champion.get('digest')}")
    print(f"open incidents   {status['incidents']['open']}")
    for label, run in (("run 1 (clean)", first), ("run 2 (corrupt)", second)):
        print(f"{label:16} {run.state} in {run.seconds:.1f}s  reports: {home.run_dir(name, run.run_id)}")
        for task, seconds in run.task_seconds.items():  # in the order they ran
            print(f"    {task:32} {seconds:6.1f}s")
    for incident in incidents:
        print(f"incident #{incident.id}      {incident.title}")
        print(f"postmortem       {incident.postmortem}")
    print(f"MLflow           {home.mlflow_tracking_uri}")
    print(f"task logs        {home.airflow_home / 'logs'} (the Airflow UI shows them: docs/ui.md)")
    print("==================================================")
