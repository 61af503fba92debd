"""Two hosts, nothing shared but the services (issue 14, item 5).

A CeleryExecutor deployment (Redis broker, PostgreSQL metadata and result backend, the
MLflow server, moto's S3 server) with two workers, each with its own empty ``AIRE_HOME``
(another disk in effect) and its own queue. ``AIRE_TASK_QUEUES`` routes aire_retrain's
tasks so that consecutive ones alternate between the workers; fine_tune goes to a queue both
serve, so that a worker killed under it leaves the retry to whichever worker is up. Every
file a later task reads crosses through the store (``aire.pipeline.handoff``); the ledger
and incidents are PostgreSQL's, the signing key the Airflow connection's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.airflow_stack import wait_for_task_state
from tests.support.deployment import Deployment, environment
from tests.support.servers import Databases, wait_until

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("AIRE_TEST_REDIS_MULTIHOST", "redis://127.0.0.1:6379/12")
DAG = "aire_retrain"
# Consecutive tasks alternate between the hosts; fine_tune may run on either.
ROUTES = {"validate_data": "host-a", "analyze_errors": "host-b", "fine_tune": "train", "sign_model": "host-a",
          "evaluate": "host-b", "gate": "host-a", "await_approval": "host-b", "promote": "host-b",
          "reject": "host-b"}
WORKERS = {"worker-a": "host-a,train", "worker-b": "host-b,train"}
# The run must promote on the fault alone, not on the model's skill on one small holdout.
PROMOTING_GATES = {"prior_z": -10}
EXECUTED = "Executing workload in Celery"
FIELD = {name: re.compile(rf"\b{name}=(?:'(?P<q>[^']*)'|(?P<n>\d+))") for name in ("task_id", "run_id", "try_number")}


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    try:
        yield REDIS_URL
    finally:
        client.flushdb()
        client.close()


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {name: tmp_path_factory.mktemp(f"{name}-home") for name in WORKERS}


@pytest.fixture(scope="module")
def deployment(deploy: Callable[..., Deployment], broker: str, databases: Databases,
               hosts: dict[str, Path]) -> Deployment:
    results = databases.url(databases.create("multihost_results"))
    return deploy(executor="CeleryExecutor", workers=WORKERS,
                  worker_env={name: {"AIRE_HOME": str(home)} for name, home in hosts.items()},
                  env={"AIRE_TASK_QUEUES": ",".join(f"{task}={queue}" for task, queue in ROUTES.items()),
                       "AIRFLOW__CELERY__BROKER_URL": broker,
                       "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{results}",
                       # A worker killed under a task: its try is failed (and retried) within the test.
                       "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
                       "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5"})


def executed_on(deployment: Deployment, run_id: str) -> dict[str, list[str]]:
    """Which worker executed each try of each task of ``run_id``, in try order, from the
    workers' own logs."""
    tries: dict[str, list[tuple[int, str]]] = {}
    for name in WORKERS:
        for line in deployment.stack.process(name).tail(10**8).splitlines():
            if EXECUTED not in line:
                continue
            found = {key: pattern.search(line) for key, pattern in FIELD.items()}
            if all(found.values()) and _value(found["run_id"]) == run_id:
                tries.setdefault(_value(found["task_id"]), []).append((int(_value(found["try_number"])), name))
    return {task: [worker for _, worker in sorted(entries)] for task, entries in tries.items()}


def _value(match: re.Match[str] | None) -> str:
    assert match is not None
    return match["q"] if match["q"] is not None else match["n"]


@pytest.fixture(scope="module")
def finished(deployment: Deployment) -> dict[str, Any]:
    stack = deployment.stack
    pipeline = "credit-risk-multihost"
    conf = {"config": str(deployment.config(pipeline, gates=PROMOTING_GATES)),
            "batch": deployment.put_batch("batches/multihost.csv")}
    run_id = stack.trigger(DAG, conf)
    state = stack.wait_run(DAG, run_id, timeout=900)
    tasks = stack.tasks(DAG, run_id)
    timeline = executed_on(deployment, run_id)
    print("timeline:", {task: (tasks[task].start_date, timeline.get(task)) for task in tasks})
    return {"pipeline": pipeline, "run_id": run_id, "state": state, "tasks": tasks, "timeline": timeline}


