"""
### aire_retrain

Takes a new batch of labeled data through validation, loss-sorted error analysis,
fine-tuning, signing, evaluation and a fail-closed gate, then promotes the candidate to
the `champion` alias in MLflow or rejects it with an incident and a postmortem stub.
When the config says `approval: {required: true}`, a candidate the gate passed waits at
`await_approval` (Airflow's Required Actions) for a person: Approve promotes; Reject, or
no answer within `approval.timeout_hours`, rejects.

Trigger it with **Params**: `config` (a pipeline YAML) and `batch` (a CSV or Parquet
path or `s3://` URI). Each task runs one stage of `aire.pipeline.stage_registry`; reports are
artifacts of the run's MLflow run and sit under `$AIRE_HOME/reports/<pipeline>/<run>/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from aire.home import PROJECT_ROOT, Home
from aire.pipeline.stage_registry import AWAIT_APPROVAL, PIPELINE, stage
from aire_airflow.callbacks import task_defaults
from aire_airflow.context import run_spec
from aire_airflow.operators import AwaitApproval, pinned_champion, stage_task
from aire_airflow.schedules import queue_for, retrain_schedule

DEFAULT_CONFIG = str(PROJECT_ROOT / "include" / "config" / "credit_risk.yaml")
DEFAULT_BATCH = str(Home.from_env().data_dir / "batch_clean.csv")


@dag(
    dag_id=Path(__file__).stem,
    doc_md=__doc__,
    schedule=retrain_schedule(),  # each landed batch (aire_landing), and a weekly cron
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["aire", "retraining"],
    params={
        "config": Param(DEFAULT_CONFIG, type="string", minLength=1, description="Pipeline config (YAML path)"),
        "batch": Param(DEFAULT_BATCH, type="string", minLength=1, description="Batch: CSV/Parquet path or s3:// URI"),
        "epochs": Param(None, type=["null", "integer"], minimum=1, maximum=1000,
                        description="Override training.epochs"),
        "learning_rate": Param(None, type=["null", "number"], exclusiveMinimum=0, maximum=1,
                               description="Override training.learning_rate"),
    },
    default_args=task_defaults(),
)
def aire_retrain() -> None:
    # One task per stage of the registry, wired by what each stage needs.
    tasks = {entry.name: stage_task(entry) for entry in PIPELINE if entry.name != "gate"}

    # The gate runs once the candidate is signed even if evaluate failed (its `after`): it
    # then reads the missing report as missing evidence and records a reject decision. Had
    # signing (or anything before it) failed, there is no candidate to decide on.
    @task.branch(task_id="gate", trigger_rule="all_done_min_one_success", **queue_for("gate"))
    def gate() -> str:
        from aire.pipeline.stages import after_gate
        from aire_airflow.context import log_decision

        context = get_current_context()
        spec = run_spec(context)
        decision = dict(stage("gate").run(spec, pinned_champion(context, stage("gate"))))
        log_decision(decision)
        return after_gate(spec, decision)  # promote | await_approval | reject

    tasks["gate"] = gate()
    for entry in PIPELINE:
        for upstream in (*entry.needs, *entry.after):
            tasks[upstream] >> tasks[entry.name]

    # Reached from the gate directly, or through await_approval (the other one is skipped).
    @task(task_id="reject", trigger_rule="none_failed_min_one_success", **queue_for("reject"))
    def reject() -> dict[str, Any]:
        from aire.pipeline import stages
        from aire_airflow.connections import notifier_channel

        context = get_current_context()
        return dict(stages.reject(run_spec(context), pinned_champion(context, stage("reject")),
                                  resolver=notifier_channel))

    promoted = stage_task(stage("promote"), trigger_rule="none_failed_min_one_success")
    rejected, approval = reject(), AwaitApproval(task_id=AWAIT_APPROVAL, **queue_for(AWAIT_APPROVAL))
    tasks["gate"] >> [approval, promoted, rejected]
    approval >> [promoted, rejected]


aire_retrain()
