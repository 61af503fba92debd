"""Incident store and postmortem stubs.

``IncidentStoreContract`` holds the core cases every backend must pass. This file runs
them on SQLite; tests/integration/test_incidents_postgres.py runs the same class on
PostgreSQL by overriding the ``store_url`` fixture.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aire.errors import AireError, InputError
from aire.incidents import schema as incident_schema
from aire.incidents.postmortem import write_postmortem
from aire.incidents.store import (
    Incident,
    IncidentSource,
    IncidentStateError,
    IncidentStore,
    IncidentStoreError,
    Severity,
    SourceKind,
    Status,
    UnknownIncidentError,
    dedup_key,
    is_final_try,
)

SOURCE = IncidentSource(kind=SourceKind.TASK_FAILURE, dag_id="aire_retrain",
                        run_id="manual__2026-01-01", task_id="validate_data", try_number=1)


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


StoreFactory = Callable[..., IncidentStore]


def _record(store: IncidentStore, key: str, **overrides: Any) -> tuple[Incident, bool]:
    fields: dict[str, Any] = {"pipeline": "credit-risk", "title": "validate_data failed",
                              "severity": Severity.HIGH, "source": SOURCE,
                              "evidence": {"exception": "boom"}}
    fields.update(overrides)
    return store.record(key, **fields)


def _record_in_child(url: str, key: str, barrier: Any, results: Any) -> None:
    store = IncidentStore(url)
    barrier.wait(timeout=30)  # all four start on an empty database at once: schema + insert race
    try:
        incident, created = _record(store, key)
        results.put((incident.id, created))
    except Exception as err:  # noqa: BLE001 -- reported to the parent so the test fails at once
        results.put((-1, repr(err)))
    finally:
        store.close()


class IncidentStoreContract:
    """Core cases, backend-agnostic; subclasses provide the ``store_url`` fixture."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def make_store(self, store_url: str, clock: FakeClock) -> Iterator[StoreFactory]:
        stores: list[IncidentStore] = []

        def make(**kwargs: Any) -> IncidentStore:
            stores.append(IncidentStore(store_url, **{"clock": clock, **kwargs}))
            return stores[-1]

        yield make
        for store in stores:
            store.close()

    def test_record_opens_an_incident(self, make_store: StoreFactory) -> None:
        store = make_store()
        incident, created = _record(store, "k1")
        assert created and incident.status is Status.OPEN and incident.count == 1
        assert incident.severity is Severity.HIGH and incident.source == SOURCE
        assert [e.event for e in incident.timeline] == ["opened"]
        assert store.get(incident.id) == incident
        as_json = json.loads(json.dumps(incident.to_dict()))
        assert as_json["first_seen"] == "2026-03-01T12:00:00+00:00"
        assert as_json["source"]["kind"] == "task_failure"

    def test_same_key_again_counts_on_one_row(self, make_store: StoreFactory,
                                               clock: FakeClock) -> None:
        store = make_store()
        first, _ = _record(store, "k1", evidence={"gate": {"auc": 0.7}, "a": 1})
        clock.advance(timedelta(minutes=5))
        again, created = _record(store, "k1", evidence={"gate": {"f1": 0.5}, "a": 2},
                                 severity="critical")
        assert not created and again.id == first.id and again.count == 2
        assert again.last_seen - first.last_seen == timedelta(minutes=5)
        assert again.evidence == {"gate": {"auc": 0.7, "f1": 0.5}, "a": 2}
        assert again.severity is Severity.CRITICAL  # a worse repeat escalates
        assert [e.event for e in again.timeline] == ["opened", "recurred", "escalated"]
        assert [i.id for i in store.list()] == [first.id]

    def test_try_number_in_the_key_is_the_callers_choice(self, make_store: StoreFactory) -> None:
        store = make_store()
        per_try = [dedup_key("aire_retrain", "run1", "fine_tune", t) for t in (1, 2)]
        assert not any(_record(store, key)[0].count > 1 for key in per_try)
        assert len(store.list()) == 2
        per_task = dedup_key("aire_retrain", "run1", "evaluate")
        _record(store, per_task)
        incident, created = _record(store, per_task)
        assert not created and incident.count == 2 and len(store.list()) == 3

    def test_after_resolve_the_same_key_opens_a_new_incident(self,
                                                             make_store: StoreFactory) -> None:
        store = make_store()
        old, _ = _record(store, "k1")
        store.resolve(old.id, "sre", "bad batch dropped")
        new, created = _record(store, "k1")
        assert created and new.id != old.id and new.count == 1
        assert store.get(old.id).status is Status.RESOLVED

    def test_outside_the_window_opens_a_new_incident(self, make_store: StoreFactory,
                                                     clock: FakeClock) -> None:
        store = make_store()
        old, _ = _record(store, "k1", window=timedelta(hours=1))
        clock.advance(timedelta(minutes=59))
        assert not _record(store, "k1", window=timedelta(hours=1))[1]
        clock.advance(timedelta(minutes=61))
        new, created = _record(store, "k1", window=timedelta(hours=1))
        assert created and new.id != old.id
        expired = store.get(old.id)
        assert expired.status is Status.RESOLVED and expired.timeline[-1].event == "expired"
        assert store.count_open() == 1

    def test_acknowledge_then_resolve(self, make_store: StoreFactory) -> None:
        store = make_store()
        incident, _ = _record(store, "k1")
        acked = store.acknowledge(incident.id, "alice")
        assert acked.status is Status.ACKNOWLEDGED and acked.timeline[-1].detail == "by alice"
        repeat, created = _record(store, "k1")  # acknowledged still deduplicates
        assert not created and repeat.count == 2 and repeat.status is Status.ACKNOWLEDGED
        resolved = store.resolve(incident.id, "alice", "rolled back")
        assert resolved.status is Status.RESOLVED
        assert resolved.timeline[-1].detail == "by alice: rolled back"

    def test_disallowed_transitions_raise(self, make_store: StoreFactory) -> None:
        store = make_store()
        incident, _ = _record(store, "k1")
        store.acknowledge(incident.id, "alice")
        with pytest.raises(IncidentStateError, match="is acknowledged"):
            store.acknowledge(incident.id, "bob")
        store.resolve(incident.id, "alice", "fixed")
        with pytest.raises(IncidentStateError, match="is resolved"):
            store.resolve(incident.id, "bob", "fixed again")
        with pytest.raises(IncidentStateError):
            store.acknowledge(incident.id, "bob")
        with pytest.raises(UnknownIncidentError, match="9999"):
            store.resolve(9999, "bob", "x")
        assert len(store.get(incident.id).timeline) == 3  # failed moves left no trace

    def test_note_postmortem_list_and_count(self, make_store: StoreFactory) -> None:
        store = make_store()
        a, _ = _record(store, "k1")
        b, _ = _record(store, "k2", pipeline="churn")
        assert store.note(a.id, "looking at the batch").timeline[-1].event == "note"
        assert store.set_postmortem(a.id, "s3://pm/a.md").postmortem == "s3://pm/a.md"
        store.resolve(b.id, "sre", "fixed")
        assert store.count_open() == 1 and store.count_open("churn") == 0
        assert [i.id for i in store.list(status="resolved")] == [b.id]
        assert [i.id for i in store.list(pipeline="credit-risk")] == [a.id]
        with pytest.raises(InputError, match="'status' must be one of"):
            store.list(status="closed")
        with pytest.raises(InputError, match="'text'"):
            store.note(a.id, "  ")

    def test_by_key_since_and_notified(self, make_store: StoreFactory, clock: FakeClock) -> None:
        store = make_store()
        old, _ = _record(store, "k1")
        store.resolve(old.id, "sre", "fixed")
        clock.advance(timedelta(hours=2))
        new, _ = _record(store, "k1")
        assert [i.id for i in store.by_key("k1")] == [new.id, old.id]  # every status, newest first
        assert store.by_key("other") == []
        assert [i.id for i in store.list(since=clock.now - timedelta(hours=1))] == [new.id]
        with pytest.raises(InputError, match="'since' must be timezone-aware"):
            store.list(since=datetime(2026, 1, 1))
        marked = store.mark_notified(new.id, "oncall", "trigger")
        assert marked.notified() == {"oncall:trigger"} and marked.timeline[-1].event == "notified"
        assert store.get(old.id).notified() == set()

    def test_bad_input_is_rejected_and_stores_nothing(self, make_store: StoreFactory) -> None:
        store = make_store()
        with pytest.raises(InputError, match="'severity' must be one of"):
            _record(store, "k1", severity="urgent")
        with pytest.raises(InputError, match="'evidence' is not JSON"):
            _record(store, "k1", evidence={"when": datetime.now(UTC)})
        with pytest.raises(InputError, match="'title'"):
            _record(store, "k1", title="")
        with pytest.raises(InputError, match="unknown fields \\['dag'\\]"):
            _record(store, "k1", source={"kind": "task_failure", "dag": "x"})
        with pytest.raises(InputError, match="'window' must be positive"):
            _record(store, "k1", window=timedelta(0))
        assert store.list() == []

    def test_schema_creation_is_idempotent(self, make_store: StoreFactory) -> None:
        first = make_store()
        incident, _ = _record(first, "k1")
        second = make_store()  # a second process/instance on an existing schema
        assert second.get(incident.id) == incident
        assert not _record(second, "k1")[1]

    def test_four_processes_record_one_key_at_once(self, store_url: str) -> None:
        context = multiprocessing.get_context("fork")
        barrier, results = context.Barrier(4), context.Queue()
        children = [context.Process(target=_record_in_child,
                                    args=(store_url, "same-key", barrier, results))
                    for _ in range(4)]
        for child in children:
            child.start()
        outcomes = [results.get(timeout=60) for _ in children]
        assert all(incident_id > 0 for incident_id, _ in outcomes), outcomes
        for child in children:
            child.join(timeout=60)
            assert child.exitcode == 0
        assert len({incident_id for incident_id, _ in outcomes}) == 1
        assert sorted(created for _, created in outcomes) == [False, False, False, True]
        with IncidentStore(store_url) as store:
            (only,) = store.list()
            assert only.count == 4 and len(only.timeline) == 4


