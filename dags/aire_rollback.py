"""
### aire_rollback

Moves a pipeline's `champion` alias back to a known-good registered version, in one task:
the target's signature and digest are verified first (nothing moves if they do not
match), `previous` then points at the version it replaced, the move is appended to the
ledger, and it is noted on the pipeline's open incident if there is one.

Trigger it with **Params**: `config` (the pipeline YAML), `target` (a version number, or
`previous` for whatever the `previous` alias points at) and `reason`.
`aire rollback --config C (--to N | --previous)` does the same from a shell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import (
    Param,
    dag,
    get_current_context,
    task,
)

from aire.home import PROJECT_ROOT
from aire_airflow.callbacks import task_defaults

DEFAULT_CONFIG = str(PROJECT_ROOT / "include" / "config" / "credit_risk.yaml")


@dag(
    dag_id=Path(__file__).stem,
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["aire", "rollback"],
    params={
        "config": Param(DEFAULT_CONFIG, type="string", minLength=1, description="Pipeline config (YAML path)"),
        "target": Param("previous", type="string", pattern="^(previous|[1-9][0-9]*)$",
                        description="Version number to make champion, or 'previous'"),
        "reason": Param("", type="string", description="Why: recorded in the ledger and on the incident"),
    },
    default_args=task_defaults(max_retry_delay_minutes=2),
)
def aire_rollback() -> None:
    @task
    def rollback() -> dict[str, Any]:
        from aire.promotion.rollback import rollback as roll_back

        context = get_current_context()
        params = context["params"]
        target = str(params["target"])
        return roll_back(params["config"], to_version=None if target == "previous" else int(target),
                         by=f"dag:aire_rollback run {context['run_id']}", reason=params.get("reason") or "").to_dict()

    rollback()


aire_rollback()
