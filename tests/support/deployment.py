"""One AIRE deployment for the integration tests and bench/: an Airflow stack with its
S3 endpoint behind a FlakyProxy, the shared MLflow server, connections from the
environment (``AIRFLOW_CONN_*``), and a DAG folder of this repository's DAGs plus a probe
that tries to print the secrets.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.support.airflow_stack import AirflowStack
from tests.support.servers import ROOT, Databases, FlakyProxy, MlflowServer, S3Server

ARTIFACT_BUCKET = "mlflow-artifacts"
DATA_BUCKET = "aire"
LANDING_URI = f"s3://{DATA_BUCKET}/landing/credit-risk/"
S3_LOGIN = "aire-test"
STACK_DAGS = ("aire_retrain.py", "aire_landing.py")
CONFIG = ROOT / "include" / "config" / "credit_risk.yaml"

# Prints both secrets from inside a task, so a test can show the task log masks them.
SECRETS_PROBE = '''
import logging, os, pendulum
from airflow.sdk import Connection, dag, task
from aire_airflow.callbacks import on_task_failure
from aire_airflow.connections import mlflow_credentials

@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), tags=["test"],
     default_args={"retries": 2, "on_failure_callback": on_task_failure})
def aire_test_secrets_probe():
    @task
    def leak() -> None:
        mlflow_credentials(os.environ["AIRE_MLFLOW_CONN_ID"])
        log = logging.getLogger("probe")
        log.info("s3 secret: %s", Connection.get("aire_s3").password)
        log.info("mlflow password: %s", os.environ["MLFLOW_TRACKING_PASSWORD"])
        os.environ["MLFLOW_TRACKING_PASSWORD"] = os.environ["AIRE_PROBE_ENV_PASSWORD"]
        mlflow_credentials(None)  # a password from the environment, no connection
        log.info("env password: %s", os.environ["MLFLOW_TRACKING_PASSWORD"])
    leak()

aire_test_secrets_probe()
'''


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set variables for this process (the MLflow client reads its credentials there)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def create_experiment(mlflow: MlflowServer, pipeline: str) -> None:
    """Create ``aire/<pipeline>`` on the server up front, with the server's own artifact location."""
    from mlflow import MlflowClient

    with environment(mlflow.client_env()):
        client = MlflowClient(mlflow.uri)
        if client.get_experiment_by_name(f"aire/{pipeline}") is None:
            client.create_experiment(f"aire/{pipeline}")


def pipeline_config(folder: Path, name: str, mlflow: MlflowServer, storage: bool = True,
                    gates: dict[str, Any] | None = None) -> Path:
    """The example pipeline under another model name, its reports on S3 through ``aire_s3``;
    ``gates`` replaces the example's gate settings."""
    data = yaml.safe_load(CONFIG.read_text())
    data["name"] = name
    if gates is not None:
        data["gates"] = gates
    if storage:
        data["storage"] = {"uri": f"s3://{DATA_BUCKET}/reports", "aws_conn_id": "aire_s3"}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    create_experiment(mlflow, name)
    return path


class Deployment:
    """One Airflow deployment and what its tests need to reach around it."""

    def __init__(self, stack: AirflowStack, proxy: FlakyProxy, s3: S3Server, mlflow: MlflowServer,
                 databases: Databases, incidents_url: str, planted: tuple[str, str],
                 configs: Path) -> None:
        self.stack, self.proxy, self.s3, self.mlflow = stack, proxy, s3, mlflow
        self.databases, self.incidents_url = databases, incidents_url
        # aire_s3's password, and the MLflow password the probe task takes from the environment
        self.s3_secret, self.env_secret = planted
        self.configs = configs

    @property
    def home(self) -> Path:
        return self.stack.home

    def config(self, name: str, storage: bool = True, gates: dict[str, Any] | None = None) -> Path:
        return pipeline_config(self.configs, name, self.mlflow, storage, gates)

    def put_batch(self, key: str, source: Path | None = None) -> str:
        source = source or self.home / "data" / "batch_clean.csv"
        self.s3.client().upload_file(str(source), DATA_BUCKET, key)
        return f"s3://{DATA_BUCKET}/{key}"

    def client_env(self) -> dict[str, str]:
        """What an in-process check needs to read this deployment's registry and incidents."""
        return {**self.mlflow.client_env(), "AIRE_HOME": str(self.home),
                "AIRE_INCIDENTS_DB": self.incidents_url}

    def drop_postgres_connections(self) -> int:
        """Cut every client of Airflow's metadata DB, MLflow's stores and the incident store."""
        from sqlalchemy.engine import make_url

        names = [self.stack.db, *self.mlflow.db_names, str(make_url(self.incidents_url).database)]
        return sum(self.databases.terminate_connections(name) for name in names)

    def assert_promoted_once(self, name: str, run_id: str, workdir: Path) -> None:
        """``run_id`` registered exactly one version of ``name``, the champion is that version,
        the ledger holds one promotion for it, and the champion downloads and verifies."""
        from aire import constants
        from aire.home import Home
        from aire.registry.mlflow_registry import Registry
        from aire.trust.ledger import Ledger
        from aire.trust.verify import fetch_verified

        with environment(self.client_env()):
            registry, home = Registry(self.mlflow.uri), Home(self.home)
            versions = registry.versions(name)
            assert [v.run_key for v in versions] == [run_id], [(v.version, v.run_key) for v in versions]
            champion = registry.champion(name)
            assert champion is not None and champion.version == versions[0].version
            ledger = Ledger.for_home(home)
            promotions = ledger.find(constants.LEDGER_PROMOTION, pipeline=name)
            assert [entry.entry["run_key"] for entry in promotions] == [run_id]
            fetch_verified(registry, champion, public_key=home.public_key, ledger=ledger, workdir=workdir)

    def incidents(self, run_id: str) -> list[Any]:
        from aire.incidents.store import IncidentStore

        with IncidentStore(self.incidents_url) as store:
            return [i for i in store.list() if i.source.run_id == run_id]


