"""Orchestration overhead: the same pipeline on the same batch, in-process and through Airflow.

Modes, each on a fresh pipeline name (so each trains from no champion, the same work):

- ``inprocess``: ``aire.pipeline.runner.run_all`` in this process, no Airflow (the compute baseline);
- ``dags-test``: ``airflow dags test`` (every task in one process, no scheduler);
- ``local``: api-server + scheduler + dag-processor, LocalExecutor;
- ``celery``: the same with the CeleryExecutor, a `default` and a `gpu` worker (Redis db 14);
- ``celery-preload``: the same, the workers on ``aire_airflow.celery_config`` (as in
  docker-compose.yaml): each imports the stages' modules once before it forks tasks.

All of them use the same real services: PostgreSQL (a metadata DB cloned per mode), an
MLflow server on PostgreSQL with S3 artifacts (moto) and basic auth, the batch on S3.
Wall is the DAG run's end minus its queued time; task time is the sum of its task
instances' run times (process start, imports and stage work); the ratio is wall / task time.
For inprocess both are the run_all time.

    .venv/bin/python bench/orchestration_overhead.py --modes inprocess,dags-test,local,celery
    .venv/bin/python bench/orchestration_overhead.py --modes inprocess,celery,celery-preload
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "include"))

from tests.support.airflow_stack import base_env, migrate
from tests.support.deployment import (
    ARTIFACT_BUCKET,
    DATA_BUCKET,
    Deployment,
    environment,
    start_deployment,
)
from tests.support.servers import BIN, Databases, MlflowServer, Process, S3Server, new_token, wait_until

DAG = "aire_retrain"
CELERY_CONFIG = "aire_airflow.celery_config.CELERY_CONFIG"
REDIS_URL = os.environ.get("AIRE_BENCH_REDIS", "redis://127.0.0.1:6379/14")


def run_times(deployment: Deployment, run_id: str) -> dict[str, Any]:
    stack = deployment.stack
    # `airflow dags test` never queues its run: its wall starts when the run starts.
    (queued, end, state), = stack.query("SELECT coalesce(queued_at, start_date), end_date, state FROM dag_run "
                                        "WHERE dag_id = %s AND run_id = %s", DAG, run_id)
    rows = stack.query("SELECT start_date, end_date FROM task_instance WHERE dag_id = %s AND run_id = %s "
                       "AND state <> 'skipped' AND start_date IS NOT NULL AND end_date IS NOT NULL", DAG, run_id)
    return {"state": state, "wall": (end - queued).total_seconds(),
            "tasks": sum((e - s).total_seconds() for s, e in rows), "n_tasks": len(rows)}


def wait_preloaded(worker: Process, watch: list[Process]) -> None:
    wait_until(lambda: "AIRE preloaded" in worker.tail(10**6), 300, f"{worker.name}'s preload", watch, 1.0)


def through_scheduler(deployment: Deployment, name: str) -> dict[str, Any]:
    conf = {"config": str(deployment.config(name)), "batch": deployment.put_batch(f"bench/{name}.csv")}
    run_id = deployment.stack.trigger(DAG, conf)
    deployment.stack.wait_run(DAG, run_id, timeout=900)
    return run_times(deployment, run_id)


def dags_test(deployment: Deployment, name: str) -> dict[str, Any]:
    conf = {"config": str(deployment.config(name)), "batch": deployment.put_batch(f"bench/{name}.csv")}
    started = time.monotonic()
    done = subprocess.run([str(BIN / "airflow"), "dags", "test", DAG, "--conf", json.dumps(conf)],
                          env=deployment.stack.env, capture_output=True, text=True, timeout=900, check=False)
    elapsed = time.monotonic() - started
    (run_id,), = deployment.stack.query("SELECT run_id FROM dag_run WHERE dag_id = %s ORDER BY id DESC LIMIT 1", DAG)
    result = run_times(deployment, run_id)
    if result["state"] != "success":
        print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
    return {**result, "process": elapsed}


def inprocess(deployment: Deployment, name: str) -> dict[str, Any]:
    from aire.data.storage import S3Settings
    from aire.pipeline.run_context import RunSpec
    from aire.pipeline.runner import run_all
    from aire.trust.keys import ensure_keypair

    config = deployment.config(name, storage=False)  # no Airflow connection to read in-process
    batch = deployment.put_batch(f"bench/{name}.csv")
    s3 = S3Settings(endpoint_url=deployment.s3.endpoint, access_key_id="aire-test",
                    secret_access_key="not-a-secret", region="us-east-1")
    with environment(deployment.client_env()):
        started = time.monotonic()
        # The deployment's shared key (the tasks get it through the aire_signing connection):
        # a home on services never signs with a pair of its own.
        keys = ensure_keypair(deployment.home / "keys")
        outcome = run_all(RunSpec(str(config), batch, f"bench-{name}", s3=s3, keys=keys))
        elapsed = time.monotonic() - started
    return {"state": "success" if outcome["outcome"] == "promoted" else outcome["outcome"],
            "wall": elapsed, "tasks": elapsed, "n_tasks": len(outcome) - 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default="inprocess,dags-test,local,celery")
    args = parser.parse_args()
    modes = args.modes.split(",")
    token, work = new_token(), Path(tempfile.mkdtemp(prefix="aire-bench-"))
    dbs = Databases("aire_bench")
    servers: list[Any] = []
    deployments: list[Deployment] = []
    results: dict[str, dict[str, Any]] = {}
    try:
        s3 = S3Server(work / "logs", token)
        servers.append(s3)
        for bucket in (ARTIFACT_BUCKET, DATA_BUCKET):
            s3.client().create_bucket(Bucket=bucket)
        mlflow = MlflowServer(dbs, s3, work / "logs", token, ARTIFACT_BUCKET)
        servers.append(mlflow)
        template = dbs.create("template")
        migrate(base_env(work / "migrate", dbs.url(template), token))
        incidents = dbs.url(dbs.create("incidents"))

        def deploy(name: str, **options: Any) -> Deployment:
            deployment = start_deployment(work / name, dbs, template, s3, mlflow, incidents, work / "logs",
                                          token, **options)
            deployments.append(deployment)
            return deployment

        # inprocess and dags-test need no Airflow component; a running scheduler would also
        # pick up the run that `airflow dags test` creates.
        if {"inprocess", "dags-test"} & set(modes):
            quiet = deploy("quiet", components=False)
            if "inprocess" in modes:
                results["inprocess"] = inprocess(quiet, "bench-inprocess")
            if "dags-test" in modes:
                results["dags-test"] = dags_test(quiet, "bench-dags-test")
        if "local" in modes:
            local = deploy("local")
            results["local"] = through_scheduler(local, "bench-local")
            local.stack.stop()
        for mode in ("celery", "celery-preload"):
            if mode not in modes:
                continue
            import redis

            redis.Redis.from_url(REDIS_URL).flushdb()
            preload = {"AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": CELERY_CONFIG} if mode == "celery-preload" else {}
            celery = deploy(mode, executor="CeleryExecutor",
                            workers={"worker-default": "default", "worker-gpu": "gpu"},
                            env={"AIRE_GPU_QUEUE": "gpu", "AIRFLOW__CELERY__BROKER_URL": REDIS_URL,
                                 "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{dbs.url(dbs.create(mode.replace('-', '_')))}",
                                 **preload})
            # A preloaded worker imports before it takes tasks: wait for that, so the run's
            # times hold the tasks, not the workers' start.
            for worker in ("worker-default", "worker-gpu") if preload else ():
                wait_preloaded(celery.stack.process(worker), celery.stack.processes)
            results[mode] = through_scheduler(celery, f"bench-{mode}")
            celery.stack.stop()
    finally:
        for deployment in deployments:
            deployment.stack.stop()
            deployment.proxy.down()
        for server in reversed(servers):
            server.stop()
        dbs.drop_all()
        if "celery" in modes:
            import redis

            redis.Redis.from_url(REDIS_URL).flushdb()
    print(f"\n{'mode':<10} {'state':<8} {'tasks':>5} {'wall s':>8} {'task s':>8} {'wall/task':>9} {'vs inprocess':>12}")
    base = results.get("inprocess", {}).get("wall")
    for mode, r in results.items():
        versus = f"{r['wall'] / base:>11.2f}x" if base else f"{'-':>12}"
        print(f"{mode:<10} {r['state']:<8} {r['n_tasks']:>5} {r['wall']:>8.1f} {r['tasks']:>8.1f} "
              f"{r['wall'] / r['tasks']:>9.2f} {versus}")
    print(f"\nlogs: {work / 'logs'}  (one machine: {os.cpu_count()} cores; every service on loopback)")


if __name__ == "__main__":
    main()
