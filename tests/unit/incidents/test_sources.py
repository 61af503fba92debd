"""Where incidents come from, on each backend: task failures, the sweep, SLO breaches, and
the notifications that follow them.

``IncidentSourcesContract`` runs here on SQLite and in
tests/integration/test_incidents_postgres.py on PostgreSQL (``store_url`` fixture).
A task's final failure with retries left, and a SIGKILLed task, go through real Airflow
in tests/e2e/test_incident_sweep_dag.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from aire.config import load_config
from aire.home import PROJECT_ROOT, Home
from aire.incidents.notifiers import channel_from_connection, deliver_pending
from aire.incidents.sources import POSTMORTEM_IN_STORE, record_task_failure
from aire.incidents.store import IncidentStore, Status, dedup_key
from aire.incidents.sweep import FailedTaskInstance, sweep_failures
from aire.reliability.breaches import record_slo_breaches
from aire.reliability.slo import History, RunRecord, evaluate_all
from tests.support.loopback import Receiver, closed_port_url

CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"
NOW = datetime(2026, 3, 29, tzinfo=UTC)


def failure(try_number: int = 3, **overrides: Any) -> dict[str, Any]:
    """The arguments the Airflow failure callback passes for a task's final try."""
    return {"dag_id": "aire_retrain", "run_id": "scheduled__2026-03-01", "task_id": "fine_tune",
            "try_number": try_number, "exception": MemoryError("CUDA out of memory"),
            "params": {"config": str(CONFIG), "batch": "s3://landing/b1.csv"},
            "log_url": "http://airflow:8080/dags/aire_retrain/runs/r/tasks/fine_tune",
            **overrides}


