"""`aire status` names the registry, incident store, ledger and signing key it uses, and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from aire.cli.main import EXAMPLE_CONFIG, main
from aire.pipeline.status import redacted


def status(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["status", *args]) == 0
    return capsys.readouterr().out


def test_a_fresh_home_uses_its_own_parts(aire_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    using = json.loads(status(capsys, "--json"))["using"]
    assert using["home"] == str(aire_home)
    assert using["registry"] == {"uri": f"sqlite:///{aire_home / 'mlflow' / 'mlflow.db'}", "from": "home default"}
    assert using["incident_store"] == {"uri": f"sqlite:///{aire_home / 'incidents.db'}", "from": "home default"}
    assert using["mode"] == "embedded"
    assert using["ledger"]["backend"] == "file"
    assert using["ledger"]["path"] == str(aire_home / "ledger.jsonl")
    assert using["ledger"]["anchor"] == using["incident_store"]["uri"]
    assert using["signing_key"] == {"source": f"home key pair {aire_home / 'keys' / 'signing.pub'}",
                                    "from": "home default"}
    assert using["promotion_lock"] == {"kind": "fcntl", "where": str(aire_home / "locks"),
                                       "from": "embedded home (no PostgreSQL lock URL)"}


def test_a_service_set_by_hand_is_named_with_its_variable(aire_home: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    incidents = f"sqlite:///{tmp_path / 'shared-incidents.db'}"
    monkeypatch.setenv("AIRE_INCIDENTS_DB", incidents)
    out = status(capsys)
    assert f"incident store  {incidents}  [environment (AIRE_INCIDENTS_DB)]" in out
    assert f"head anchored in {incidents}  [home default; anchor: environment (AIRE_INCIDENTS_DB)]" in out
    assert f"registry        sqlite:///{aire_home / 'mlflow' / 'mlflow.db'}  [home default]" in out
    assert f"ledger          file {aire_home / 'ledger.jsonl'}, head anchored in {incidents}" in out
    assert f"promotion lock  fcntl {aire_home / 'locks'}  [embedded home (no PostgreSQL lock URL)]" in out


def test_a_value_left_by_aire_env_for_another_home_is_not_taken_for_the_users(
        aire_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old"
    monkeypatch.setenv("AIRE_DERIVED_FROM", str(old))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{old / 'mlflow' / 'mlflow.db'}")
    registry = json.loads(status(capsys, "--json"))["using"]["registry"]
    assert registry == {"uri": f"sqlite:///{aire_home / 'mlflow' / 'mlflow.db'}", "from": "home default"}


def test_a_key_from_an_airflow_connection_is_named_with_the_config(aire_home: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["signing"] = {"conn_id": "aire_signing"}
    config = tmp_path / "signed-by-connection.yaml"
    config.write_text(yaml.safe_dump(data))
    key = json.loads(status(capsys, "--config", str(config), "--json"))["using"]["signing_key"]
    assert key == {"source": "Airflow connection aire_signing", "from": f"config {config} (signing.conn_id)"}


def test_a_deployment_signing_connection_is_named_with_its_variable(aire_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AIRE_SIGNING_CONN_ID", "deployment_key")
    key = json.loads(status(capsys, "--json"))["using"]["signing_key"]
    assert key == {"source": "Airflow connection deployment_key", "from": "environment (AIRE_SIGNING_CONN_ID)"}


def test_passwords_in_service_uris_are_not_printed() -> None:
    assert redacted("postgresql+psycopg://aire:s3cret@db:5432/aire") == "postgresql+psycopg://aire:***@db:5432/aire"
    assert redacted("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert redacted("sqlite:////tmp/a:b@c/incidents.db") == "sqlite:////tmp/a:b@c/incidents.db"
