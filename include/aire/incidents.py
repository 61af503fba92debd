"""Incident store: one row per failure, deduplicated, on SQLite or PostgreSQL.

A failure callback calls ``IncidentStore(url).record(key, ...)``. While an incident with
that dedup key is active (open or acknowledged) and was last seen within the window, a
repeat only bumps its count; otherwise a new incident opens. Race safety comes from the
``active_key`` column: it holds the dedup key while the incident is active and NULL once
it is resolved, under a UNIQUE constraint (NULLs never collide on either backend), so two
processes can never both hold an active incident for one key. The loser of an insert race
gets an IntegrityError and retries, finding the winner's row.

State machine: open -> acknowledged -> resolved, or open -> resolved. Any other move
(acknowledging twice, resolving twice) raises ``IncidentStateError``: a second resolve
usually means two people work the same incident, which they should hear about.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    Integer,
    String,
    Text,
    create_engine,
    event,
    func,
    inspect,
    select,
)
from sqlalchemy import Enum as SqlEnum
from sqlalchemy import text as sql_text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from aire.errors import AireError, InputError

MAX_KEY_LENGTH = 255
# A flapping failure can recur thousands of times; the count stays exact but the timeline
# keeps only the newest recurrences so the JSON column does not grow without bound.
MAX_TIMELINE_EVENTS = 200
_RECORD_ATTEMPTS = 5
_SNAKE_CASE = re.compile(r"[a-z][a-z0-9_]*")
_SCHEMA_LOCK_ID = 0x41495245  # "AIRE": PostgreSQL advisory lock that serialises create_all


class Severity(str, Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Status(str, Enum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class SourceKind(str, Enum):
    """Kinds the pipeline records; ``IncidentSource.kind`` also takes other snake_case names."""

    TASK_FAILURE = "task_failure"
    GATE_REJECTION = "gate_rejection"
    SIGNATURE_FAILURE = "signature_failure"
    VALIDATION_FAILURE = "validation_failure"


_SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.HIGH: 1, Severity.MEDIUM: 2, Severity.LOW: 3}


class UnknownIncidentError(InputError):
    """No incident has the given id."""


class IncidentStateError(InputError):
    """A transition the state machine does not allow (e.g. resolving a resolved incident)."""


class IncidentStoreError(AireError):
    """The database failed (unreachable, locked too long, schema missing); names the URL."""


@dataclass(frozen=True)
class IncidentSource:
    """Where a failure came from; the Airflow fields are None outside a task."""

    kind: str
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    try_number: int | None = None

    def __post_init__(self) -> None:
        kind = self.kind.value if isinstance(self.kind, Enum) else self.kind
        if not isinstance(kind, str) or not _SNAKE_CASE.fullmatch(kind):
            raise InputError(
                f"incident source: field 'kind' must be a snake_case name, got {kind!r}")
        object.__setattr__(self, "kind", kind)
        if self.try_number is not None and (
            not isinstance(self.try_number, int) or self.try_number < 1
        ):
            raise InputError(f"incident source: field 'try_number' must be an int >= 1, "
                             f"got {self.try_number!r}")

    @classmethod
    def parse(cls, raw: IncidentSource | Mapping[str, Any]) -> IncidentSource:
        if isinstance(raw, IncidentSource):
            return raw
        unknown = sorted(set(raw) - {"kind", "dag_id", "run_id", "task_id", "try_number"})
        if unknown or "kind" not in raw:
            raise InputError(
                f"incident source: unknown fields {unknown} or missing 'kind' in {raw!r}")
        return cls(**raw)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "dag_id": self.dag_id, "run_id": self.run_id,
                "task_id": self.task_id, "try_number": self.try_number}


@dataclass(frozen=True)
class TimelineEvent:
    time: datetime
    # opened | recurred | escalated | acknowledged | resolved | expired | note | postmortem
    event: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"time": self.time.isoformat(), "event": self.event, "detail": self.detail}

    @classmethod
    def from_dict(cls, raw: Mapping[str, str]) -> TimelineEvent:
        return cls(datetime.fromisoformat(raw["time"]), raw["event"], raw["detail"])


@dataclass(frozen=True)
class Incident:
    id: int
    dedup_key: str
    pipeline: str
    title: str
    severity: Severity
    status: Status
    source: IncidentSource
    first_seen: datetime
    last_seen: datetime
    count: int
    evidence: dict[str, Any]
    postmortem: str | None
    timeline: tuple[TimelineEvent, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "dedup_key": self.dedup_key, "pipeline": self.pipeline,
            "title": self.title, "severity": self.severity.value, "status": self.status.value,
            "source": self.source.to_dict(), "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(), "count": self.count,
            "evidence": self.evidence, "postmortem": self.postmortem,
            "timeline": [e.to_dict() for e in self.timeline],
        }


def dedup_key(*parts: str | int | None) -> str:
    """Stable sha256 of the parts; ``("a|b", "c")`` and ``("a", "b|c")`` never collide."""
    if not parts:
        raise InputError("dedup_key: give at least one part (e.g. dag_id, run_id, task_id, try)")
    for part in parts:
        if part is not None and not isinstance(part, (str, int)):
            raise InputError(
                f"dedup_key: parts must be str, int or None, got {type(part).__name__}")
    return hashlib.sha256(json.dumps(list(parts)).encode()).hexdigest()


def is_final_try(try_number: int, max_tries: int) -> bool:
    """True when a failed try will not be retried.

    ``max_tries`` is Airflow's ``TaskInstance.max_tries``, which counts *retries*, not tries:
    it starts as ``task.retries`` and becomes ``try_number + retries`` when a run is cleared.
    The server retries while ``try_number <= max_tries`` (execution API, Airflow 3.3).
    """
    if try_number < 1 or max_tries < 0:
        raise InputError(f"is_final_try: need try_number >= 1 and max_tries >= 0, "
                         f"got {try_number}, {max_tries}")
    return try_number > max_tries


class _UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; SQLite has no time zones, so it stores naive UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)  # callers pass aware times only (see _now)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Base(DeclarativeBase):
    pass


class _IncidentRow(_Base):
    __tablename__ = "aire_incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), index=True)
    # Equals dedup_key while open/acknowledged, NULL once resolved: the race guard.
    active_key: Mapped[str | None] = mapped_column(String(MAX_KEY_LENGTH), unique=True)
    pipeline: Mapped[str] = mapped_column(String(200), index=True)
    title: Mapped[str] = mapped_column(Text)
    # Not native enums: CREATE TYPE on PostgreSQL would be one more thing to race on.
    severity: Mapped[Severity] = mapped_column(
        SqlEnum(Severity, native_enum=False, values_callable=lambda e: [m.value for m in e]))
    status: Mapped[Status] = mapped_column(
        SqlEnum(Status, native_enum=False, values_callable=lambda e: [m.value for m in e]),
        index=True)
    source: Mapped[dict[str, Any]] = mapped_column(JSON)
    first_seen: Mapped[datetime] = mapped_column(_UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(_UtcDateTime)
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


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _merge(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge evidence; the newer value wins at the leaves."""
    merged = dict(old)
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _require_text(what: str, value: str, limit: int | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"incident: '{what}' must be a non-empty string, got {value!r}")
    if limit is not None and len(value) > limit:
        raise InputError(f"incident: '{what}' is longer than {limit} characters")
    return value


