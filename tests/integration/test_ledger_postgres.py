"""One ledger, one trust root (issue 14, item 2): the ledger of a home on services is rows in
its PostgreSQL incident database, and the promotion lock is that server's only.

Real PostgreSQL, a fresh database ``aire_ledger_<random>`` per test, dropped afterwards
(``AIRE_TEST_POSTGRES`` points at another server). Two processes with homes of their own
stand in for workers on two hosts: they share nothing but the database.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from aire.errors import VerificationError
from aire.home import Home
from aire.trust.ledger import GENESIS_HASH, FileLedger, Ledger, entry_hash
from aire.trust.ledger_db import TABLE, DatabaseLedger

pytestmark = pytest.mark.integration

ADMIN_URL = os.environ.get("AIRE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def database() -> Iterator[str]:
    name = f"aire_ledger_{secrets.token_hex(6)}"
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
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def services_home(database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    """A worker's home whose incident database is the PostgreSQL one: it uses services."""
    from tests.support.homes import ELSEWHERE

    for variable in ELSEWHERE:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AIRE_HOME", str(tmp_path / "worker-home"))
    monkeypatch.setenv("AIRE_INCIDENTS_DB", database)
    home = Home.from_env()
    assert home.uses_services
    return home


def _sql(database: str, statement: str, *args: Any) -> None:
    libpq = make_url(database).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(statement, args)


def _filled(database: str) -> DatabaseLedger:
    book = DatabaseLedger(database)
    for version in (1, 2, 3):
        book.append("model_signed", {"pipeline": "credit-risk", "version": version, "digest": f"{version:064x}"})
    book.append("promotion", {"pipeline": "credit-risk", "to_version": 2, "score": 0.5})
    return book


def test_the_chain_appends_finds_and_verifies_as_the_file_ledger_does(database: str, tmp_path: Path) -> None:
    book = _filled(database)
    entries = book.entries()
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert all(e.hash == entry_hash(e.seq, e.time, e.kind, e.entry, e.prev_hash) for e in entries)
    assert [e.entry["version"] for e in book.find("model_signed")] == [1, 2, 3]
    assert [e.seq for e in book.find("model_signed", version=2)] == [2]
    assert book.find("promotion", to_version=2)[0].entry == {"pipeline": "credit-risk", "to_version": 2, "score": 0.5}
    book.verify()
    # The same entries, written as lines, are a file ledger that verifies: one format, one hash.
    path = tmp_path / "exported.jsonl"
    path.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in entries))
    assert FileLedger(path).read() == entries
    # A second handle (another process, another host) reads the same chain.
    assert DatabaseLedger(database).read() == entries


def test_a_tampered_row_is_named_by_verify_and_stops_the_next_append(database: str) -> None:
    book = _filled(database)
    _sql(database, f"UPDATE {TABLE} SET entry = replace(entry, %s, %s) WHERE seq = 2", f"{2:064x}", f"{9:064x}")
    with pytest.raises(VerificationError, match="seq 2 does not match its hash"):
        book.verify()
    with pytest.raises(VerificationError, match="seq 2"):
        book.find("model_signed", digest=f"{9:064x}")
    with pytest.raises(VerificationError, match="seq 2 does not match its hash"):
        book.append("promotion", {"pipeline": "credit-risk", "to_version": 3})
    assert len(book.entries()) == 4  # nothing was appended to the broken chain


def test_rows_cut_off_the_end_or_added_behind_the_ledger_are_refused(database: str) -> None:
    book = _filled(database)
    tip = book.entries()[-1]
    _sql(database, f"DELETE FROM {TABLE} WHERE seq = 4")  # still a valid chain, one entry short
    with pytest.raises(VerificationError, match="last entry is seq 3 .* recorded head is seq 4"):
        book.verify()
    with pytest.raises(VerificationError, match="recorded head is seq 4"):
        book.append("promotion", {"version": 1})
    _sql(database, f"INSERT INTO {TABLE} (seq, time, kind, entry, prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s)",
         tip.seq, tip.time, tip.kind, json.dumps(tip.entry, sort_keys=True, separators=(",", ":")), tip.prev_hash,
         tip.hash)
    book.verify()  # put back as it was: whole again
    forged = {"pipeline": "credit-risk", "digest": "f" * 64}  # a valid next entry, written around the ledger
    _sql(database, f"INSERT INTO {TABLE} (seq, time, kind, entry, prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s)",
         5, tip.time, "model_signed", json.dumps(forged), tip.hash, entry_hash(5, tip.time, "model_signed", forged,
                                                                                tip.hash))
    with pytest.raises(VerificationError, match="added or the head changed without the ledger"):
        book.find("model_signed", digest="f" * 64)