def start_deployment(root: Path, databases: Databases, template: str, s3_server: S3Server,
                     mlflow_server: MlflowServer, incidents_db: str, log_dir: Path, token: str,
                     executor: str = "LocalExecutor", workers: dict[str, str] | None = None,
                     worker_env: dict[str, dict[str, str]] | None = None,
                     env: dict[str, str] | None = None, components: bool = True,
                     extra_dags: tuple[str, ...] = ()) -> Deployment:
    """Start api-server, scheduler, dag-processor (and workers) on a clone of ``template``.

    ``components=False`` starts none: the metadata DB and environment for `airflow dags test`.
    ``extra_dags`` adds DAG files of the repository to ``STACK_DAGS`` for one deployment.
    """
    from aire.home import Home
    from aire.pipeline.home_setup import prepare_home
    from aire.trust.keys import ensure_keypair

    home = root / "home"
    prepare_home(Home(home), migrate_airflow=False)  # the example batches
    # The deployment's one signing key, handed to every task through an Airflow connection
    # (a home on services never signs with a pair of its own); the home keeps the public half
    # for the in-process checks.
    keys = ensure_keypair(home / "keys")
    dags = root / "dags"
    dags.mkdir()
    for dag_file in STACK_DAGS + extra_dags:  # the DAGs under test, not every DAG of the repository
        (dags / dag_file).symlink_to(ROOT / "dags" / dag_file)
    (dags / "aire_test_secrets_probe.py").write_text(SECRETS_PROBE)
    proxy = FlakyProxy(s3_server.port)
    s3_secret = f"s3-secret-{secrets.token_hex(8)}"
    env_secret = f"env-secret-{secrets.token_hex(8)}"
    stack_env = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "MLFLOW_TRACKING_URI": mlflow_server.uri, "AIRE_MLFLOW_CONN_ID": "aire_mlflow",
        "AIRFLOW_CONN_AIRE_MLFLOW": json.dumps({
            "conn_type": "http", "host": mlflow_server.uri, "login": mlflow_server.USER,
            "password": mlflow_server.password}),
        "AIRFLOW_CONN_AIRE_S3": json.dumps({
            "conn_type": "aws", "login": S3_LOGIN, "password": s3_secret,
            "extra": {"endpoint_url": proxy.endpoint, "region_name": "us-east-1"}}),
        "AIRE_LANDING_URI": LANDING_URI, "AIRE_LANDING_CONN_ID": "aire_s3",
        "AIRE_SIGNING_CONN_ID": "aire_signing",
        "AIRFLOW_CONN_AIRE_SIGNING": json.dumps({"conn_type": "generic", "password": keys.private.read_text()}),
        "AIRE_INCIDENTS_DB": incidents_db, "AIRE_PROBE_ENV_PASSWORD": env_secret,
        # The example config reads s3:// batches with boto3's default chain (moto takes any key).
        "AWS_ENDPOINT_URL_S3": s3_server.endpoint, "AWS_ACCESS_KEY_ID": S3_LOGIN,
        "AWS_SECRET_ACCESS_KEY": "default-chain-key", "AWS_DEFAULT_REGION": "us-east-1",
        **(env or {}),
    }
    for leaked in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "AIRE_GPU_QUEUE"):
        if leaked not in (env or {}):
            stack_env[leaked] = ""
    stack = AirflowStack(home, databases, template, log_dir / root.name, token,
                         executor=executor, env=stack_env)
    deployment = Deployment(stack, proxy, s3_server, mlflow_server, databases, incidents_db,
                            (s3_secret, env_secret), root)
    if not components:
        return deployment
    try:
        stack.start(workers, worker_env)
        stack.wait_parsed("aire_retrain", "aire_landing", "aire_test_secrets_probe")
    except BaseException:
        stack.stop()
        proxy.down()
        raise
    return deployment

