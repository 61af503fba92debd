"""The ledger of a home that uses services: the same hash chain, as rows in PostgreSQL.

Workers on several hosts share no disk, so a ledger file per home would be one chain per
host. A home whose incident database is PostgreSQL (``Home.uses_services``) keeps its
ledger in that database instead, in ``aire_ledger``: one row per entry with the file
ledger's fields (``seq``, ``time``, ``kind``, ``entry``, ``prev_hash``, ``hash``), hashed
by the same ``entry_hash``, so an entry reads and verifies the same wherever it was kept.
``entry`` is stored as its canonical JSON text, exactly the bytes that were hashed.

Appends are serialised by the database: each runs in one transaction that first takes
``pg_advisory_xact_lock`` on the ledger, checks the whole chain, inserts the next row and
moves the head (``aire_ledger_head``, the table the file ledger anchors in) before it
commits; ``seq`` is the primary key and ``prev_hash`` is unique, so even a writer that
skipped the lock could not fork the chain, only fail. A lookup reads the rows and the head
in one snapshot (REPEATABLE READ). As with the file ledger, an edited, deleted or reordered
row is named by the next lookup or append, and a chain whose tip is not the recorded head
(rows cut off the end, or added without the ledger) is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from aire.errors import AireError, ConfigError, VerificationError
from aire.home import is_postgresql
from aire.trust.anchor import head_table
from aire.trust.ledger import Ledger, LedgerEntry, _canonical

if TYPE_CHECKING:
    from sqlalchemy import Connection, Table
    from sqlalchemy.engine import Engine

TABLE = "aire_ledger"
HEAD_ID = "postgresql:aire_ledger"  # its row in aire_ledger_head (file ledgers use their path)
LOCK_WAIT = "60s"  # an append waits this long for another writer, then fails (and is retried)


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


_APPEND_LOCK = _lock_key("aire.ledger")
_SCHEMA_LOCK = _lock_key("aire.ledger.schema")


class DatabaseLedger(Ledger):
    """The ledger in the PostgreSQL database at ``url`` (the home's incident database)."""

    def __init__(self, url: str) -> None:
        if not is_postgresql(url):
            raise ConfigError(f"the database ledger needs a PostgreSQL URL (AIRE_INCIDENTS_DB), got {url[:40]!r}")
        self.url = url

    @property
    def location(self) -> str:
        from sqlalchemy.engine import make_url

        return f"{make_url(self.url).render_as_string(hide_password=True)} (table {TABLE})"

    @property
    def backend(self) -> str:
        return "postgresql"

    def append(self, kind: str, entry: dict[str, Any]) -> LedgerEntry:
        """Add one entry at the end of a chain that verifies, under the database's lock."""
        from sqlalchemy import insert, text, update
        from sqlalchemy.exc import SQLAlchemyError

        entry = self._prepared(kind, entry)
        rows, heads = self._tables
        try:
            with self._engine.begin() as conn:
                conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'"))
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK})
                chain = self._checked(conn)  # nothing is appended to a chain that does not verify
                new = self._next(chain[-1] if chain else None, kind, entry)
                conn.execute(insert(rows).values(
                    seq=new.seq, time=new.time, kind=new.kind, entry=_canonical(new.entry).decode("utf-8"),
                    prev_hash=new.prev_hash, hash=new.hash))
                head = {"seq": new.seq, "hash": new.hash, "line": _canonical(new.to_dict()).decode("utf-8"),
                        "updated": datetime.now(UTC).isoformat(timespec="seconds")}
                if not conn.execute(update(heads).where(heads.c.ledger == HEAD_ID).values(**head)).rowcount:
                    conn.execute(insert(heads).values(ledger=HEAD_ID, **head))
        except SQLAlchemyError as exc:
            # A lost connection, a lock wait that timed out, a row another writer added: retry.
            raise AireError(f"ledger {self.location}: cannot append {kind}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:200]}") from None
        return new

    def entries(self) -> list[LedgerEntry]:
        """Every entry, in seq order, parsed but not checked (see ``read`` and ``verify``)."""
        with self._snapshot() as conn:
            return self._rows(conn)

    def read(self) -> list[LedgerEntry]:
        """Every entry, once the chain and its head verify; raises VerificationError."""
        with self._snapshot() as conn:
            return self._checked(conn)

    # --- checking -------------------------------------------------------------------------
    def _checked(self, conn: Connection) -> list[LedgerEntry]:
        from sqlalchemy import select

        chain = self._rows(conn)
        self._verify_chain(chain)
        heads = self._tables[1]
        head = conn.execute(select(heads.c.seq, heads.c.hash).where(heads.c.ledger == HEAD_ID)).first()
        tip = chain[-1] if chain else None
        if head is None and tip is None:
            return chain
        if head is not None and tip is not None and (tip.seq, tip.hash) == (int(head.seq), str(head.hash)):
            return chain
        found = f"seq {tip.seq} ({tip.hash[:12]}…)" if tip else "no entries"
        recorded = f"seq {head.seq} ({str(head.hash)[:12]}…)" if head is not None else "missing"
        raise VerificationError(
            f"{self.location}: the ledger's last entry is {found} but its recorded head is {recorded}: "
            "entries were deleted, or added or the head changed without the ledger")

    def _rows(self, conn: Connection) -> list[LedgerEntry]:
        from sqlalchemy import select

        rows = self._tables[0]
        result = conn.execute(select(rows.c.seq, rows.c.time, rows.c.kind, rows.c.entry, rows.c.prev_hash,
                                     rows.c.hash).order_by(rows.c.seq))
        return [self._parse(row) for row in result]

    def _parse(self, row: Any) -> LedgerEntry:
        try:
            entry = json.loads(row.entry)
            if not isinstance(entry, dict):
                raise TypeError("entry must be a JSON object")
        except (ValueError, TypeError) as exc:
            raise VerificationError(f"{self.location}: row seq {row.seq} is not a ledger entry: {exc}") from exc
        return LedgerEntry(int(row.seq), str(row.time), str(row.kind), entry, str(row.prev_hash), str(row.hash))

    # --- the database ---------------------------------------------------------------------
    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """A transaction whose reads all see one snapshot (the rows and the head agree)."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self._engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, \
                    conn.begin():
                yield conn
        except SQLAlchemyError as exc:
            # Without the rows nothing can be checked: fail, and retry.
            raise AireError(f"ledger {self.location}: cannot read it: {type(exc).__name__}") from None

    @cached_property
    def _tables(self) -> tuple[Table, Table]:
        from sqlalchemy import Column, Integer, MetaData, String, Table, Text

        metadata = MetaData()
        rows = Table(TABLE, metadata,
                     Column("seq", Integer, primary_key=True, autoincrement=False),
                     Column("time", String(40), nullable=False), Column("kind", String(100), nullable=False),
                     Column("entry", Text, nullable=False),
                     Column("prev_hash", String(64), nullable=False, unique=True),
                     Column("hash", String(64), nullable=False, unique=True))
        return rows, head_table(metadata)

    @cached_property
    def _engine(self) -> Engine:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import SQLAlchemyError
        from sqlalchemy.pool import NullPool

        parsed = make_url(self.url)
        if parsed.drivername == "postgresql":  # SQLAlchemy's default driver (psycopg2) is not installed
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(parsed, poolclass=NullPool)
        rows = self._tables[0]
        try:
            with engine.begin() as conn:
                # DDL is transactional here: a second process waits, then finds the tables.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
                rows.metadata.create_all(conn, checkfirst=True)
        except SQLAlchemyError as exc:
            raise AireError(f"ledger {self.location}: cannot create its tables: {type(exc).__name__}") from None
        return engine
