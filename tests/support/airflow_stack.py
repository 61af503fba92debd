"""A real Airflow 3 deployment on loopback: api-server, scheduler, dag-processor (and Celery
workers), on a PostgreSQL metadata database, running this repository's dags/.

``migrated_template`` runs ``airflow db migrate`` once per session into a template
database; each stack clones it (``CREATE DATABASE ... TEMPLATE``), which takes a second
where a migration takes a minute.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from tests.support.servers import BIN, ROOT, Databases, Process, free_port, http_ok, wait_until

# Schedules that must not fire during a test. With catchup=False a cron DAG runs its latest
# past tick at once if that tick is after its start_date (2026-01-01): a leap day's last
# tick (2024) is not, its next (2028) is far enough.
FAR_FUTURE_CRON = "0 0 29 2 *"
FINISHED = ("success", "failed")


def base_env(home: Path, db_url: str, token: str) -> dict[str, str]:
    from cryptography.fernet import Fernet

    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRE_HOME": str(home), "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        # Airflow would derive postgresql+asyncpg:// for its async engine; psycopg 3 does both.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": db_url,
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRE_TEST_STACK": token,
        "GX_ANALYTICS_ENABLED": "false", "MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK": "true",
    }


def migrate(env: dict[str, str]) -> None:
    done = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True, check=False,
                          timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


@dataclass(frozen=True)
class TaskTry:
    task_id: str
    state: str | None
    try_number: int
    queue: str
    start_date: Any
    end_date: Any

    def to_dict(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "state": self.state, "try_number": self.try_number,
                "queue": self.queue, "start": str(self.start_date), "end": str(self.end_date)}


class AirflowStack:
    """The components of one deployment, sharing a home, a metadata DB and a JWT secret."""

    def __init__(self, home: Path, dbs: Databases, template: str, log_dir: Path, token: str,
                 executor: str = "LocalExecutor", env: dict[str, str] | None = None) -> None:
        self.home, self.log_dir, self.token, self.executor = home, log_dir, token, executor
        self.db = dbs.create(f"airflow_{secrets.token_hex(3)}", template=template)
        self.db_url = dbs.url(self.db)
        self.api_port = free_port()
        self.env = {
            **base_env(home, self.db_url, token),
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRE_RETRAIN_CRON": FAR_FUTURE_CRON, "AIRE_LANDING_POLL": FAR_FUTURE_CRON,
            **(env or {}),
        }
        self.processes: list[Process] = []

    # --- lifecycle --------------------------------------------------------------------
    def start(self, workers: dict[str, str] | None = None,
              worker_env: dict[str, dict[str, str]] | None = None) -> AirflowStack:
        """api-server, scheduler, dag-processor; ``workers`` maps a name to the queues it serves,
        ``worker_env`` a name to what its environment adds (its own ``AIRE_HOME``: another host).

        Each is restarted when it exits, as the compose file's ``restart: always`` does:
        a fault test proves what the deployment survives, not what one process does.
        """
        airflow = str(BIN / "airflow")
        self.processes.append(Process("api-server", [airflow, "api-server"], self.env, self.log_dir, self.token,
                                      restart=True))
        wait_until(lambda: http_ok(f"http://127.0.0.1:{self.api_port}/api/v2/version"), 120, "the api-server",
                   self.processes, 1.0)
        for name in ("scheduler", "dag-processor"):
            self.processes.append(Process(name, [airflow, name], self.env, self.log_dir, self.token, restart=True))
        for name, queues in (workers or {}).items():
            env = {**self.env, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                   **(worker_env or {}).get(name, {})}
            self.processes.append(Process(name, [airflow, "celery", "worker", "--queues", queues,
                                                 "--concurrency", "1", "--celery-hostname", f"{name}@%h",
                                                 "--without-gossip", "--without-mingle"],
                                          env, self.log_dir, self.token, restart=True))
        return self

    def restarts(self) -> dict[str, int]:
        """How many times the supervisor restarted each component that exited."""
        return {p.name: len(p.restarts) for p in self.processes if p.restarts}

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def process(self, name: str) -> Process:
        return next(p for p in self.processes if p.name == name)

    # --- the metadata DB, read directly ------------------------------------------------
    def query(self, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_url.replace("+psycopg", ""), autocommit=True) as conn:
            return list(conn.execute(statement, args).fetchall())

    def wait_parsed(self, *dag_ids: str, timeout: float = 180) -> None:
        def parsed() -> bool:
            rows = self.query("SELECT dag_id FROM serialized_dag")
            return set(dag_ids) <= {row[0] for row in rows}

        wait_until(parsed, timeout, f"the dag-processor to parse {dag_ids}", self.processes, 1.0)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, run_id: str | None = None) -> str:
        run_id = run_id or f"test__{dag_id}__{secrets.token_hex(4)}"
        command = [str(BIN / "airflow"), "dags", "trigger", dag_id, "--run-id", run_id,
                   "--conf", json.dumps(conf or {})]
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"trigger {dag_id} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        return run_id

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", dag_id, run_id)
        return rows[0][0] if rows else None

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        return wait_until(lambda: (self.run_state(dag_id, run_id) or "") if self.run_state(dag_id, run_id)
                          in FINISHED else None, timeout, f"{dag_id} run {run_id}", self.processes, 2.0)

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        rows = self.query("SELECT run_id, run_type, state, start_date, end_date FROM dag_run "
                          "WHERE dag_id = %s ORDER BY id", dag_id)
        return [dict(zip(("run_id", "run_type", "state", "start_date", "end_date"), row, strict=True))
                for row in rows]

    def tasks(self, dag_id: str, run_id: str) -> dict[str, TaskTry]:
        rows = self.query("SELECT task_id, state, try_number, queue, start_date, end_date FROM task_instance "
                          "WHERE dag_id = %s AND run_id = %s", dag_id, run_id)
        return {row[0]: TaskTry(*row) for row in rows}

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """Every finished try of a task, oldest first (Airflow 3 keeps them in task_instance_history)."""
        rows = self.query("SELECT try_number, state, start_date, end_date FROM task_instance_history "
                          "WHERE dag_id = %s AND run_id = %s AND task_id = %s ORDER BY try_number",
                          dag_id, run_id, task_id)
        history = [dict(zip(("try_number", "state", "start_date", "end_date"), row, strict=True)) for row in rows]
        current = self.tasks(dag_id, run_id)[task_id]
        return [*history, {"try_number": current.try_number, "state": current.state,
                           "start_date": current.start_date, "end_date": current.end_date}]

    def log(self, dag_id: str, run_id: str, task_id: str, attempt: int) -> str:
        path = (self.home / "airflow" / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
                / f"task_id={task_id}" / f"attempt={attempt}.log")
        return path.read_text(errors="replace")

    def all_logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted((self.home / "airflow" / "logs").rglob("*.log")))


def wait_for_task_state(stack: AirflowStack, dag_id: str, run_id: str, task_id: str, states: tuple[str, ...],
                        timeout: float = 300) -> str:
    def reached() -> str | None:
        task = stack.tasks(dag_id, run_id).get(task_id)
        return task.state if task and task.state in states else None

    return wait_until(reached, timeout, f"{task_id} in {states}", stack.processes, 1.0)


def seconds_between(earlier: Any, later: Any) -> float:
    return float((later - earlier).total_seconds())


def elapsed(since: float) -> float:
    return round(time.monotonic() - since, 1)