def _append_many(url: str, home: str, writer: int, count: int, start: Any) -> None:
    os.environ.update({"AIRE_HOME": home, "AIRE_INCIDENTS_DB": url})
    book = Ledger.for_home(Home.from_env())  # each "host" its own home; only the database is shared
    start.wait()  # all writers begin together, so unserialised appends would collide
    for index in range(count):
        book.append("model_signed", {"writer": writer, "index": index})


def test_concurrent_appenders_on_two_hosts_keep_one_chain(database: str, tmp_path: Path) -> None:
    DatabaseLedger(database).entries()  # the tables exist before the race (their creation is tested below)
    context = multiprocessing.get_context("spawn")
    writers, count = 3, 25
    start = context.Barrier(writers)
    workers = [context.Process(target=_append_many, args=(database, str(tmp_path / f"host-{w}"), w, count, start))
               for w in range(writers)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    book = DatabaseLedger(database)
    book.verify()
    entries = book.entries()
    assert [e.seq for e in entries] == list(range(1, writers * count + 1))  # no gaps, no fork
    assert {(e.entry["writer"], e.entry["index"]) for e in entries} == {
        (w, i) for w in range(writers) for i in range(count)}
    assert not any((tmp_path / f"host-{w}" / "ledger.jsonl").exists() for w in range(writers))


def _open_tables(url: str, start: Any) -> None:
    start.wait()
    DatabaseLedger(url).entries()


def test_the_tables_are_created_once_by_racing_processes(database: str) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(3)
    workers = [context.Process(target=_open_tables, args=(database, start)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert DatabaseLedger(database).read() == []


def test_for_home_picks_the_database_ledger_and_the_home_has_no_ledger_file(services_home: Home,
                                                                          database: str) -> None:
    book = Ledger.for_home(services_home)
    assert isinstance(book, DatabaseLedger) and book.backend == "postgresql"
    assert book.location.endswith(f"(table {TABLE})") and make_url(database).database in book.location
    book.append("model_signed", {"pipeline": "credit-risk", "digest": "a" * 64})
    book.verify()
    assert Ledger.for_home(services_home).find("model_signed", digest="a" * 64)
    assert not services_home.ledger_path.exists()
    assert not services_home.root.exists() or "ledger.jsonl" not in os.listdir(services_home.root)


def test_aire_ledger_verify_reads_the_database_ledger(services_home: Home, database: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from aire.cli.main import main

    _filled(database)
    assert main(["ledger", "--verify"]) == 0
    out = capsys.readouterr().out
    assert f"(table {TABLE}): 4 entries, hash chain verified" in out
    assert main(["ledger", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["backend"] == "postgresql" and shown["count"] == 4 and shown["verified"]
    _sql(database, f"UPDATE {TABLE} SET kind = 'promotion' WHERE seq = 1")
    assert main(["ledger", "--verify"]) == 2
    assert "seq 1 does not match its hash" in capsys.readouterr().err


def test_promotion_locks_are_the_databases_only(services_home: Home, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from aire.promotion.promote import alias_lock, lock_in_force

    with alias_lock(services_home, "credit-risk", timeout_s=5):
        pass
    assert not (services_home.root / "locks").exists()  # no fcntl file in a home on services
    assert lock_in_force(services_home)["kind"] == "postgresql advisory lock"
    monkeypatch.delenv("AIRE_INCIDENTS_DB")
    embedded = Home.from_env()
    with alias_lock(embedded, "credit-risk", timeout_s=5):
        pass
    assert (embedded.root / "locks" / "credit-risk.lock").exists()
    assert lock_in_force(embedded)["kind"] == "fcntl"


def test_aire_status_names_the_ledger_lock_and_key_of_a_home_on_services(
        services_home: Home, database: str, capsys: pytest.CaptureFixture[str]) -> None:
    from aire.cli.main import main

    shown = make_url(database).render_as_string(hide_password=True)
    assert main(["status", "--json"]) == 0
    using = json.loads(capsys.readouterr().out)["using"]
    assert using["mode"] == "services"
    assert using["ledger"] == {"backend": "postgresql", "location": f"{database} (table {TABLE})",
                               "from": "home uses services: environment (AIRE_INCIDENTS_DB)"}
    assert using["promotion_lock"] == {"kind": "postgresql advisory lock", "where": shown,
                                       "from": "AIRE_INCIDENTS_DB"}
    assert using["signing_key"]["source"].startswith("none: a run on this home refuses to sign")
    assert "signing.conn_id" in using["signing_key"]["from"]
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"ledger          postgresql {database} (table {TABLE})" in out
    assert f"promotion lock  postgresql advisory lock {shown}  [AIRE_INCIDENTS_DB]" in out
    assert not services_home.ledger_path.exists()
