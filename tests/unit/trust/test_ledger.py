"""The hash-chained ledger: appends, lookups, tamper detection, concurrent writers."""

from __future__ import annotations

import itertools
import json
import multiprocessing
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from aire.errors import InputError, VerificationError
from aire.trust.ledger import GENESIS_HASH, FileLedger, entry_hash


@pytest.fixture()
def ledger(tmp_path: Path) -> FileLedger:
    book = FileLedger(tmp_path / "ledger" / "ledger.jsonl")
    for version in (1, 2, 3):
        book.append("model_signed", {"pipeline": "credit-risk", "version": version,
                                     "digest": f"{version:064x}"})
    book.append("promoted", {"pipeline": "credit-risk", "version": 2})
    return book


def _lines(book: FileLedger) -> list[str]:
    return book.path.read_text().splitlines()


def _write(book: FileLedger, lines: list[str]) -> None:
    book.path.write_text("".join(line + "\n" for line in lines))


def test_append_builds_a_chain(ledger: FileLedger) -> None:
    entries = ledger.entries()
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    first = entries[0]
    assert first.hash == entry_hash(first.seq, first.time, first.kind, first.entry,
                                    first.prev_hash)
    assert datetime.fromisoformat(first.time).utcoffset() is not None  # UTC, not naive
    assert json.loads(json.dumps(first.to_dict())) == first.to_dict()
    ledger.verify()


def test_append_returns_the_written_entry_and_copies_input(tmp_path: Path) -> None:
    book = FileLedger(tmp_path / "l.jsonl")
    tags = ["a"]
    written = book.append("model_signed", {"pipeline": "p", "tags": tags})
    tags.append("changed later")
    assert book.entries() == [written]
    assert written.entry == {"pipeline": "p", "tags": ["a"]}


def test_find_matches_kind_and_fields(ledger: FileLedger) -> None:
    assert [e.entry["version"] for e in ledger.find("model_signed")] == [1, 2, 3]
    assert [e.seq for e in ledger.find("model_signed", pipeline="credit-risk", version=2)] == [2]
    assert ledger.find("model_signed", version=7) == []
    assert ledger.find("promoted", digest="x") == []  # a missing key never matches
    assert ledger.find("rolled_back") == []


def test_empty_or_missing_ledger_verifies(tmp_path: Path) -> None:
    book = FileLedger(tmp_path / "none.jsonl")
    assert book.entries() == []
    book.verify()


@pytest.mark.parametrize("entry", [{"value": float("nan")}, {"when": datetime(2026, 1, 1)}])
def test_non_json_entries_are_refused(tmp_path: Path, entry: dict[str, object]) -> None:
    book = FileLedger(tmp_path / "l.jsonl")
    with pytest.raises(InputError, match="not JSON-able"):
        book.append("model_signed", entry)
    assert book.entries() == []


def test_edited_entry_is_named(ledger: FileLedger) -> None:
    lines = _lines(ledger)
    lines[1] = lines[1].replace(f'"digest":"{2:064x}"', f'"digest":"{9:064x}"')
    _write(ledger, lines)
    with pytest.raises(VerificationError, match="seq 2 does not match its hash"):
        ledger.verify()


def test_edited_entry_with_recomputed_hash_breaks_the_next_link(ledger: FileLedger) -> None:
    lines = _lines(ledger)
    raw = json.loads(lines[1])
    raw["entry"]["digest"] = f"{9:064x}"
    raw["hash"] = entry_hash(raw["seq"], raw["time"], raw["kind"], raw["entry"], raw["prev_hash"])
    lines[1] = json.dumps(raw)
    _write(ledger, lines)
    with pytest.raises(VerificationError, match="seq 3 does not chain"):
        ledger.verify()


def test_deleted_entry_is_named(ledger: FileLedger) -> None:
    lines = _lines(ledger)
    del lines[1]
    _write(ledger, lines)
    with pytest.raises(VerificationError, match="seq 3 found where seq 2 belongs"):
        ledger.verify()


def test_deleted_first_entry_is_named(ledger: FileLedger) -> None:
    _write(ledger, _lines(ledger)[1:])
    with pytest.raises(VerificationError, match="seq 2 found where seq 1 belongs"):
        ledger.verify()


def test_reordered_entries_are_named(ledger: FileLedger) -> None:
    lines = _lines(ledger)
    lines[1], lines[2] = lines[2], lines[1]
    _write(ledger, lines)
    with pytest.raises(VerificationError, match="seq 3 found where seq 2 belongs"):
        ledger.verify()


