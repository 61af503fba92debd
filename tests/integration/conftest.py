"""Fixtures that start real servers on loopback; each stops what it started and drops its databases.

Session-wide (started on first use): moto's S3 server, an MLflow tracking server on
PostgreSQL with S3 artifacts and basic auth, an incident database, and a migrated Airflow
metadata database that every Airflow stack clones. ``deploy`` starts deployments for a
module (tests/support/deployment.py) and stops them at its end.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.airflow_stack import base_env, migrate  # noqa: E402 - needs ROOT on sys.path
from tests.support.deployment import ARTIFACT_BUCKET, DATA_BUCKET, Deployment, start_deployment  # noqa: E402
from tests.support.servers import Databases, MlflowServer, S3Server, new_token  # noqa: E402


@pytest.fixture(scope="session")
def stack_token() -> str:
    return new_token()


@pytest.fixture(scope="session")
def stack_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="session")
def databases() -> Iterator[Databases]:
    dbs = Databases("aire_it")
    try:
        yield dbs
    finally:
        dbs.drop_all()


@pytest.fixture(scope="session")
def s3_server(stack_logs: Path, stack_token: str) -> Iterator[S3Server]:
    server = S3Server(stack_logs, stack_token)
    try:
        for bucket in (ARTIFACT_BUCKET, DATA_BUCKET):
            server.client().create_bucket(Bucket=bucket)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_server(databases: Databases, s3_server: S3Server, stack_logs: Path,
                  stack_token: str) -> Iterator[MlflowServer]:
    server = MlflowServer(databases, s3_server, stack_logs, stack_token, ARTIFACT_BUCKET)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def airflow_template(databases: Databases, tmp_path_factory: pytest.TempPathFactory, stack_token: str) -> str:
    """A metadata database migrated once; stacks clone it."""
    name = databases.create("template")
    home = tmp_path_factory.mktemp("migrate-home")
    migrate(base_env(home, databases.url(name), stack_token))
    return name


@pytest.fixture(scope="session")
def incidents_db(databases: Databases) -> str:
    return databases.url(databases.create("incidents"))


@pytest.fixture(scope="module")
def deploy(tmp_path_factory: pytest.TempPathFactory, databases: Databases, airflow_template: str,
           s3_server: S3Server, mlflow_server: MlflowServer, incidents_db: str, stack_logs: Path,
           stack_token: str) -> Iterator[Callable[..., Deployment]]:
    """Start deployments for a module: ``deploy(executor=..., workers={name: queues}, env={...})``."""
    started: list[Deployment] = []

    def start(**options: Any) -> Deployment:
        deployment = start_deployment(tmp_path_factory.mktemp("deployment"), databases, airflow_template,
                                      s3_server, mlflow_server, incidents_db, stack_logs, stack_token, **options)
        started.append(deployment)
        return deployment

    try:
        yield start
    finally:
        for deployment in started:
            deployment.stack.stop()
            deployment.proxy.down()
