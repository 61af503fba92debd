"""
### aire_incident_sweep

AIRE's reconciler, every 10 minutes:

1. **reconcile_failures**: FAILED task instances of `aire*` DAGs with no incident (a task
   killed by SIGKILL or the OOM killer never runs its failure callback) get one, under the
   callback's dedup key, so nothing counts twice; failures younger than `grace_minutes`
   are left to a callback that may still be running.
2. **check_slos**: every pipeline config's SLOs; a breach opens (or counts) an incident.
3. **deliver_notifications**: notifications still owed (a receiver that was down, an
   incident opened with no Airflow connection at hand) go out now.

Airflow's metadata is read with one read-only SELECT (task_instance joined to dag_run) via
the `metadata_conn_id` connection, else this worker's `[database] sql_alchemy_conn`:
Airflow 3 keeps tasks off its ORM session, and the REST API needs an API server and
credentials, which a read of two tables does not.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from aire.home import PROJECT_ROOT
from aire_airflow.callbacks import task_defaults
from aire_airflow.connections import notifier_channel

CONFIGS = sorted(str(p) for p in (PROJECT_ROOT / "include" / "config").glob("*.yaml"))


@dag(
    dag_id=Path(__file__).stem,
    doc_md=__doc__,
    schedule=timedelta(minutes=10),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["aire", "incidents"],
    params={
        "configs": Param(CONFIGS, type="array", description="Pipeline configs (YAML paths)"),
        "default_config": Param(CONFIGS[0] if CONFIGS else None, type=["null", "string"],
                                description="Config of a failed run whose conf names none"),
        "dag_id_prefix": Param("aire", type="string", description="DAGs whose failures count"),
        "lookback_hours": Param(24, type="integer", minimum=1, maximum=24 * 30),
        "grace_minutes": Param(5, type="integer", minimum=0, maximum=24 * 60),
        "metadata_conn_id": Param(None, type=["null", "string"],
                                  description="Connection to the Airflow metadata DB"),
    },
    default_args=task_defaults(retry_delay_seconds=30),
)
def aire_incident_sweep() -> None:
    @task
    def reconcile_failures() -> dict[str, Any]:
        from airflow.configuration import conf

        from aire.incidents.sweep import failed_task_instances, sweep_failures

        params, now = get_current_context()["params"], pendulum.now("UTC")
        failed = failed_task_instances(
            _metadata_url(params["metadata_conn_id"]),
            since=now - timedelta(hours=params["lookback_hours"]),
            until=now - timedelta(minutes=params["grace_minutes"]),
            dag_id_prefix=params["dag_id_prefix"])
        # As TaskInstance.log_url builds it: a relative or unset base_url means localhost:8080.
        base = conf.get("api", "base_url", fallback=None) or "/"
        base = f"http://localhost:8080{base}" if base.startswith("/") else base
        return sweep_failures(failed, default_config=params["default_config"],
                              log_url_base=base, resolver=notifier_channel).to_dict()

    @task
    def check_slos() -> dict[str, Any]:
        from aire.config import load_config
        from aire.reliability.breaches import record_slo_breaches
        from aire.reliability.history import slo_status

        summary = {}
        for path in get_current_context()["params"]["configs"]:
            config = load_config(path)
            report = slo_status(config)
            record_slo_breaches(config, report, resolver=notifier_channel)
            summary[config.name] = {o.name: o.status for o in report.objectives}
        return summary

    @task
    def deliver_notifications() -> list[dict[str, Any]]:
        from aire.config import load_config
        from aire.home import Home
        from aire.incidents.notifiers import deliver_pending
        from aire.incidents.store import IncidentStore

        params, now = get_current_context()["params"], pendulum.now("UTC")
        notify = {c.name: c.notify for c in (load_config(p) for p in params["configs"])}
        with IncidentStore(Home.from_env().incidents_db_url) as store:
            return [d.to_dict() for d in deliver_pending(
                store, notify, notifier_channel, since=now - timedelta(hours=params["lookback_hours"]),
                grace=timedelta(minutes=params["grace_minutes"]), now=now)]

    [reconcile_failures(), check_slos()] >> deliver_notifications()


def _metadata_url(conn_id: str | None) -> str:
    """A SQLAlchemy URL for the metadata DB: the named connection, else this worker's config."""
    if conn_id:
        from airflow.sdk import Connection

        uri = Connection.get(conn_id).get_uri()
        return str(uri).replace("postgres://", "postgresql+psycopg://", 1)
    from airflow.configuration import conf

    return str(conf.get("database", "sql_alchemy_conn"))


aire_incident_sweep()
