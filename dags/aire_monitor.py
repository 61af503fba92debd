"""
### aire_monitor

Watches what the champion scores. Runs on each scored batch (the `aire_scored` Asset that
`aire_score` updates) and on a cron (`AIRE_MONITOR_CRON`, hourly): from the batches'
summaries it computes prediction drift against the model's outputs on its reference, input
drift (worst feature), the uncertain share, the ODD-violation rate and scoring freshness,
evaluates them as SLOs with error budgets and burn rates, and opens one incident per breached
objective (deduplicated while it stays active) with a pre-filled postmortem.

**Feedback**: trigger it with the `feedback` Param set to a labeled batch (path or s3://) and
that batch is announced on the `aire_landing` Asset, which starts an `aire_retrain` run on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from aire.home import PROJECT_ROOT
from aire_airflow.callbacks import task_defaults
from aire_airflow.schedules import landing_asset
from aire_airflow.scoring import monitor_schedule

DEFAULT_CONFIG = str(PROJECT_ROOT / "include" / "config" / "credit_risk.yaml")
LANDING = landing_asset()


@dag(
    dag_id=Path(__file__).stem,
    doc_md=__doc__,
    schedule=monitor_schedule(),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["aire", "monitoring"],
    params={
        "config": Param(DEFAULT_CONFIG, type="string", minLength=1, description="Pipeline config (YAML path)"),
        "feedback": Param("", type="string", description="A labeled batch to retrain on (empty: none)"),
    },
    default_args=task_defaults(),
)
def aire_monitor() -> None:
    @task
    def check_slos() -> dict[str, Any]:
        from aire_airflow.scoring import monitor_from_context

        return monitor_from_context(get_current_context())

    @task(outlets=[LANDING])
    def forward_feedback() -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from aire_airflow.scoring import forward_feedback as forward

        announced = forward(get_current_context(), LANDING)
        if announced is None:
            raise AirflowSkipException("no feedback batch given")
        return announced

    check_slos()
    forward_feedback()


aire_monitor()
