"""The ``aire_incidents`` table: one row per incident, the same schema on SQLite and PostgreSQL.

Race safety lives here: ``active_key`` holds the dedup key while the incident is active
(open or acknowledged) and NULL once it is resolved, under a UNIQUE constraint (NULLs never
collide on either backend), so two processes can never both hold an active incident for
one key. ``aire.incidents.store.IncidentStore`` is the only writer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Engine, Integer, String, Text, create_engine, event, inspect
from sqlalchemy import Enum as SqlEnum
from sqlalchemy import text as sql_text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from aire.incidents.types import (
    MAX_KEY_LENGTH,
    Incident,
    IncidentSource,
    IncidentStoreError,
    Severity,
    Status,
    TimelineEvent,
)

# A flapping failure can recur thousands of times; the count stays exact but the timeline
# keeps only the newest recurrences so the JSON column does not grow without bound.
MAX_TIMELINE_EVENTS = 200
_SCHEMA_LOCK_ID = 0x41495245  # "AIRE": PostgreSQL advisory lock that serialises create_all


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; SQLite has no time zones, so it stores naive UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)  # callers pass aware times only (see IncidentStore._now)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


def _enum(kind: type[Severity | Status]) -> SqlEnum:
    # Not native enums: CREATE TYPE on PostgreSQL would be one more thing to race on.
    return SqlEnum(kind, native_enum=False, values_callable=lambda e: [m.value for m in e])


class IncidentRow(Base):
    __tablename__ = "aire_incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), index=True)
    # Equals dedup_key while open/acknowledged, NULL once resolved: the race guard.
    active_key: Mapped[str | None] = mapped_column(String(MAX_KEY_LENGTH), unique=True)
    pipeline: Mapped[str] = mapped_column(String(200), index=True)
    title: Mapped[str] = mapped_column(Text)
    severity: Mapped[Severity] = mapped_column(_enum(Severity))
    status: Mapped[Status] = mapped_column(_enum(Status), index=True)
    source: Mapped[dict[str, Any]] = mapped_column(JSON)
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    count: Mapped[int] = mapped_column(Integer)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    postmortem: Mapped[str | None] = mapped_column(Text)
    timeline: Mapped[list[dict[str, str]]] = mapped_column(JSON)

    def to_incident(self) -> Incident:
        return Incident(
            id=self.id, dedup_key=self.dedup_key, pipeline=self.pipeline, title=self.title,
            severity=Severity(self.severity), status=Status(self.status),
            source=IncidentSource.parse(self.source), first_seen=self.first_seen,
            last_seen=self.last_seen, count=self.count, evidence=dict(self.evidence),
            postmortem=self.postmortem,
            timeline=tuple(TimelineEvent.from_dict(e) for e in self.timeline))

    def add_event(self, time: datetime, kind: str, detail: str) -> None:
        # Reassign, never mutate: the ORM does not see in-place changes to a JSON column.
        events = [*self.timeline, TimelineEvent(time, kind, detail).to_dict()]
        while len(events) > MAX_TIMELINE_EVENTS:
            oldest_repeat = next((i for i, e in enumerate(events) if e["event"] == "recurred"), 1)
            del events[oldest_repeat]
        self.timeline = events


class PostmortemRow(Base):
    """An incident's postmortem as written, kept with it: the page renders it from here on any
    host (the file in a worker's home, and its object-store copy, are for people to edit)."""

    __tablename__ = "aire_postmortems"

    incident_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    text: Mapped[str] = mapped_column(Text)
    written: Mapped[datetime] = mapped_column(UtcDateTime)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created and writers queue."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    in_memory = parsed.database in (None, "", ":memory:")
    if not in_memory:
        folder = Path(str(parsed.database)).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise IncidentStoreError(f"incident store: cannot create {folder}: {err}") from err
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                           **({"poolclass": StaticPool} if in_memory else {}))

    # SQLite's default deferred BEGIN lets two writers both read, then one fails with
    # "database is locked" on upgrade. BEGIN IMMEDIATE takes the write lock up front,
    # so concurrent writers queue (up to the 30 s busy timeout) instead.
    @event.listens_for(engine, "connect")
    def _driver_leaves_begin_to_us(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_schema(engine: Engine, shown_url: str) -> None:
    """Create the table if missing; safe when several processes start at once."""
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # DDL is transactional on PostgreSQL; the lock makes a second process
                # wait and then find the table instead of failing on CREATE TABLE.
                connection.execute(sql_text("SELECT pg_advisory_xact_lock(:id)"),
                                   {"id": _SCHEMA_LOCK_ID})
            Base.metadata.create_all(connection, checkfirst=True)
    except SQLAlchemyError as err:
        if not inspect(engine).has_table(IncidentRow.__tablename__):
            raise IncidentStoreError(
                f"incident store {shown_url}: cannot create schema: {err}") from err
