"""
### aire_landing

Watches the landing prefix (`AIRE_LANDING_URI`, for example `s3://aire/landing/credit-risk/`,
read through the Airflow connection `AIRE_LANDING_CONN_ID`) and announces the newest CSV or
Parquet batch that landed since its last announcement as an event of the `aire_landing`
Asset, with the batch's URI in the event's extra. `aire_retrain` is scheduled on that Asset:
each announcement starts a retraining run on that batch.

Nothing new under the prefix: the task is skipped and no event is emitted. Polls on the
cron `AIRE_LANDING_POLL` (UTC, every 10 minutes by default); trigger it by hand to look now.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task

from aire_airflow.callbacks import task_defaults
from aire_airflow.schedules import landing_asset

LANDING = landing_asset()


@dag(
    dag_id=Path(__file__).stem,
    doc_md=__doc__,
    schedule=CronTriggerTimetable(os.environ.get("AIRE_LANDING_POLL") or "*/10 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["aire", "landing"],
    default_args=task_defaults(retry_delay_seconds=30),
)
def aire_landing() -> None:
    # The Asset is an inlet too: its latest event says what was announced last.
    @task(inlets=[LANDING], outlets=[LANDING])
    def announce_batch() -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from aire_airflow.schedules import landed_batch

        context = get_current_context()
        previous = context["inlet_events"][LANDING].ascending(False).limit(1)
        found = landed_batch(LANDING.uri, os.environ.get("AIRE_LANDING_CONN_ID"),
                             previous[0].extra if len(previous) else None)
        if found is None:
            raise AirflowSkipException(f"no new batch under {LANDING.uri}")
        context["outlet_events"][LANDING].extra = found
        return found

    announce_batch()


aire_landing()
