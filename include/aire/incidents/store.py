"""Incident store: one row per failure, deduplicated, on SQLite or PostgreSQL.

A failure callback calls ``IncidentStore(url).record(key, ...)``. While an incident with
that dedup key is active (open or acknowledged) and was last seen within the window, a
repeat only bumps its count; otherwise a new incident opens. Race safety comes from the
``active_key`` column (see ``aire.incidents.schema``): the loser of an insert race gets an
IntegrityError and retries, finding the winner's row.

State machine: open -> acknowledged -> resolved, or open -> resolved. Any other move
(acknowledging twice, resolving twice) raises ``IncidentStateError``: a second resolve
usually means two people work the same incident, which they should hear about.

The value types live in ``aire.incidents.types`` and are re-exported here.
"""

from __future__ import annotations

import builtins
import functools
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from aire.errors import InputError
from aire.incidents.schema import IncidentRow as _IncidentRow
from aire.incidents.schema import PostmortemRow as _PostmortemRow
from aire.incidents.schema import create_schema, make_engine
from aire.incidents.types import (
    MAX_KEY_LENGTH,
    RUN_FAILURE_KINDS,
    Incident,
    IncidentSource,
    IncidentStateError,
    IncidentStoreError,
    Severity,
    SourceKind,
    Status,
    TimelineEvent,
    UnknownIncidentError,
    dedup_key,
    is_final_try,
)
from aire.incidents.types import parse_enum as _parse

__all__ = [
    "MAX_KEY_LENGTH", "RUN_FAILURE_KINDS", "Incident", "IncidentSource", "IncidentStateError",
    "IncidentStore", "IncidentStoreError", "Severity", "SourceKind", "Status", "TimelineEvent",
    "UnknownIncidentError", "dedup_key", "is_final_try",
]

_RECORD_ATTEMPTS = 5


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


def _aware(what: str, value: datetime) -> datetime:
    if value.tzinfo is None:
        raise InputError(f"incident store: '{what}' must be timezone-aware, got {value!r}")
    return value.astimezone(UTC)


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
        self._engine = make_engine(url)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._schema_ready = False

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
        create_schema(self._engine, self.url)
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
            if level.rank < Severity(active.severity).rank:
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
    def list(self, status: Status | str | None = None, pipeline: str | None = None,
             since: datetime | None = None) -> builtins.list[Incident]:
        """Newest first; ``since`` keeps incidents last seen at or after that time."""
        query = select(_IncidentRow).order_by(_IncidentRow.id.desc())
        if status is not None:
            query = query.where(_IncidentRow.status == _parse(Status, status, "status"))
        if pipeline is not None:
            query = query.where(_IncidentRow.pipeline == pipeline)
        if since is not None:
            query = query.where(_IncidentRow.last_seen >= _aware("since", since))
        with self._session() as session:
            return [row.to_incident() for row in session.scalars(query)]

    @_database_errors
    def by_key(self, dedup_key: str) -> builtins.list[Incident]:
        """Every incident ever recorded under the key, active or not, newest first."""
        query = (select(_IncidentRow).where(_IncidentRow.dedup_key == dedup_key)
                 .order_by(_IncidentRow.id.desc()))
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

    def mark_notified(self, incident_id: int, channel: str, action: str) -> Incident:
        """Record a delivered notification, so a redelivery pass knows not to send it again."""
        detail = f"{_require_text('channel', channel)}:{_require_text('action', action)}"
        return self._change(incident_id, "notified", detail)

    def set_postmortem(self, incident_id: int, location: str, text: str | None = None) -> Incident:
        """Where the stub was written, and (``text``) the stub itself, kept with the incident."""
        return self._change(incident_id, "postmortem", _require_text("location", location),
                            postmortem=location, postmortem_text=text)

    @_database_errors
    def postmortem_text(self, incident_id: int) -> str | None:
        """The postmortem stub kept with the incident; None for one written before it was kept."""
        with self._session() as session:
            row = session.get(_PostmortemRow, incident_id)
            return None if row is None else str(row.text)

    @_database_errors
    def _change(self, incident_id: int, kind: str, detail: str, *,
                allowed_from: set[Status] | None = None, to: Status | None = None,
                postmortem: str | None = None, postmortem_text: str | None = None) -> Incident:
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
            if postmortem_text is not None:
                session.merge(_PostmortemRow(incident_id=incident_id, text=postmortem_text, written=self._now()))
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