class TestIncidentStoreOnSqlite(IncidentStoreContract):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'nested' / 'incidents.db'}"  # parent made on demand


# --- backend-independent pieces ---------------------------------------------------------
def test_dedup_key_is_stable_and_unambiguous() -> None:
    key = dedup_key("aire_retrain", "run1", "fine_tune", 2)
    assert key == dedup_key("aire_retrain", "run1", "fine_tune", 2) and len(key) == 64
    assert dedup_key("a|b", "c") != dedup_key("a", "b|c")
    assert dedup_key("x", 1) != dedup_key("x", "1")
    with pytest.raises(InputError):
        dedup_key()
    with pytest.raises(InputError, match="float"):
        dedup_key("x", 1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(("try_number", "max_tries", "final"), [
    (1, 0, True),   # retries=0: the only try is the last
    (1, 2, False), (2, 2, False), (3, 2, True),  # retries=2: tries 1..3
    (4, 5, False),  # cleared after try 3 with retries=2: max_tries = 3 + 2
    (6, 5, True),
])
def test_is_final_try(try_number: int, max_tries: int, final: bool) -> None:
    assert is_final_try(try_number, max_tries) is final


def test_is_final_try_rejects_impossible_numbers() -> None:
    with pytest.raises(InputError):
        is_final_try(0, 2)
    with pytest.raises(InputError):
        is_final_try(1, -1)


def test_timeline_is_capped_but_count_stays_exact(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(incident_schema, "MAX_TIMELINE_EVENTS", 4)
    with IncidentStore(f"sqlite:///{tmp_path / 'i.db'}") as store:
        first, _ = _record(store, "flapping")
        for _ in range(6):
            incident, _ = _record(store, "flapping")
        store.note(first.id, "still flapping")
        incident = store.get(first.id)
    assert incident.count == 7
    assert [e.event for e in incident.timeline] == ["opened", "recurred", "recurred", "note"]
    assert incident.timeline[-2].detail.endswith("count 7")  # the oldest repeats were dropped


def test_store_rejects_bad_url_and_naive_clock(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot parse database URL"):
        IncidentStore("not a url")
    naive = IncidentStore(f"sqlite:///{tmp_path / 'i.db'}", clock=lambda: datetime(2026, 1, 1))
    with pytest.raises(InputError, match="timezone-aware times"):
        _record(naive, "k1")
    naive.close()


def test_database_failures_raise_incident_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(IncidentStoreError, match="cannot create"):
        IncidentStore(f"sqlite:///{blocker / 'sub' / 'i.db'}")
    directory = IncidentStore(f"sqlite:///{tmp_path}")  # a directory, not a database file
    with directory, pytest.raises(IncidentStoreError, match=f"incident store sqlite:///{tmp_path}"):
        directory.count_open()


# --- postmortem stubs -------------------------------------------------------------------
SECTIONS = ["Summary", "Impact", "Detection", "Root cause", "Trigger", "Resolution",
            "Action items", "Timeline", "Lessons"]

EVIDENCE: dict[str, Any] = {
    "failed_task": {"log_url": "http://localhost:8080/dags/aire_retrain/runs/r/tasks/t"},
    "exception": {"type": "DataValidationError",
                  "message": "batch.csv: column 'age' breaks rule 'min'",
                  "traceback": "Traceback (most recent call last):\n  ```weird```"},
    "validation_failures": [{"file": "batch.csv", "column": "age", "rule": "min",
                             "detail": "3 rows | below 18"}],
    "drift": {"age": {"reference": 0.1, "current": 0.4, "delta": 0.3}},
    "fairness": {"demographic_parity_difference": {"champion": 0.05, "candidate": 0.12,
                                                   "delta": 0.07}},
    "gate": {"decision": "reject", "checks": [
        {"name": "auc", "passed": False, "value": 0.71, "threshold": 0.75}]},
    "suspected_rows": [{"row": i, "label": 1, "loss": 5.0 - i} for i in range(12)],
    "model_digests": {"candidate": "sha256:cafe"},
    "champion": {"version": 3, "digest": "sha256:beef"},
}


@pytest.fixture
def stored_incident(tmp_path: Path) -> Iterator[tuple[IncidentStore, Incident]]:
    with IncidentStore(f"sqlite:///{tmp_path / 'i.db'}") as store:
        yield store, _record(store, "k1", pipeline="credit risk/v2")[0]


def test_postmortem_has_every_section_and_the_evidence(
        stored_incident: tuple[IncidentStore, Incident], tmp_path: Path) -> None:
    store, incident = stored_incident
    incident = store.resolve(incident.id, "sre", "quarantined the batch")
    path = write_postmortem(incident, tmp_path / "pm", evidence=EVIDENCE)
    assert path.name == f"{incident.first_seen:%Y-%m-%d}-credit-risk-v2-{incident.id}.md"
    text = path.read_text()
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert headings == SECTIONS
    for expected in ["| batch.csv | age | min | 3 rows \\| below 18 |",
                     "| auc | False | 0.71 | 0.75 |", "| age | 0.1 | 0.4 | 0.3 |",
                     "| demographic_parity_difference | 0.05 | 0.12 | 0.07 |",
                     "Top suspected rows (10 of 12)", "| 9 | 1 | -4 |",
                     "version 3, digest `sha256:beef`", "sha256:cafe", "`DataValidationError`",
                     "````\nTraceback", "<http://localhost:8080/dags/aire_retrain/runs/r/tasks/t>",
                     "resolved by sre: quarantined the batch", "DAG `aire_retrain`"]:
        assert expected in text, expected
    assert "| 10 | 1 |" not in text
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_postmortem_says_tbd_instead_of_inventing(
        stored_incident: tuple[IncidentStore, Incident], tmp_path: Path) -> None:
    _, incident = stored_incident
    text = write_postmortem(incident, tmp_path, evidence={"gate": "garbled"}).read_text()
    assert "Champion at the time: TBD" in text and "Log: TBD" in text
    assert "## Resolution\n\nTBD (status: open)" in text
    assert "## Trigger\n\nException: boom" in text  # from the incident's stored evidence
    assert '`gate` (shape not recognised, shown as recorded):\n\n```json\n"garbled"' in text
    assert "Drift" not in text and "suspected rows" not in text


def test_postmortem_keeps_evidence_it_has_no_section_for(
        stored_incident: tuple[IncidentStore, Incident], tmp_path: Path) -> None:
    _, incident = stored_incident
    evidence = {  # the shape a task-failure callback gathers from a run directory
        "failed_task": "validate_data", "log_url": "http://airflow/log",
        "exception": {"type": "DataValidationError", "message": "bad", "file": "b.csv",
                      "column": "age", "rule": "not_null"},
        "champion": {"version": 2, "signed_digest": "sha256:f00d"},
        "evaluation": {"blob": "x" * 5000}, "reports": "/runs/r1",
    }
    text = write_postmortem(incident, tmp_path, evidence=evidence).read_text()
    assert "task `validate_data`" in text and "Log: <http://airflow/log>" in text
    assert "| b.csv | age | not_null |" in text
    assert "version 2, digest `sha256:f00d`" in text
    assert "### Other evidence (as recorded)" in text and '"/runs/r1"' in text
    assert "cut at 2000 characters" in text and "x" * 5000 not in text
    unknown_champion = write_postmortem(incident, tmp_path, evidence={
        "champion": {"unknown": "registry unreachable"}}).read_text()
    assert "registry unreachable" in unknown_champion


def test_postmortem_to_unwritable_directory_raises_with_the_path(
        stored_incident: tuple[IncidentStore, Incident], tmp_path: Path) -> None:
    _, incident = stored_incident
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(AireError, match=str(blocker / "pm")):
        write_postmortem(incident, blocker / "pm", evidence={})
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(AireError, match="locked"):
            write_postmortem(incident, locked, evidence={})


def test_postmortem_values_cannot_inject_markup(tmp_path: Path) -> None:
    """The attack (issue 13, case 5): HTML, links and code-span breakouts in a batch's values,
    a run key and an exception reach the stub; a Markdown viewer must show them as text."""
    xss = "<img src=x onerror=alert(1)>"
    link = "[click](javascript:alert(1))"
    with IncidentStore(f"sqlite:///{tmp_path / 'i.db'}") as store:
        incident = _record(store, "k-xss", title=f"validate_data failed {xss}")[0]
    text = write_postmortem(incident, tmp_path / "pm", evidence={
        "failed_task": {"dag_id": "aire_retrain", "run_id": "r` <b>x</b> `", "log_url": "javascript:alert(1)"},
        "exception": {"type": "DataValidationError", "message": f"{link} {xss}\x1b[2J\u202e"},
        "validation_failures": [{"file": "b.csv", "column": xss, "rule": link, "detail": "ok"}],
        "drift": {xss: {"reference": 0.1, "current": 0.4}},
    }).read_text()
    assert "<img" not in text and "[click](" not in text, [line for line in text.splitlines() if "<img" in line]
    assert "&lt;img src=x onerror=alert(1)&gt;" in text and "\\[click\\]" in text
    assert "run `` r` <b>x</b> ` ``" in text  # one code span (literal there), its backtick cannot close it
    assert "Log: `javascript:alert(1)`" in text  # not a link
    assert "\x1b" not in text and "\u202e" not in text
