"""The reconciler: failed task instances that no failure callback turned into an incident.

Airflow runs ``on_failure_callback`` inside the task's own process. When that process is
SIGKILLed (the kernel's out-of-memory killer, a lost worker), the supervisor or the
scheduler still marks the task instance FAILED, but no callback ever runs. The
aire_incident_sweep DAG calls ``failed_task_instances`` then ``sweep_failures``: every
final failure with no incident under the callback's dedup key (dag, run, task, try) gets
one, of kind ``incident_sweep``. A failure the callback already recorded is left alone, so
the sweep never counts a failure twice; a grace period keeps it from racing a callback
that is still running.

Airflow's metadata is read with one read-only SELECT over ``task_instance`` joined to
``dag_run`` (columns stable across Airflow 3 releases), through SQLAlchemy Core: no Airflow
import, so this module and its tests run without a scheduler.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from aire.errors import AireError, ConfigError
from aire.home import Home
from aire.incidents.sources import champion_of, evidence_from_run, open_incident
from aire.incidents.store import IncidentStore, Severity, SourceKind, dedup_key

if TYPE_CHECKING:
    from aire.config import PipelineConfig
    from aire.incidents.notifiers import ChannelResolver

NO_CALLBACK = ("the task instance ended FAILED but no failure callback recorded it: its process "
               "was probably killed (out-of-memory kill, SIGKILL, lost worker) before the "
               "callback could run")

_metadata = MetaData()
_task_instance = Table(
    "task_instance", _metadata, Column("dag_id", String), Column("run_id", String),
    Column("task_id", String), Column("map_index", Integer), Column("try_number", Integer),
    Column("max_tries", Integer), Column("state", String), Column("start_date", DateTime),
    Column("end_date", DateTime), Column("hostname", String), Column("executor", String))
_dag_run = Table("dag_run", _metadata, Column("dag_id", String), Column("run_id", String),
                 Column("conf", JSON))


@dataclass(frozen=True)
class FailedTaskInstance:
    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    map_index: int = -1
    max_tries: int | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    hostname: str | None = None
    executor: str | None = None
    conf: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The key the failure callback uses (``aire.incidents.sources.record_task_failure``)."""
        return dedup_key(self.dag_id, self.run_id, self.task_id, self.try_number)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        for name in ("start_date", "end_date"):
            record[name] = record[name].isoformat() if record[name] else None
        return record


@dataclass(frozen=True)
class SweepResult:
    examined: int
    already_recorded: int
    opened: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"examined": self.examined, "already_recorded": self.already_recorded,
                "opened": list(self.opened)}


def failed_task_instances(db_url: str, *, since: datetime, until: datetime,
                          dag_id_prefix: str = "aire") -> list[FailedTaskInstance]:
    """FAILED task instances of DAGs whose id starts with the prefix, ended in [since, until]."""
    engine = create_engine(db_url)
    try:
        sqlite = engine.dialect.name == "sqlite"
        # Airflow stores naive UTC on SQLite and timestamptz elsewhere.
        low, high = ((t.astimezone(UTC).replace(tzinfo=None) if sqlite else t)
                     for t in (since, until))
        ti, dr = _task_instance.c, _dag_run.c
        query = (select(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number,
                        ti.max_tries, ti.start_date, ti.end_date, ti.hostname, ti.executor,
                        dr.conf)
                 .join_from(_task_instance, _dag_run,
                            (dr.dag_id == ti.dag_id) & (dr.run_id == ti.run_id))
                 .where(ti.state == "failed", ti.end_date >= low, ti.end_date <= high,
                        ti.dag_id.startswith(dag_id_prefix, autoescape=True))
                 .order_by(ti.end_date))
        with engine.connect() as connection:
            rows = connection.execute(query).all()
    except SQLAlchemyError as err:
        raise AireError(f"cannot read failed task instances from the Airflow metadata "
                        f"database {engine.url.render_as_string(hide_password=True)}: "
                        f"{err}") from err
    finally:
        engine.dispose()
    return [FailedTaskInstance(
        dag_id=r.dag_id, run_id=r.run_id, task_id=r.task_id, try_number=int(r.try_number),
        map_index=int(r.map_index), max_tries=r.max_tries, start_date=_utc(r.start_date),
        end_date=_utc(r.end_date), hostname=r.hostname or None, executor=r.executor,
        conf=dict(r.conf) if isinstance(r.conf, dict) else {}) for r in rows]


def sweep_failures(failed: list[FailedTaskInstance], *, home: Home | None = None,
                   default_config: str | None = None, log_url_base: str | None = None,
                   resolver: ChannelResolver | None = None) -> SweepResult:
    """Open an incident for each failure no incident records yet; returns what it did."""
    home = home or Home.from_env()
    opened: list[dict[str, Any]] = []
    recorded = 0
    with IncidentStore(home.incidents_db_url) as store:
        for ti in failed:
            if store.by_key(ti.key):
                recorded += 1
                continue
            opened.append({**_open(home, ti, default_config, log_url_base, resolver),
                           "task": ti.to_dict()})
    return SweepResult(len(failed), recorded, tuple(opened))


def _open(home: Home, ti: FailedTaskInstance, default_config: str | None,
          log_url_base: str | None, resolver: ChannelResolver | None) -> dict[str, Any]:
    config_path = ti.conf.get("config") or default_config
    config = _config(config_path)
    pipeline = config.name if config else "unknown"
    log_url = _log_url(log_url_base, ti)
    evidence = evidence_from_run(home.run_dir(pipeline, ti.run_id) if config else None)
    evidence.update({
        "failed_task": {**ti.to_dict(), "log_url": log_url}, "log_url": log_url,
        "detected_by": "aire_incident_sweep", "exception": {"type": "NoFailureCallback",
                                                            "message": NO_CALLBACK},
        "batch": ti.conf.get("batch"), "config": config_path,
        "champion": champion_of(home, pipeline),
    })
    return open_incident(
        home, ti.key, pipeline=pipeline,
        title=f"{pipeline}: {ti.task_id} failed in {ti.dag_id} run {ti.run_id} "
              f"(no callback ran; found by the incident sweep)",
        severity=Severity.HIGH,
        source={"kind": SourceKind.INCIDENT_SWEEP.value, "dag_id": ti.dag_id,
                "run_id": ti.run_id, "task_id": ti.task_id, "try_number": ti.try_number},
        evidence=evidence, notify=config.notify if config else None, resolver=resolver)


def _config(path: str | None) -> PipelineConfig | None:
    from aire.config import load_config

    try:
        return load_config(path) if path else None
    except ConfigError:
        return None


def _log_url(base: str | None, ti: FailedTaskInstance) -> str | None:
    """The Airflow 3 UI's task log page, as ``TaskInstance.log_url`` builds it."""
    if not base:
        return None
    mapped = f"/mapped/{ti.map_index}" if ti.map_index >= 0 else ""
    return (f"{base.rstrip('/')}/dags/{ti.dag_id}/runs/{quote(ti.run_id)}/tasks/{ti.task_id}"
            f"{mapped}?try_number={ti.try_number}")


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
