"""A run whose every stage starts on a home that has never seen it, nothing shared but the
services: moto's S3 server (the run's storage), the MLflow server and PostgreSQL (the
incidents, the ledger). Each stage gets its own empty ``AIRE_HOME``, as a task that lands on
another worker (another disk) would; the signing key comes from the shared secret.

The stages run in this process, one home after another, so the test shows what the files
need; the Celery test with two workers (tests/integration/test_stack_*.py) shows the wiring.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from aire.data.storage import S3Settings
from aire.errors import VerificationError
from aire.home import Home
from aire.pipeline.handoff import TAG_PREFIX
from aire.pipeline.run_context import RunContext, RunSpec
from aire.pipeline.stage_registry import PIPELINE, stage
from aire.trust.keys import KeyPair, ensure_keypair
from tests.support.batches import generated_batch
from tests.support.deployment import DATA_BUCKET, environment, pipeline_config
from tests.support.servers import MlflowServer, S3Server

pytestmark = pytest.mark.integration


@pytest.fixture
def services(mlflow_server: MlflowServer, incidents_db: str) -> Iterator[None]:
    with environment({**mlflow_server.client_env(), "AIRE_INCIDENTS_DB": incidents_db}):
        yield


@pytest.fixture
def secret_keys(tmp_path: Path) -> KeyPair:
    """The shared signing pair, as the Airflow connection would hand it to every worker."""
    return ensure_keypair(tmp_path / "secret")


def s3_settings(s3_server: S3Server) -> S3Settings:
    return S3Settings(endpoint_url=s3_server.endpoint, access_key_id="aire-test",
                      secret_access_key="not-a-secret", region="us-east-1")


def spec_for(tmp_path: Path, s3_server: S3Server, mlflow_server: MlflowServer, keys: KeyPair,
             name: str, run_key: str) -> RunSpec:
    config = pipeline_config(tmp_path, name, mlflow_server)
    local = generated_batch(Home(tmp_path).ensure(), seed=1)
    key = f"landing/{name}/{run_key}.csv"
    s3_server.client().upload_file(local, DATA_BUCKET, key)
    return RunSpec(config_path=str(config), batch_uri=f"s3://{DATA_BUCKET}/{key}", run_key=run_key,
                   s3=s3_settings(s3_server), keys=keys)


def on_host(root: Path) -> Any:
    """``AIRE_HOME`` is ``root``, a home nobody has used, for one stage."""
    return environment({"AIRE_HOME": str(root)})


def test_every_stage_on_its_own_empty_home_promotes_through_the_shared_storage(
        tmp_path: Path, services: None, s3_server: S3Server, mlflow_server: MlflowServer,
        secret_keys: KeyPair) -> None:
    spec = spec_for(tmp_path, s3_server, mlflow_server, secret_keys, "handoff-hosts", "run-1")
    champion: int | None = None
    homes: dict[str, Path] = {}
    for entry in (*PIPELINE, stage("promote")):
        homes[entry.name] = tmp_path / f"host-{entry.name}"
        with on_host(homes[entry.name]):
            result = dict(entry.run(spec, champion))
        if entry.name == "validate_data":
            champion = result["champion_version"]
        if entry.name == "gate":
            assert result["promote"], [c for c in result["checks"] if not c["passed"]]

    assert result["version"] == result["champion_version"]  # promote's own answer: it is the champion
    # Each home holds only what its own stage wrote or received, never another stage's outputs:
    # the sign_model host got the model from the store, and nothing it did not read.
    signer = Home(homes["sign_model"]).run_dir("handoff-hosts", "run-1")
    assert (signer / "model").is_dir() and (signer / "model.sig").is_file()
    assert not (signer / "batch.parquet").exists() and not (signer / "analysis").exists()
    # The promote host verified what it registered against the digest signed two hosts away.
    promoter = Home(homes["promote"]).run_dir("handoff-hosts", "run-1")
    signed = json.loads((signer / "signing.json").read_text())["digest"]
    assert json.loads((promoter / "signing.json").read_text())["digest"] == signed
    # One ledger (PostgreSQL's) and one key (the secret's): no home made either of its own.
    for home in homes.values():
        assert not (home / "ledger.jsonl").exists() and not list((home / "keys").glob("*"))


def test_a_worker_without_the_shared_key_refuses_to_sign_instead_of_making_a_pair(
        tmp_path: Path, services: None, s3_server: S3Server, mlflow_server: MlflowServer,
        secret_keys: KeyPair) -> None:
    spec = spec_for(tmp_path, s3_server, mlflow_server, secret_keys, "handoff-nokey", "run-1")
    for entry in PIPELINE[:3]:
        with on_host(tmp_path / f"host-{entry.name}"):
            entry.run(spec, None)
    keyless = replace(spec, keys=None)

    with on_host(tmp_path / "host-keyless"), pytest.raises(VerificationError, match="signing.conn_id"):
        stage("sign_model").run(keyless, None)
    assert not list((tmp_path / "host-keyless" / "keys").glob("*"))


def test_a_handed_over_file_changed_in_the_bucket_stops_the_next_stage(
        tmp_path: Path, services: None, s3_server: S3Server, mlflow_server: MlflowServer,
        secret_keys: KeyPair) -> None:
    spec = spec_for(tmp_path, s3_server, mlflow_server, secret_keys, "handoff-tamper", "run-1")
    with on_host(tmp_path / "host-a"):
        stage("validate_data").run(spec, None)
        ctx = RunContext(spec)
        batch = ctx.files.batch.read_bytes()
        prefix = ctx.store_key("handoff", "files")
        assert ctx.registry.run_tag(ctx.mlflow_run_id, TAG_PREFIX + "validate_data")
    blob = f"reports/{prefix}/sha256/{hashlib.sha256(batch).hexdigest()}"
    assert blob in s3_server.keys(DATA_BUCKET, "reports/handoff/")
    s3_server.client().put_object(Bucket=DATA_BUCKET, Key=blob, Body=b"PAR1 not the batch PAR1")

    with on_host(tmp_path / "host-b"), pytest.raises(VerificationError, match="batch.parquet: the stored copy"):
        stage("analyze_errors").run(spec, None)
    assert not Home(tmp_path / "host-b").run_dir("handoff-tamper", "run-1").joinpath("batch.parquet").exists()
