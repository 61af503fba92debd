"""An append-only, hash-chained JSON-lines ledger of trust decisions.

Each line is one entry: ``seq``, ``time`` (UTC ISO 8601), ``kind``, ``entry`` (a JSON
object), ``prev_hash`` and ``hash``, the sha256 of the canonical JSON of every other
field. Because each entry names the hash of the one before, editing, deleting or
reordering a line breaks the chain at that line, and ``verify()`` names it.

It records the digests a signature vouched for (kind ``model_signed``: pipeline,
version, digest), so a later verification can refuse a validly signed but older
model; promotions and rollbacks go here too. Appends hold an exclusive ``fcntl``
lock on the file, so concurrent writers (several Airflow workers on one host or one
POSIX-locking file system) keep one chain.

The chain is checked on every append and every lookup (``read``, ``find``), not only by
``aire ledger --verify``: an edited entry stops the next promotion instead of being
appended to. A chain alone cannot show a file cut short or deleted, so a ledger opened
with an anchor (``Ledger.for_home``: its head in the database, ``aire.trust.anchor``)
also compares its head with the anchored one. ``entries`` alone reads without checking,
for tools that show a broken ledger.

``Ledger`` is the interface every caller holds; ``Ledger.for_home`` picks the store. The
embedded home keeps the file above (``FileLedger``); a home whose incident database is
PostgreSQL (``Home.uses_services``) keeps the same entries, hashed the same way, in that
database (``aire.trust.ledger_db.DatabaseLedger``), so workers on several hosts write one
chain and no ``ledger.jsonl`` is ever created in their homes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from aire.errors import InputError, VerificationError
from aire.trust.anchor import Anchor, DatabaseAnchor, Head

if TYPE_CHECKING:
    from aire.home import Home

GENESIS_HASH = "0" * 64
_FIELDS = ("seq", "time", "kind", "entry", "prev_hash", "hash")


@dataclass(frozen=True)
class LedgerEntry:
    seq: int
    time: str
    kind: str
    entry: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "time": self.time, "kind": self.kind, "entry": self.entry,
                "prev_hash": self.prev_hash, "hash": self.hash}


def _canonical(value: Any) -> bytes:
    # Sorted keys, no spaces, no NaN: the same entry always hashes the same.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def entry_hash(seq: int, time: str, kind: str, entry: dict[str, Any], prev_hash: str) -> str:
    body = {"seq": seq, "time": time, "kind": kind, "entry": entry, "prev_hash": prev_hash}
    return hashlib.sha256(_canonical(body)).hexdigest()


class Ledger(ABC):
    """A hash-chained, append-only record of trust decisions, wherever it is stored.

    ``append`` and every lookup (``read``, ``find``, ``verify``) check the whole chain first
    and raise ``VerificationError`` naming the first entry that breaks it; ``entries`` only
    parses, for tools that show a broken ledger.
    """

    @classmethod
    def for_home(cls, home: Home) -> Ledger:
        """The home's ledger: in its PostgreSQL incident database when the home uses services,
        else the file in the home, its head anchored in the home's database."""
        if home.uses_services:
            from aire.trust.ledger_db import DatabaseLedger

            return DatabaseLedger(home.incidents_db_url)
        return FileLedger(home.ledger_path, DatabaseAnchor(home.incidents_db_url, str(home.ledger_path)))

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the entries live, for messages (a path, or a database URL without its password)."""

    @property
    @abstractmethod
    def backend(self) -> str:
        """``file`` or ``postgresql``."""

    @abstractmethod
    def append(self, kind: str, entry: dict[str, Any]) -> LedgerEntry:
        """Add one entry at the end of a chain that verifies; writers are serialised."""

    @abstractmethod
    def entries(self) -> list[LedgerEntry]:
        """Every entry, in chain order, parsed but not checked (see ``read`` and ``verify``)."""

    @abstractmethod
    def read(self) -> list[LedgerEntry]:
        """Every entry, once the chain (and the anchored head) verify; raises VerificationError."""

    def verify(self) -> None:
        """Raise VerificationError naming the first entry that breaks the chain, or a head that
        is not the anchored one."""
        self.read()

    def find(self, kind: str, **match: Any) -> list[LedgerEntry]:
        """Entries of ``kind`` whose entry has every ``key=value`` of ``match``, oldest first,
        from a ledger that verifies."""
        return [item for item in self.read() if item.kind == kind
                and all(key in item.entry and item.entry[key] == value
                        for key, value in match.items())]

    # --- shared by every store ------------------------------------------------------------
    def _prepared(self, kind: str, entry: dict[str, Any]) -> dict[str, Any]:
        """A private JSON copy of ``entry`` (later edits by the caller can't leak in)."""
        if not kind or not isinstance(entry, dict):
            raise InputError(f"{self.location}: ledger entries need a kind and a dict entry")
        try:
            copied: dict[str, Any] = json.loads(_canonical(entry))
        except (TypeError, ValueError) as exc:
            raise InputError(f"{self.location}: {kind} entry is not JSON-able: {exc}") from exc
        return copied

    @staticmethod
    def _next(previous: LedgerEntry | None, kind: str, entry: dict[str, Any]) -> LedgerEntry:
        seq = previous.seq + 1 if previous else 1
        prev_hash = previous.hash if previous else GENESIS_HASH
        time = datetime.now(UTC).isoformat(timespec="microseconds")
        return LedgerEntry(seq, time, kind, entry, prev_hash, entry_hash(seq, time, kind, entry, prev_hash))

    def _verify_chain(self, chain: list[LedgerEntry]) -> None:
        prev_hash, expected_seq = GENESIS_HASH, 1
        for item in chain:
            if item.seq != expected_seq:
                raise VerificationError(
                    f"{self.location}: ledger entry seq {item.seq} found where seq {expected_seq} "
                    "belongs (entry deleted or reordered)")
            if item.prev_hash != prev_hash:
                raise VerificationError(f"{self.location}: ledger entry seq {item.seq} does not "
                                        "chain to the entry before it (entry deleted or edited)")
            if entry_hash(item.seq, item.time, item.kind, item.entry, item.prev_hash) != item.hash:
                raise VerificationError(f"{self.location}: ledger entry seq {item.seq} does not "
                                        "match its hash (edited)")
            prev_hash, expected_seq = item.hash, expected_seq + 1


class FileLedger(Ledger):
    """The embedded home's ledger: a JSON-lines file, appends under an exclusive ``fcntl`` lock."""

    def __init__(self, path: Path, anchor: Anchor | None = None) -> None:
        self.path = path
        self.anchor = anchor

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def backend(self) -> str:
        return "file"

    def append(self, kind: str, entry: dict[str, Any]) -> LedgerEntry:
        """Add one entry at the end of the chain; the file lock serialises writers."""
        entry = self._prepared(kind, entry)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked("a+b", fcntl.LOCK_EX) as handle:
            last = _last_line(handle)
            if last:
                self._parse(last, line_no=0)  # a torn last write is named as such
            chain = self._checked(handle)  # nothing is appended to a chain that does not verify
            new = self._next(chain[-1] if chain else None, kind, entry)
            line = _canonical(new.to_dict())
            if self.anchor is not None:
                self.anchor.write(Head(new.seq, new.hash, line))  # first: see aire.trust.anchor
            self._write_line(handle, line)
        return new

    def entries(self) -> list[LedgerEntry]:
        """Every entry, in file order, parsed but not checked (see ``read`` and ``verify``)."""
        if not self.path.exists():
            return []
        with self._locked("rb", fcntl.LOCK_SH) as handle:
            lines = handle.read().splitlines()
        return [self._parse(line, line_no) for line_no, line in enumerate(lines, 1)]

    def read(self) -> list[LedgerEntry]:
        """Every entry, once the chain and (when anchored) its head verify; raises VerificationError."""
        if self.anchor is None:
            if not self.path.exists():
                return []
            with self._locked("rb", fcntl.LOCK_SH) as handle:
                return self._checked(handle)
        if not self.path.exists() and self.anchor.read() is None:
            return []  # a home that has never recorded anything
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked("a+b", fcntl.LOCK_EX) as handle:  # exclusive: it may write back the head
            return self._checked(handle)

    # --- checking -------------------------------------------------------------------------
    def _checked(self, handle: IO[bytes]) -> list[LedgerEntry]:
        handle.seek(0)
        chain = [self._parse(line, line_no) for line_no, line in enumerate(handle.read().splitlines(), 1)]
        self._verify_chain(chain)
        if self.anchor is None:
            return chain
        return self._against_anchor(handle, chain, self.anchor)

    def _against_anchor(self, handle: IO[bytes], chain: list[LedgerEntry], anchor: Anchor) -> list[LedgerEntry]:
        head = anchor.read()
        tip = chain[-1] if chain else None
        if head is None:
            if tip is not None:
                # A ledger from before anchoring (or a new database): its current head becomes the anchor.
                anchor.write(Head(tip.seq, tip.hash, _canonical(tip.to_dict())))
            return chain
        if tip is not None and (tip.seq, tip.hash) == (head.seq, head.hash):
            return chain
        pending = self._parse(head.line, line_no=0)
        if head.seq == len(chain) + 1 and pending.prev_hash == (tip.hash if tip else GENESIS_HASH):
            # The process died between anchoring an entry and writing it: finish the write.
            self._verify_chain([*chain, pending])
            self._write_line(handle, head.line)
            return [*chain, pending]
        found = f"seq {tip.seq} ({tip.hash[:12]}…)" if tip else "no entries"
        raise VerificationError(
            f"{self.path}: the ledger's head is {found} but its anchored head is seq {head.seq} "
            f"({head.hash[:12]}…): entries were cut off, the file was replaced or deleted, or "
            "entries were added without the anchor")

    @staticmethod
    def _write_line(handle: IO[bytes], line: bytes) -> None:
        handle.seek(0, os.SEEK_END)
        handle.write(line + b"\n")
        handle.flush()
        os.fsync(handle.fileno())

    @contextmanager
    def _locked(self, mode: str, operation: int) -> Iterator[IO[bytes]]:
        with self.path.open(mode) as handle:
            fcntl.flock(handle.fileno(), operation)
            try:
                yield handle
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _parse(self, line: bytes, line_no: int) -> LedgerEntry:
        where = f"line {line_no}" if line_no else "last line"
        try:
            raw = json.loads(line)
            if not isinstance(raw, dict) or set(raw) != set(_FIELDS):
                raise ValueError(f"fields {sorted(raw) if isinstance(raw, dict) else raw!r}")
            item = LedgerEntry(**raw)
            if not isinstance(item.seq, int) or not isinstance(item.entry, dict):
                raise TypeError("seq must be an integer and entry an object")
        except (ValueError, TypeError) as exc:
            raise VerificationError(f"{self.path}: {where} is not a ledger entry: {exc}") from exc
        return item


def _last_line(handle: IO[bytes]) -> bytes:
    """The last non-empty line, read backwards so appends stay O(1) in ledger length."""
    end = handle.seek(0, os.SEEK_END)
    chunk, data = 4096, b""
    position = end
    while position > 0:
        step = min(chunk, position)
        position -= step
        handle.seek(position)
        data = handle.read(step) + data
        stripped = data.rstrip(b"\n")
        if b"\n" in stripped:
            return stripped.rsplit(b"\n", 1)[1]
    return data.rstrip(b"\n")
