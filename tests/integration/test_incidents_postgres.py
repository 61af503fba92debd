"""The incident store's core cases, and the incident sources, on a real PostgreSQL server.

Runs ``IncidentStoreContract`` from tests/unit/test_incidents.py and
``IncidentSourcesContract`` from tests/unit/test_incident_sources.py (the exact cases SQLite
runs) against a fresh database ``aire_test_<random>`` per test, dropped afterwards. The
server defaults to 127.0.0.1:5432, user postgres, trust auth; ``AIRE_TEST_POSTGRES`` (a
libpq URL of the maintenance database) points elsewhere. An unreachable server fails the
tests rather than skipping them: deselect with ``-m "not integration"`` instead.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.integration

ADMIN_URL = os.environ.get("AIRE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


INCIDENTS = Path(__file__).resolve().parents[1] / "unit" / "incidents"


def _load_contract(file: str = "test_store.py") -> ModuleType:
    # Loaded under a private name, so pytest does not collect the SQLite class twice.
    spec = importlib.util.spec_from_file_location(f"_contract_{Path(file).stem}", INCIDENTS / file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_contract = _load_contract()
_sources = _load_contract("test_sources.py")


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh, empty database; yields its SQLAlchemy URL and drops it afterwards."""
    name = f"aire_test_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as err:
        pytest.fail(f"PostgreSQL at {ADMIN_URL} is unreachable: {err}")
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield make_url(ADMIN_URL).set(drivername="postgresql+psycopg", database=name) \
                .render_as_string(hide_password=False)
        finally:
            # FORCE: a child process killed mid-test may still hold a connection.
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                          .format(sql.Identifier(name)))


# mypy cannot see into a module loaded from a path; the base class is IncidentStoreContract.
_Contract: type = _contract.IncidentStoreContract


class TestIncidentStoreOnPostgres(_Contract):  # type: ignore[misc]
    @pytest.fixture
    def store_url(self, postgres_database: str) -> str:
        return postgres_database


class TestIncidentSourcesOnPostgres(_sources.IncidentSourcesContract):  # type: ignore[misc]
    """Task failures, the sweep, SLO breaches and the notification outbox on PostgreSQL."""

    @pytest.fixture
    def store_url(self, postgres_database: str) -> str:
        return postgres_database



def test_record_that_loses_the_insert_race_retries_onto_the_winners_row(
        postgres_database: str) -> None:
    """Deterministic version of the race the four-process test hits only sometimes."""
    with _contract.IncidentStore(postgres_database) as store:
        assert store.count_open() == 0  # schema exists before the competitor writes
        competitor = psycopg.connect(postgres_database.replace("+psycopg", ""))
        with competitor, ThreadPoolExecutor(max_workers=1) as pool:
            competitor.execute(  # opens the key in a transaction it has not committed yet
                "INSERT INTO aire_incidents (dedup_key, active_key, pipeline, title, severity,"
                " status, source, first_seen, last_seen, count, evidence, timeline) VALUES"
                " ('k1', 'k1', 'credit-risk', 'from another worker', 'high', 'open',"
                " '{\"kind\": \"task_failure\"}', now(), now(), 1, '{}', '[]')")
            pending = pool.submit(_contract._record, store, "k1")
            time.sleep(0.5)
            assert not pending.done()  # blocked on the unique index, waiting for the winner
            competitor.commit()
            incident, created = pending.result(timeout=30)
        assert not created and incident.count == 2 and incident.title == "from another worker"
        assert len(store.list()) == 1


def test_unreachable_server_raises_incident_store_error_without_the_password() -> None:
    store = _contract.IncidentStore("postgresql+psycopg://aire:s3cret@127.0.0.1:1/none")
    with store, pytest.raises(_contract.IncidentStoreError, match="127.0.0.1:1") as caught:
        _contract._record(store, "k1")
    assert "s3cret" not in str(caught.value)
