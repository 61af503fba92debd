"""What an incident is: its value types, enums and errors, with no database in sight.

``store`` keeps them; ``sources`` opens them from failures; ``postmortem`` and
``notifiers`` read them. Everything here is importable without SQLAlchemy sessions or Airflow.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from aire.errors import AireError, InputError

MAX_KEY_LENGTH = 255
_SNAKE_CASE = re.compile(r"[a-z][a-z0-9_]*")


class Severity(str, Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 is the worst; a smaller rank escalates."""
        return list(Severity).index(self)


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
    # A failed task instance that no callback reported (killed worker, OOM kill), found
    # later by the aire_incident_sweep reconciler.
    INCIDENT_SWEEP = "incident_sweep"
    SLO_BREACH = "slo_breach"


# Failures of a pipeline run, as opposed to decisions (gate rejection) or budgets (SLO).
RUN_FAILURE_KINDS = frozenset({SourceKind.TASK_FAILURE.value, SourceKind.SIGNATURE_FAILURE.value,
                               SourceKind.VALIDATION_FAILURE.value,
                               SourceKind.INCIDENT_SWEEP.value})


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
    # | notified (detail "<channel>:<action>", one per delivered notification)
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

    @property
    def active(self) -> bool:
        return self.status is not Status.RESOLVED

    def notified(self) -> set[str]:
        """``"<channel>:<action>"`` for every notification delivered so far."""
        return {e.detail for e in self.timeline if e.event == "notified"}

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


_E = TypeVar("_E", Severity, Status)


def parse_enum(kind: type[_E], value: _E | str, what: str) -> _E:
    try:
        return kind(value)
    except ValueError as err:
        allowed = [member.value for member in kind]
        raise InputError(f"incident: '{what}' must be one of {allowed}, got {value!r}") from err