def _json_safe(what: str, value: Mapping[str, Any]) -> dict[str, Any]:
    try:  # round-trip: what the database would store is what the caller sees
        return dict(json.loads(json.dumps(dict(value), allow_nan=False)))
    except (TypeError, ValueError) as err:
        raise InputError(f"incident: '{what}' is not JSON-serialisable: {err}") from err


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _database_errors(
        method: Callable[Concatenate[IncidentStore, _P], _R],
) -> Callable[Concatenate[IncidentStore, _P], _R]:
    """Callers catch one type: database failures become IncidentStoreError with the URL."""

    @functools.wraps(method)
    def guarded(store: IncidentStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(store, *args, **kwargs)
        except SQLAlchemyError as err:
            raise IncidentStoreError(f"incident store {store.url}: {err}") from err

    return guarded


class IncidentStore:
    """Incidents in ``aire_incidents`` at ``url`` (any SQLAlchemy URL; SQLite or PostgreSQL)."""

    def __init__(self, url: str, *, clock: Callable[[], datetime] = _utcnow) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as err:
            raise InputError(f"incident store: cannot parse database URL {url!r}") from err
        self.url = parsed.render_as_string(hide_password=True)
        self._clock = clock
        self._engine = self._make_engine(url)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._schema_ready = False

    @staticmethod
    def _make_engine(url: str) -> Engine:
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

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise InputError(f"incident store: the clock must return timezone-aware times, "
                             f"got {now!r}")
        return now.astimezone(UTC)

    # --- schema -----------------------------------------------------------------------
    def _session(self) -> Session:
        if not self._schema_ready:
            self._create_schema()
        return self._sessions()

    def _create_schema(self) -> None:
        try:
            with self._engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    # DDL is transactional on PostgreSQL; the lock makes a second process
                    # wait and then find the table instead of failing on CREATE TABLE.
                    connection.execute(sql_text("SELECT pg_advisory_xact_lock(:id)"),
                                       {"id": _SCHEMA_LOCK_ID})
                _Base.metadata.create_all(connection, checkfirst=True)
        except SQLAlchemyError as err:
            if not inspect(self._engine).has_table(_IncidentRow.__tablename__):
                raise IncidentStoreError(
                    f"incident store {self.url}: cannot create schema: {err}") from err
        self._schema_ready = True

    # --- recording --------------------------------------------------------------------
    @_database_errors
    def record(self, dedup_key: str, *, pipeline: str, title: str, severity: Severity | str,
               source: IncidentSource | Mapping[str, Any], evidence: Mapping[str, Any],
               window: timedelta = timedelta(hours=24)) -> tuple[Incident, bool]:
        """Open an incident, or count a repeat of an active one; returns (incident, created)."""
        _require_text("dedup_key", dedup_key, MAX_KEY_LENGTH)
        _require_text("pipeline", pipeline, 200)
        _require_text("title", title)
        level = _parse(Severity, severity, "severity")
        origin = IncidentSource.parse(source)
        facts = _json_safe("evidence", evidence)
        if window <= timedelta(0):
            raise InputError(f"incident: 'window' must be positive, got {window}")
        for _attempt in range(_RECORD_ATTEMPTS):
            try:
                with self._session() as session, session.begin():
                    return self._record_once(session, dedup_key, pipeline, title, level,
                                             origin, facts, window)
            except IntegrityError:
                continue  # another process opened this key first; next pass finds its row
        raise IncidentStoreError(f"incident store {self.url}: could not record key {dedup_key!r} "
                        f"after {_RECORD_ATTEMPTS} attempts under contention")

    def _record_once(self, session: Session, key: str, pipeline: str, title: str,
                     level: Severity, origin: IncidentSource, facts: dict[str, Any],
                     window: timedelta) -> tuple[Incident, bool]:
        now = self._now()
        where = f"run {origin.run_id} try {origin.try_number}" if origin.run_id else origin.kind
        active = session.scalars(select(_IncidentRow).where(_IncidentRow.active_key == key)
                                 .with_for_update()).first()
        if active is not None and now - active.last_seen <= window:
            active.count += 1
            active.last_seen = now
            active.evidence = _merge(active.evidence, facts)
            active.add_event(now, "recurred", f"seen again ({where}); count {active.count}")
            if _SEVERITY_RANK[level] < _SEVERITY_RANK[Severity(active.severity)]:
                active.add_event(now, "escalated", f"{active.severity.value} -> {level.value}")
                active.severity = level
            session.flush()
            return active.to_incident(), False
        if active is not None:
            # Stale: nothing seen within the window. Close it so the new one can hold the key.
            active.status, active.active_key = Status.RESOLVED, None
            active.add_event(now, "expired", f"no recurrence within {window}; superseded")
            session.flush()
        row = _IncidentRow(
            dedup_key=key, active_key=key, pipeline=pipeline, title=title, severity=level,
            status=Status.OPEN, source=origin.to_dict(), first_seen=now, last_seen=now, count=1,
            evidence=facts, postmortem=None, timeline=[])
        row.add_event(now, "opened", f"{title} ({where})")
        session.add(row)
        session.flush()  # the INSERT that may raise IntegrityError when a racer won
        return row.to_incident(), True

    # --- reading ----------------------------------------------------------------------
    @_database_errors
    def get(self, incident_id: int) -> Incident:
        with self._session() as session:
            return self._row(session, incident_id).to_incident()

    @_database_errors
    def list(self, status: Status | str | None = None,
             pipeline: str | None = None) -> builtins.list[Incident]:
        """Newest first."""
        query = select(_IncidentRow).order_by(_IncidentRow.id.desc())
        if status is not None:
            query = query.where(_IncidentRow.status == _parse(Status, status, "status"))
        if pipeline is not None:
            query = query.where(_IncidentRow.pipeline == pipeline)
        with self._session() as session:
            return [row.to_incident() for row in session.scalars(query)]

    @_database_errors
    def count_open(self, pipeline: str | None = None) -> int:
        """Active incidents: open or acknowledged (acknowledged is still unresolved)."""
        query = select(func.count()).select_from(_IncidentRow).where(
            _IncidentRow.active_key.is_not(None))
        if pipeline is not None:
            query = query.where(_IncidentRow.pipeline == pipeline)
        with self._session() as session:
            return int(session.scalar(query) or 0)

    # --- changing ---------------------------------------------------------------------
    def acknowledge(self, incident_id: int, by: str) -> Incident:
        return self._change(incident_id, "acknowledged", f"by {_require_text('by', by)}",
                            allowed_from={Status.OPEN}, to=Status.ACKNOWLEDGED)

    def resolve(self, incident_id: int, by: str, note: str) -> Incident:
        detail = f"by {_require_text('by', by)}: {_require_text('note', note)}"
        return self._change(incident_id, "resolved", detail,
                            allowed_from={Status.OPEN, Status.ACKNOWLEDGED}, to=Status.RESOLVED)

    def note(self, incident_id: int, text: str) -> Incident:
        return self._change(incident_id, "note", _require_text("text", text))

    def set_postmortem(self, incident_id: int, location: str) -> Incident:
        return self._change(incident_id, "postmortem", _require_text("location", location),
                            postmortem=location)

    @_database_errors
    def _change(self, incident_id: int, kind: str, detail: str, *,
                allowed_from: set[Status] | None = None, to: Status | None = None,
                postmortem: str | None = None) -> Incident:
        with self._session() as session, session.begin():
            row = self._row(session, incident_id, lock=True)
            if allowed_from is not None and Status(row.status) not in allowed_from:
                raise IncidentStateError(f"incident {incident_id} is {row.status.value}; "
                                         f"cannot mark it {kind}")
            if to is not None:
                row.status = to
                row.active_key = None if to is Status.RESOLVED else row.dedup_key
            if postmortem is not None:
                row.postmortem = postmortem
            row.add_event(self._now(), kind, detail)
            session.flush()
            return row.to_incident()

    @staticmethod
    def _row(session: Session, incident_id: int, *, lock: bool = False) -> _IncidentRow:
        query = select(_IncidentRow).where(_IncidentRow.id == incident_id)
        row = session.scalars(query.with_for_update() if lock else query).first()
        if row is None:
            raise UnknownIncidentError(f"no incident with id {incident_id}")
        return row


_E = TypeVar("_E", Severity, Status)


def _parse(kind: type[_E], value: _E | str, what: str) -> _E:
    try:
        return kind(value)
    except ValueError as err:
        allowed = [member.value for member in kind]
        raise InputError(f"incident: '{what}' must be one of {allowed}, got {value!r}") from err
