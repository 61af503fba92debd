"""The alias lock across hosts: a PostgreSQL advisory lock on the real local server.

Two workers on different hosts share the MLflow backend but not the home's lock file.
Here two processes with homes of their own stand in for them: with a PostgreSQL lock URL
their critical sections never overlap; without one they do (the file locks are different
files), which shows the advisory lock is what serializes them. Each test runs in a fresh
database ``aire_lock_<random>``, dropped afterwards (``AIRE_TEST_POSTGRES`` points at
another server).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from aire.errors import AireError, ConfigError
from aire.home import Home
from aire.promotion.promote import advisory_lock, alias_lock, lock_url

pytestmark = pytest.mark.integration

ADMIN_URL = os.environ.get("AIRE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def database() -> Iterator[str]:
    name = f"aire_lock_{secrets.token_hex(6)}"
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
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_a_held_lock_blocks_the_same_name_only(database: str) -> None:
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with advisory_lock(database, "aire.alias:p"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10)
        with pytest.raises(AireError, match="still held"), advisory_lock(database, "aire.alias:p", timeout_s=0.3):
            pass
        with advisory_lock(database, "aire.alias:other", timeout_s=0.3):
            pass  # another pipeline's lock is free
    finally:
        release.set()
        thread.join(10)
    with advisory_lock(database, "aire.alias:p", timeout_s=2):
        pass  # released by the holder


HOLD = """
import json, sys, time
from aire.home import Home
from aire.promotion.promote import alias_lock
with alias_lock(Home.from_env(), "shared-pipeline"):
    start = time.time()
    time.sleep(1.0)
    print(json.dumps([start, time.time()]))
"""


def _intervals(tmp_path: Path, lock: str | None) -> list[list[float]]:
    procs = []
    for index in range(2):
        env = {**os.environ, "AIRE_HOME": str(tmp_path / f"host-{index}")}
        env.pop("AIRE_INCIDENTS_DB", None)
        env.pop("AIRE_LOCK_URL", None)
        if lock:
            env["AIRE_LOCK_URL"] = lock
        procs.append(subprocess.Popen([sys.executable, "-c", HOLD], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr[-2000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return sorted(out)


def test_workers_with_separate_homes_are_serialized_by_postgres(database: str, tmp_path: Path) -> None:
    first, second = _intervals(tmp_path / "pg", database)
    assert second[0] >= first[1] - 0.01, "critical sections overlapped under the PostgreSQL lock"
    first, second = _intervals(tmp_path / "files-only", None)
    assert second[0] < first[1], "without PostgreSQL, separate homes do not exclude each other"


def test_lock_url_choice(database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRE_HOME", str(tmp_path))
    monkeypatch.delenv("AIRE_LOCK_URL", raising=False)
    monkeypatch.delenv("AIRE_INCIDENTS_DB", raising=False)
    assert lock_url(Home.from_env()) is None  # the embedded SQLite incident store: file lock only
    monkeypatch.setenv("AIRE_INCIDENTS_DB", database)
    assert lock_url(Home.from_env()) == database
    monkeypatch.setenv("AIRE_LOCK_URL", f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ConfigError, match="must name a PostgreSQL server"), alias_lock(Home.from_env(), "p"):
        pass
