"""Faults on a real deployment (LocalExecutor on PostgreSQL, MLflow server, S3 behind a proxy).

The harness does what the compose file does: every Airflow component and the MLflow
server is restarted when it exits (``restart: always``; ``tests.support.servers.Process``),
so each test proves what the deployment survives and how the run ends: promoted once, or
failed with one incident.

- The S3 endpoint is down for the first two tries of validate_data, then back: the task
  retries after growing delays (exponential backoff) and the run promotes a champion.
- The S3 endpoint is down for good: the task fails after its last try, one incident is
  opened, and the run wrote no object to the bucket.
- An upload cut half-way leaves no object under its key (the previous one stays whole).
- Every PostgreSQL connection (Airflow's metadata DB, MLflow's store, the incident store)
  is dropped while fine_tune runs: the run recovers and promotes once (a component that
  exits on AdminShutdown is restarted, as in the deployment).
- The MLflow server is killed while fine_tune runs and restarted: the run promotes once.
- The S3 endpoint (the data store and MLflow's artifact store) goes away once the gate has
  decided, for the rest of the run: promote needs none of it, the run promotes once and
  the champion downloads and verifies when S3 is back.

Redis restarted under Celery is in test_faults_celery.py (a deployment of its own).
Each run uses its own pipeline name, so each starts from no champion.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from tests.support.airflow_stack import seconds_between, wait_for_task_state
from tests.support.deployment import DATA_BUCKET, Deployment, environment
from tests.support.servers import FlakyProxy, wait_until

pytestmark = pytest.mark.integration

# A run that must promote opens the gate's skill check (the candidate against the prior,
# ``gates.prior_z``): these tests judge what a fault does to the run, not the model's skill
# on one small holdout, so the outcome depends on the fault alone.
PROMOTING_GATES = {"prior_z": -10}
RETRY_DELAY = 10  # aire_retrain's default_args: retry_delay 10 s, exponential backoff x2
DAG = "aire_retrain"


@pytest.fixture(scope="module")
def deployment(deploy: Callable[..., Deployment]) -> Deployment:
    return deploy()


def champion(deployment: Deployment, name: str) -> Any:
    from aire.registry.mlflow_registry import Registry

    with environment(deployment.client_env()):
        return Registry(deployment.mlflow.uri).champion(name)


def test_s3_down_for_the_first_tries_then_back_retries_with_backoff_and_succeeds(deployment: Deployment) -> None:
    stack, proxy = deployment.stack, deployment.proxy
    config = deployment.config("credit-risk-flaky", gates=PROMOTING_GATES)
    batch = deployment.put_batch("batches/flaky.csv")
    proxy.down()
    try:
        run_id = stack.trigger(DAG, {"config": str(config), "batch": batch})

        def failed_tries() -> int:
            return len([t for t in stack.tries(DAG, run_id, "validate_data")[:-1] if t["state"] == "failed"])

        wait_until(lambda: failed_tries() >= 2, 240, "two failed tries of validate_data", stack.processes, 1.0)
    finally:
        proxy.up()
    assert stack.wait_run(DAG, run_id, timeout=600) == "success"
    tries = stack.tries(DAG, run_id, "validate_data")
    assert [t["state"] for t in tries] == ["failed", "failed", "success"]
    waits = [seconds_between(a["end_date"], b["start_date"]) for a, b in pairwise(tries)]
    # Airflow waits between delay*2^(n-1) and twice that after try n: 10-20 s, then 20-40 s.
    assert RETRY_DELAY <= waits[0] and 2 * RETRY_DELAY <= waits[1], waits
    assert deployment.incidents(run_id) == []
    assert champion(deployment, "credit-risk-flaky").run_key == run_id


def test_s3_down_for_good_fails_once_with_one_incident_and_no_object(deployment: Deployment) -> None:
    stack, proxy = deployment.stack, deployment.proxy
    config = deployment.config("credit-risk-s3-down")
    batch = deployment.put_batch("batches/s3-down.csv")
    proxy.down()
    try:
        run_id = stack.trigger(DAG, {"config": str(config), "batch": batch})
        assert stack.wait_run(DAG, run_id, timeout=600) == "failed"
    finally:
        proxy.up()
    tries = stack.tries(DAG, run_id, "validate_data")
    assert [t["state"] for t in tries] == ["failed", "failed", "failed"]
    assert stack.tasks(DAG, run_id)["fine_tune"].state == "upstream_failed"
    incidents = deployment.incidents(run_id)
    assert len(incidents) == 1 and incidents[0].source.task_id == "validate_data"
    assert "EndpointConnectionError" in str(incidents[0].evidence["exception"])
    assert [k for k in deployment.s3.keys(DATA_BUCKET) if "s3-down" in k and k != "batches/s3-down.csv"] == []
    assert champion(deployment, "credit-risk-s3-down") is None


def test_an_upload_cut_half_way_leaves_no_object_and_keeps_the_previous_one(deployment: Deployment,
                                                                            tmp_path: Any) -> None:
    from aire.data.storage import S3Settings, S3Store

    proxy = FlakyProxy(deployment.s3.port)
    try:
        store = S3Store(DATA_BUCKET, "cut", S3Settings(endpoint_url=proxy.endpoint, access_key_id="aire-test",
                                                       secret_access_key="x", region="us-east-1"))
        store.put_bytes(b"the previous model", "model.bin")
        big = tmp_path / "model.bin"
        big.write_bytes(os.urandom(24 * 1024 * 1024))  # multipart: boto3 splits above 8 MiB
        proxy.cut_after(12 * 1024 * 1024)
        with pytest.raises(Exception, match="(?i)connect|endpoint|closed|reset|broken"):
            store.put_file(big, "model.bin")
        proxy.up()
        target = tmp_path / "downloaded.bin"
        assert store.get_file("model.bin", target).read_bytes() == b"the previous model"
        assert deployment.s3.keys(DATA_BUCKET, "cut/") == ["cut/model.bin"]
    finally:
        proxy.close()


def test_postgres_connections_dropped_mid_run_the_run_recovers(deployment: Deployment, tmp_path: Path) -> None:
    stack = deployment.stack
    config = deployment.config("credit-risk-pg-drop", gates=PROMOTING_GATES)
    batch = deployment.put_batch("batches/pg-drop.csv")
    run_id = stack.trigger(DAG, {"config": str(config), "batch": batch})
    wait_for_task_state(stack, DAG, run_id, "fine_tune", ("running",), timeout=300)
    assert deployment.drop_postgres_connections() > 0
    state = stack.wait_run(DAG, run_id, timeout=600)
    print(f"restarted after the drop: {stack.restarts()}")  # the scheduler may exit on AdminShutdown
    assert state == "success", {k: v.state for k, v in stack.tasks(DAG, run_id).items()}
    assert deployment.incidents(run_id) == []
    deployment.assert_promoted_once("credit-risk-pg-drop", run_id, tmp_path)


def test_mlflow_server_restarted_mid_run_the_run_promotes_once(deployment: Deployment, tmp_path: Path) -> None:
    stack, mlflow = deployment.stack, deployment.mlflow
    config = deployment.config("credit-risk-mlflow-restart", gates=PROMOTING_GATES)
    batch = deployment.put_batch("batches/mlflow-restart.csv")
    run_id = stack.trigger(DAG, {"config": str(config), "batch": batch})
    wait_for_task_state(stack, DAG, run_id, "fine_tune", ("running",), timeout=300)
    exits = mlflow.process.crash()
    mlflow.process.wait_restarted(exits, mlflow.ready, timeout=240)
    state = stack.wait_run(DAG, run_id, timeout=600)
    assert state == "success", {k: v.state for k, v in stack.tasks(DAG, run_id).items()}
    assert deployment.incidents(run_id) == []
    deployment.assert_promoted_once("credit-risk-mlflow-restart", run_id, tmp_path)


def test_s3_gone_during_promote_the_run_promotes_once(deployment: Deployment, tmp_path: Path) -> None:
    stack = deployment.stack
    s3_paths = (deployment.proxy, deployment.mlflow.s3_proxy)  # the data store and MLflow's artifacts
    config = deployment.config("credit-risk-s3-promote", gates=PROMOTING_GATES)
    batch = deployment.put_batch("batches/s3-promote.csv")
    run_id = stack.trigger(DAG, {"config": str(config), "batch": batch})

    def task_state(task_id: str) -> str | None:
        task = stack.tasks(DAG, run_id).get(task_id)
        return task.state if task else None

    # As soon as the gate has decided (it publishes its decision to S3), before promote is done.
    wait_until(lambda: task_state("gate") in ("success", "failed", "upstream_failed"), 600, "the gate's decision",
               stack.processes, 0.2)
    for proxy in s3_paths:
        proxy.down()
    try:
        assert task_state("promote") not in ("success", "failed"), "promote finished before S3 went away"
        state = stack.wait_run(DAG, run_id, timeout=600)
    finally:
        for proxy in s3_paths:
            proxy.up()
    tasks = stack.tasks(DAG, run_id)
    assert state == "success", {k: v.state for k, v in tasks.items()}
    assert tasks["gate"].state == "success" and tasks["promote"].state == "success"
    assert deployment.incidents(run_id) == []
    deployment.assert_promoted_once("credit-risk-s3-promote", run_id, tmp_path)