def test_garbage_line_is_named(ledger: FileLedger) -> None:
    lines = _lines(ledger)
    lines[2] = lines[2][:40]  # a torn write
    _write(ledger, lines)
    with pytest.raises(VerificationError, match="line 3 is not a ledger entry"):
        ledger.verify()


def test_append_after_a_torn_last_line_fails_closed(ledger: FileLedger) -> None:
    with ledger.path.open("a") as handle:
        handle.write('{"seq": 5, "ti')
    with pytest.raises(VerificationError, match="last line is not a ledger entry"):
        ledger.append("promoted", {"version": 3})


def _append_many(path: str, writer: int, count: int, start: Any) -> None:
    book = FileLedger(Path(path))
    start.wait()  # all writers begin together, so unlocked appends would collide
    for index in range(count):
        book.append("model_signed", {"writer": writer, "index": index})


def test_concurrent_appends_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(4)
    workers = [context.Process(target=_append_many, args=(str(path), writer, 60, start))
               for writer in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    book = FileLedger(path)
    book.verify()
    entries = book.entries()
    assert [e.seq for e in entries] == list(range(1, 241))
    assert {(e.entry["writer"], e.entry["index"]) for e in entries} == {
        (w, i) for w in range(4) for i in range(60)}


# --- attacks on a ledger whose head is anchored in a database (issue 13, case 3) -------------
def _anchored(tmp_path: Path) -> FileLedger:
    from aire.trust.anchor import DatabaseAnchor

    path = tmp_path / "anchored" / "ledger.jsonl"
    book = FileLedger(path, DatabaseAnchor(f"sqlite:///{tmp_path / 'anchor.db'}", str(path)))
    for version in (1, 2, 3):
        book.append("model_signed", {"pipeline": "credit-risk", "version": version, "digest": f"{version:064x}"})
    return book


def test_an_edited_middle_entry_stops_appends_and_lookups(ledger: FileLedger) -> None:
    lines = _lines(ledger)
    lines[1] = lines[1].replace(f'"digest":"{2:064x}"', f'"digest":"{9:064x}"')
    _write(ledger, lines)
    with pytest.raises(VerificationError, match="seq 2 does not match its hash"):
        ledger.append("promoted", {"pipeline": "credit-risk", "version": 3})
    with pytest.raises(VerificationError, match="seq 2"):
        ledger.find("model_signed", digest=f"{9:064x}")
    assert len(_lines(ledger)) == 4  # nothing was appended to the broken chain


def test_a_tail_cut_at_an_entry_boundary_is_refused(tmp_path: Path) -> None:
    book = _anchored(tmp_path)
    _write(book, _lines(book)[:1])  # still a valid chain, two entries short
    with pytest.raises(VerificationError, match="anchored head is seq 3"):
        book.verify()
    with pytest.raises(VerificationError, match="anchored head"):
        book.append("promoted", {"version": 1})


def test_a_deleted_ledger_is_refused(tmp_path: Path) -> None:
    book = _anchored(tmp_path)
    book.path.unlink()
    with pytest.raises(VerificationError, match="anchored head is seq 3"):
        book.find("model_signed")


def test_entries_added_behind_the_anchor_are_refused(tmp_path: Path) -> None:
    book = _anchored(tmp_path)
    FileLedger(book.path).append("model_signed", {"pipeline": "credit-risk", "digest": "f" * 64})  # no anchor
    with pytest.raises(VerificationError, match="added without the anchor"):
        book.find("model_signed", digest="f" * 64)


def test_a_crash_between_anchor_and_line_is_rolled_forward(tmp_path: Path) -> None:
    book = _anchored(tmp_path)
    whole = _lines(book)
    _write(book, whole[:-1])  # the anchor was written, the line never was
    assert [e.seq for e in book.read()] == [1, 2, 3]
    assert _lines(book) == whole


def test_the_embedded_home_keeps_the_file_ledger(aire_home: Path) -> None:
    from aire.home import Home
    from aire.trust.ledger import Ledger

    home = Home.from_env()
    book = Ledger.for_home(home)
    assert isinstance(book, FileLedger) and book.backend == "file"
    assert book.path == home.ledger_path and book.location == str(home.ledger_path)
    book.append("model_signed", {"pipeline": "credit-risk", "digest": "a" * 64})
    assert home.ledger_path.is_file()
