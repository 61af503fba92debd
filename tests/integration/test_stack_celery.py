"""aire_retrain through the CeleryExecutor: Redis as the broker (a database number of the
local server of our own, flushed before and after), the result backend on PostgreSQL, one
worker on the `default` queue and one on the `gpu` queue, with ``AIRE_GPU_QUEUE=gpu``
routing fine_tune to the latter, as docker-compose.yaml's two workers do. Both take their
Celery config from ``aire_airflow.celery_config`` as the compose file's do; the default worker
preloads the stages' modules before it forks tasks, the gpu worker has ``AIRE_PRELOAD=0``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.deployment import ARTIFACT_BUCKET, Deployment, environment
from tests.support.servers import Databases

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("AIRE_TEST_REDIS", "redis://127.0.0.1:6379/13")
DAG = "aire_retrain"
PIPELINE = "credit-risk-celery"


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
def deployment(deploy: Callable[..., Deployment], broker: str, databases: Databases) -> Deployment:
    results = databases.url(databases.create("celery_results"))
    return deploy(executor="CeleryExecutor", workers={"worker-default": "default", "worker-gpu": "gpu"},
                  worker_env={"worker-gpu": {"AIRE_PRELOAD": "0"}},
                  env={"AIRE_GPU_QUEUE": "gpu", "AIRFLOW__CELERY__BROKER_URL": broker,
                       "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{results}",
                       "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "aire_airflow.celery_config.CELERY_CONFIG"})


@pytest.fixture(scope="module")
def finished(deployment: Deployment) -> dict[str, Any]:
    stack = deployment.stack
    conf = {"config": str(deployment.config(PIPELINE)), "batch": deployment.put_batch("batches/celery.csv")}
    run_id = stack.trigger(DAG, conf)
    state = stack.wait_run(DAG, run_id, timeout=600)
    return {"run_id": run_id, "state": state, "tasks": stack.tasks(DAG, run_id)}


def test_fine_tune_goes_to_the_gpu_worker_and_everything_else_to_default(deployment: Deployment,
                                                                        finished: dict[str, Any]) -> None:
    assert finished["state"] == "success", {k: v.state for k, v in finished["tasks"].items()}
    queues = {task_id: task.queue for task_id, task in finished["tasks"].items()}
    assert queues.pop("fine_tune") == "gpu"
    assert set(queues.values()) == {"default"}
    # Each worker logs the workloads it executes: fine_tune only on the gpu worker.
    gpu_log = deployment.stack.process("worker-gpu").tail(10**7)
    default_log = deployment.stack.process("worker-default").tail(10**7)
    executed = "Executing workload in Celery"
    assert [line for line in gpu_log.splitlines() if executed in line and finished["run_id"] in line]
    assert all("fine_tune" in line for line in gpu_log.splitlines() if executed in line)
    assert not [line for line in default_log.splitlines() if executed in line and "fine_tune" in line]
    assert [line for line in default_log.splitlines() if executed in line and "validate_data" in line]


def test_the_champion_is_set_and_its_artifacts_are_in_the_bucket(deployment: Deployment,
                                                                finished: dict[str, Any]) -> None:
    from aire.registry.mlflow_registry import Registry

    with environment(deployment.client_env()):
        champion = Registry(deployment.mlflow.uri).champion(PIPELINE)
    assert champion is not None and champion.run_key == finished["run_id"]
    keys = deployment.s3.keys(ARTIFACT_BUCKET)
    assert any(champion.run_id in k and k.endswith(f"{champion.signed_digest}/model/weights.safetensors")
               for k in keys)
    reports = deployment.s3.keys("aire", f"reports/runs/{PIPELINE}/")
    assert any(k.endswith("decision.json") for k in reports)


def test_a_printed_secret_is_masked_and_no_worker_output_holds_one(deployment: Deployment,
                                                                   finished: dict[str, Any]) -> None:
    stack = deployment.stack
    run_id = stack.trigger("aire_test_secrets_probe")
    assert stack.wait_run("aire_test_secrets_probe", run_id, timeout=180) == "success"
    assert "s3 secret: ***" in stack.log("aire_test_secrets_probe", run_id, "leak", 1)
    output = stack.all_logs() + "".join(process.tail(10**8) for process in stack.processes)
    for secret in (deployment.s3_secret, deployment.mlflow.password, deployment.env_secret):
        assert secret not in output


def test_a_preloaded_worker_forks_tasks_that_already_hold_the_stages_modules(deployment: Deployment,
                                                                            finished: dict[str, Any]) -> None:
    from aire.pipeline.preload import PRELOADED_MODULES

    assert finished["state"] == "success", {k: v.state for k, v in finished["tasks"].items()}
    stack, run_id, every = deployment.stack, finished["run_id"], len(PRELOADED_MODULES)
    assert f"AIRE preloaded {every} modules in" in stack.process("worker-default").tail(10**7)
    assert "AIRE preload off (AIRE_PRELOAD)" in stack.process("worker-gpu").tail(10**7)
    # validate_data ran on the preloaded worker: its process was forked holding every module.
    assert f"{every} of {every} preload modules were imported" in stack.log(DAG, run_id, "validate_data", 1)
    # fine_tune ran on the gpu worker, which preloads nothing: a cold task imports its own.
    cold = stack.log(DAG, run_id, "fine_tune", 1)
    held = re.search(rf"(\d+) of {every} preload modules were imported", cold)
    assert held is not None and int(held.group(1)) < every // 2, cold[-2000:]
