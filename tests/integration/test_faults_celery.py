"""Redis restarted under Celery (issue 14, item 6): the broker of a CeleryExecutor deployment
is killed while fine_tune runs on the worker and restarted empty, as the compose file's
``redis`` service (``restart: always``) would be after a crash. Workers and the scheduler
reconnect; the run promotes once.

A deployment of its own (one worker on the default queue, a Redis of its own), so the
restart reaches no other test. ``task_queued_timeout`` is lowered so that a task whose
message the restart lost would be queued again within the test's time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.airflow_stack import wait_for_task_state
from tests.support.deployment import Deployment
from tests.support.servers import Databases, RedisServer

pytestmark = pytest.mark.integration

DAG = "aire_retrain"
PIPELINE = "credit-risk-redis-restart"
# The gate's skill check (candidate against the prior) is opened: the outcome must depend on
# the fault alone, not on the model's skill on one small holdout.
PROMOTING_GATES = {"prior_z": -10}


@pytest.fixture(scope="module")
def redis_server(stack_logs: Path, stack_token: str) -> Iterator[RedisServer]:
    server = RedisServer(stack_logs, stack_token)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def deployment(deploy: Callable[..., Deployment], redis_server: RedisServer, databases: Databases) -> Deployment:
    results = databases.url(databases.create("faults_celery_results"))
    return deploy(executor="CeleryExecutor", workers={"worker": "default"},
                  env={"AIRFLOW__CELERY__BROKER_URL": redis_server.url,
                       "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{results}",
                       "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "90"})


def test_redis_restarted_under_celery_the_run_promotes_once(deployment: Deployment, redis_server: RedisServer,
                                                            tmp_path: Path) -> None:
    stack = deployment.stack
    conf = {"config": str(deployment.config(PIPELINE, gates=PROMOTING_GATES)),
            "batch": deployment.put_batch("batches/redis-restart.csv")}
    run_id = stack.trigger(DAG, conf)
    wait_for_task_state(stack, DAG, run_id, "fine_tune", ("running",), timeout=300)
    exits = redis_server.process.crash()
    redis_server.process.wait_restarted(exits, redis_server.ready, timeout=60)
    state = stack.wait_run(DAG, run_id, timeout=900)
    tasks = stack.tasks(DAG, run_id)
    print(f"restarted: redis {len(redis_server.process.restarts)}, airflow {stack.restarts()}; "
          f"tries: { {k: v.try_number for k, v in tasks.items()} }")
    assert state == "success", {k: v.state for k, v in tasks.items()}
    assert deployment.incidents(run_id) == []
    deployment.assert_promoted_once(PIPELINE, run_id, tmp_path)