class IncidentSourcesContract:
    @pytest.fixture(scope="class")
    def mlflow_uri(self, tmp_path_factory: pytest.TempPathFactory) -> str:
        # One registry for the class: the champion lookup is evidence, not what is tested.
        return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"

    @pytest.fixture
    def home(self, aire_home: Path, store_url: str, mlflow_uri: str,
             monkeypatch: pytest.MonkeyPatch) -> Home:
        monkeypatch.setenv("AIRE_INCIDENTS_DB", store_url)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
        return Home.from_env()

    @pytest.fixture
    def store(self, home: Home) -> Iterator[IncidentStore]:
        with IncidentStore(home.incidents_db_url) as opened:
            yield opened

    def test_final_failure_opens_exactly_one_incident_with_a_stub(
            self, home: Home, store: IncidentStore) -> None:
        outcome = record_task_failure(**failure())
        [incident] = store.list()
        assert outcome["created"] and outcome["incident_id"] == incident.id
        assert incident.source.kind == "task_failure" and incident.source.try_number == 3
        assert incident.pipeline == "credit-risk" and incident.count == 1
        assert incident.dedup_key == dedup_key("aire_retrain", "scheduled__2026-03-01",
                                               "fine_tune", 3)
        stub = Path(str(incident.postmortem)).read_text()
        assert "`MemoryError`: CUDA out of memory" in stub and "task `fine_tune`" in stub
        assert "<http://airflow:8080/dags/aire_retrain/runs/r/tasks/fine_tune>" in stub
        # Kept with the incident too: a page on another host renders it from the store.
        assert store.postmortem_text(incident.id) == stub

    def test_same_failure_twice_counts_two_and_keeps_the_edited_stub(
            self, home: Home, store: IncidentStore) -> None:
        first = record_task_failure(**failure())
        stub = Path(first["postmortem"])
        stub.write_text(stub.read_text().replace("What happened: TBD", "What happened: OOM"))
        again = record_task_failure(**failure())  # e.g. the callback firing twice
        [incident] = store.list()
        assert not again["created"] and again["incident_id"] == first["incident_id"]
        assert incident.count == 2 and again["postmortem"] == first["postmortem"]
        assert "What happened: OOM" in stub.read_text()  # a repeat never overwrites people's work

    def test_unwritable_postmortem_location_loses_neither_the_incident_nor_its_stub(
            self, home: Home, store: IncidentStore, caplog: pytest.LogCaptureFixture) -> None:
        home.root.mkdir(parents=True, exist_ok=True)
        home.postmortems_dir.write_text("a file where the folder should be")
        with caplog.at_level(logging.ERROR, logger="aire.incidents.sources"):
            outcome = record_task_failure(**failure())
        [incident] = store.list()
        assert outcome["postmortem"] == POSTMORTEM_IN_STORE == incident.postmortem
        assert f"cannot write postmortem {home.postmortems_dir}" in caplog.text
        assert "`MemoryError`: CUDA out of memory" in str(store.postmortem_text(incident.id))

    def test_sweep_opens_only_what_no_callback_recorded(
            self, home: Home, store: IncidentStore) -> None:
        record_task_failure(**failure(task_id="evaluate"))  # the callback saw this one
        seen = FailedTaskInstance("aire_retrain", "scheduled__2026-03-01", "evaluate", 3,
                                  conf={"config": str(CONFIG)})
        killed = FailedTaskInstance("aire_retrain", "scheduled__2026-03-01", "fine_tune", 3,
                                    hostname="worker-2", executor="CeleryExecutor",
                                    end_date=NOW, conf={"config": str(CONFIG)})
        result = sweep_failures([seen, killed], log_url_base="http://airflow:8080/")
        assert (result.examined, result.already_recorded, len(result.opened)) == (2, 1, 1)
        swept = store.get(result.opened[0]["incident_id"])
        assert swept.source.kind == "incident_sweep" and swept.dedup_key == killed.key
        assert swept.evidence["failed_task"]["hostname"] == "worker-2"
        assert swept.evidence["log_url"] == ("http://airflow:8080/dags/aire_retrain/runs/"
                                             "scheduled__2026-03-01/tasks/fine_tune?try_number=3")
        assert "no failure callback" in Path(str(swept.postmortem)).read_text()
        again = sweep_failures([seen, killed])
        assert (again.already_recorded, again.opened) == (2, ())
        assert sorted(i.count for i in store.list()) == [1, 1]  # nothing counted twice

    def test_slo_breach_opens_one_incident_and_counts_repeats(
            self, home: Home, store: IncidentStore) -> None:
        config = load_config(CONFIG)
        runs = tuple(RunRecord(f"r{i}", NOW - timedelta(hours=i + 1), NOW - timedelta(hours=i),
                               "failed") for i in range(3))
        report = evaluate_all(config, History(runs, NOW - timedelta(days=2)), NOW)
        breached = [o.name for o in report.breached]
        assert "pipeline_success" in breached
        record_slo_breaches(config, report)
        record_slo_breaches(config, report)
        by_objective = {i.evidence["slo"]["name"]: i for i in store.list()}
        success = by_objective["pipeline_success"]
        assert success.source.kind == "slo_breach" and success.count == 2
        assert success.severity.value == "high"  # the fast window fired
        stub = Path(str(success.postmortem)).read_text()
        assert "Detected by: slo_breach" in stub and "### SLO: pipeline_success" in stub
        assert "| fast | 8.64e+04 | 10 | 7200 | 10 | 10 | True |" in stub  # burn windows, as a table
        assert len(by_objective) == len(breached)

    def test_notifications_follow_the_store_and_the_outbox_catches_up(
            self, home: Home, store: IncidentStore, tmp_path: Path) -> None:
        config = tmp_path / "notified.yaml"
        config.write_text(yaml.safe_dump({**yaml.safe_load(CONFIG.read_text()), "notify": {
            "channels": [{"kind": "pagerduty", "conn_id": "aire_pd", "name": "oncall"}],
            "attempts": 2, "backoff_seconds": 0}}))
        down = {"host": closed_port_url(), "password": "KEY"}
        outcome = record_task_failure(**failure(params={"config": str(config)}),
                                      resolver=lambda s: channel_from_connection(s, **down))
        assert [d["ok"] for d in outcome["notified"]] == [False]  # stored, not yet sent
        with Receiver() as receiver:
            up = {"host": f"{receiver.url}/v2/enqueue", "password": "KEY"}
            notify = {"credit-risk": load_config(config).notify}

            def outbox() -> list[Any]:
                return deliver_pending(store, notify, lambda s: channel_from_connection(s, **up),
                                       since=datetime.now(UTC) - timedelta(days=1),
                                       grace=timedelta(0))

            assert [d.action for d in outbox()] == ["trigger"]
            store.resolve(outcome["incident_id"], "sre", "moved to a bigger GPU")
            assert [d.action for d in outbox()] == ["resolve"]
            assert outbox() == []
            trigger, resolve = receiver.bodies()
        assert trigger["dedup_key"] == resolve["dedup_key"]
        assert [trigger["event_action"], resolve["event_action"]] == ["trigger", "resolve"]
        incident = store.get(outcome["incident_id"])
        assert incident.status is Status.RESOLVED
        assert incident.notified() == {"oncall:trigger", "oncall:resolve"}


class TestIncidentSourcesOnSqlite(IncidentSourcesContract):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'incidents.db'}"
