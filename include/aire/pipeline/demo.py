"""`make demo`: two real runs of aire_retrain through Airflow on the embedded home.

Run 1 takes the clean example batch and must promote a champion. Run 2 takes the
corrupted batch and must be rejected, open an incident with a postmortem stub, and leave
the champion as it was. The demo checks that story and prints where everything is.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aire.config import load_config
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
    first = _dags_test(home, config, clean, "clean")
    after_first = pipeline_status(config, home)
    second = _dags_test(home, config, corrupt, "corrupt")
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


def _dags_test(home: Home, config: Path, batch: Path, label: str) -> DemoRun:
    log_path = home.root / "logs" / f"demo-{label}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    conf = json.dumps({"config": str(config), "batch": str(batch)})
    print(f"== aire_retrain on the {label} batch ({batch.name}); log: {log_path}", flush=True)
    started = time.monotonic()
    with open(log_path, "w") as log:
        subprocess.run([airflow_bin(), "dags", "test", "aire_retrain", "--conf", conf], env=airflow_env(home),
                       stdout=log, stderr=subprocess.STDOUT, check=False)
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
    print("==================================================")
