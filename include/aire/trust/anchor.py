"""The ledger's head, kept outside the ledger file: one row in the database.

The hash chain shows an edited, deleted or reordered entry, but not a file cut short at an
entry boundary, nor a deleted file: a shorter chain is still a chain. So each append also
records the new head (its seq, hash and whole line) in the database that holds incidents
and locks, which someone who can write to MLflow or the run store cannot reach, and every
load compares the file with it (``aire.trust.ledger``).

The row is written before the line. A crash between the two leaves the file one entry
behind the row; the row holds that entry, so the next load writes it back instead of
accepting a shorter file (which is also what cutting the last line looks like). A file
ahead of the row was appended to behind the ledger's back: refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Protocol

from aire.errors import AireError

if TYPE_CHECKING:
    from sqlalchemy import MetaData, Table
    from sqlalchemy.engine import Engine

TABLE = "aire_ledger_head"


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str
    line: bytes  # the head entry's canonical JSON line, without the newline


class Anchor(Protocol):
    def read(self) -> Head | None: ...

    def write(self, head: Head) -> None: ...


class DatabaseAnchor:
    """The head of the ledger at ``ledger_id`` (its path), in a SQLite or PostgreSQL table."""

    def __init__(self, url: str, ledger_id: str) -> None:
        self.url, self.ledger_id = url, ledger_id

    def read(self) -> Head | None:
        from sqlalchemy import select
        from sqlalchemy.exc import SQLAlchemyError

        table = self._table
        try:
            with self._engine.connect() as conn:
                row = conn.execute(select(table.c.seq, table.c.hash, table.c.line)
                                   .where(table.c.ledger == self.ledger_id)).first()
        except SQLAlchemyError as exc:
            # Without the head nothing can tell a cut ledger from a whole one: fail, and retry.
            raise AireError(f"ledger head in {self._where}: cannot read it: {type(exc).__name__}") from None
        return None if row is None else Head(int(row.seq), str(row.hash), str(row.line).encode("utf-8"))

    def write(self, head: Head) -> None:
        from sqlalchemy import insert, update
        from sqlalchemy.exc import SQLAlchemyError

        table = self._table
        values = {"seq": head.seq, "hash": head.hash, "line": head.line.decode("utf-8"),
                  "updated": datetime.now(UTC).isoformat(timespec="seconds")}
        try:
            # Writers are serialised by the ledger's file lock, so update-then-insert cannot race.
            with self._engine.begin() as conn:
                done = conn.execute(update(table).where(table.c.ledger == self.ledger_id).values(**values))
                if not done.rowcount:
                    conn.execute(insert(table).values(ledger=self.ledger_id, **values))
        except SQLAlchemyError as exc:
            raise AireError(f"ledger head in {self._where}: cannot write it: {type(exc).__name__}") from None

    @property
    def _where(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    @cached_property
    def _engine(self) -> Engine:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url
        from sqlalchemy.pool import NullPool

        parsed = make_url(self.url)
        if parsed.drivername == "postgresql":  # SQLAlchemy's default driver (psycopg2) is not installed
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            from pathlib import Path

            Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
        sqlite = parsed.get_backend_name() == "sqlite"
        engine = create_engine(parsed, poolclass=NullPool, **({"connect_args": {"timeout": 30}} if sqlite else {}))
        from sqlalchemy.exc import SQLAlchemyError

        try:
            self._table.metadata.create_all(engine, checkfirst=True)
        except SQLAlchemyError:
            pass  # created by a concurrent writer between the check and the create; a real fault shows on use
        return engine

    @cached_property
    def _table(self) -> Table:
        from sqlalchemy import MetaData

        return head_table(MetaData())


def head_table(metadata: MetaData) -> Table:
    """The ``aire_ledger_head`` table (one row per ledger) in ``metadata``; the database ledger
    (``aire.trust.ledger_db``) keeps its head here too, under its own ledger id."""
    from sqlalchemy import Column, Integer, String, Table, Text

    return Table(TABLE, metadata, Column("ledger", String(1024), primary_key=True),
                 Column("seq", Integer, nullable=False), Column("hash", String(64), nullable=False),
                 Column("line", Text, nullable=False), Column("updated", String(40)))