def test_a_run_whose_tasks_alternate_between_two_hosts_promotes(deployment: Deployment, finished: dict[str, Any],
                                                                tmp_path: Path) -> None:
    assert finished["state"] == "success", {k: v.state for k, v in finished["tasks"].items()}
    timeline = finished["timeline"]
    for task in ("validate_data", "sign_model", "gate"):
        assert timeline[task] == ["worker-a"], timeline
    for task in ("analyze_errors", "evaluate", "promote"):
        assert timeline[task] == ["worker-b"], timeline
    deployment.assert_promoted_once(finished["pipeline"], finished["run_id"], tmp_path)


def test_a_third_fresh_home_verifies_the_champion_and_the_ledger(deployment: Deployment, finished: dict[str, Any],
                                                                 tmp_path: Path) -> None:
    fresh = tmp_path / "fresh-home"
    env = {**os.environ, **deployment.client_env(), "AIRE_HOME": str(fresh)}
    aire = [sys.executable, "-m", "aire.cli.main"]
    ledger = subprocess.run([*aire, "ledger", "--verify"], env=env, capture_output=True, text=True)
    assert ledger.returncode == 0, ledger.stdout + ledger.stderr
    with environment({**deployment.client_env(), "AIRE_HOME": str(fresh)}):
        from aire.home import Home
        from aire.registry.mlflow_registry import Registry
        from aire.trust.ledger import Ledger
        from aire.trust.verify import fetch_verified

        registry = Registry(deployment.mlflow.uri)
        champion = registry.champion(finished["pipeline"])
        assert champion is not None
        # The public half of the deployment's key: what an auditor is handed, not a home's own.
        fetch_verified(registry, champion, public_key=Home(deployment.home).public_key,
                       ledger=Ledger.for_home(Home(fresh)), workdir=tmp_path / "download")
    assert not (fresh / "ledger.jsonl").exists()


def test_the_workers_homes_hold_no_ledger_and_no_key_pair(finished: dict[str, Any], hosts: dict[str, Path]) -> None:
    assert finished["state"] == "success"
    for name, home in hosts.items():
        # Each worker's tasks ran there (its run directory holds what they read and wrote) ...
        assert (home / "reports" / finished["pipeline"]).is_dir(), name
        # ... yet it holds neither a ledger nor a key pair: PostgreSQL's and the connection's.
        assert not (home / "ledger.jsonl").exists(), name
        assert not list((home / "keys").glob("*")), name


def test_a_worker_killed_during_fine_tune_leaves_the_retry_to_the_other_and_one_promotion(
        deployment: Deployment, finished: dict[str, Any], tmp_path: Path) -> None:
    stack = deployment.stack
    pipeline = "credit-risk-multihost-kill"
    conf = {"config": str(deployment.config(pipeline, gates=PROMOTING_GATES)),
            "batch": deployment.put_batch("batches/multihost-kill.csv"), "epochs": 400}
    run_id = stack.trigger(DAG, conf)
    wait_for_task_state(stack, DAG, run_id, "fine_tune", ("running",), timeout=300)
    victim = wait_until(lambda: next(iter(executed_on(deployment, run_id).get("fine_tune", [])), None), 60,
                        "the worker that took fine_tune", stack.processes)
    survivor = next(name for name in WORKERS if name != victim)
    # Kill it and keep it down until the retry is placed, so the retry can only go to the other worker;
    # then it comes back, as the compose file's restart would bring it.
    process = stack.process(victim)
    process.hold_restarts()
    process.crash()
    wait_until(lambda: len(executed_on(deployment, run_id).get("fine_tune", [])) >= 2, 300,
               "fine_tune retried", stack.processes)
    process.release_restarts()

    state = stack.wait_run(DAG, run_id, timeout=900)
    tasks = stack.tasks(DAG, run_id)
    timeline = executed_on(deployment, run_id)
    print("kill timeline:", victim, timeline, {k: v.try_number for k, v in tasks.items()})
    assert state == "success", {k: v.state for k, v in tasks.items()}
    assert timeline["fine_tune"] == [victim, survivor]
    assert tasks["fine_tune"].try_number == 2
    deployment.assert_promoted_once(pipeline, run_id, tmp_path)
    assert deployment.incidents(run_id) == []  # retried and succeeded: no final failure to report
