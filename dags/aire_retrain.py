"""
### aire_retrain

Takes a new batch of labeled data through validation, loss-sorted error analysis,
fine-tuning, signing, evaluation and a fail-closed gate, then promotes the candidate to
the `champion` alias in MLflow or rejects it with an incident and a postmortem stub.
When the config says `approval: {required: true}`, a candidate the gate passed waits at
`await_approval` (Airflow's Required Actions) for a person: Approve promotes; Reject, or
no answer within `approval.timeout_hours`, rejects.

Trigger it with **Params**: `config` (a pipeline YAML) and `batch` (a CSV or Parquet
path or `s3://` URI). Each task calls one function of `aire.pipeline.stages`; reports are
artifacts of the run's MLflow run and sit under `$AIRE_HOME/reports/<pipeline>/<run>/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
from aire.home import PROJECT_ROOT, Home
from aire_airflow.callbacks import task_defaults
from aire_airflow.context import run_spec
from aire_airflow.operators import AwaitApproval
from aire_airflow.schedules import gpu_queue, retrain_schedule
from airflow.sdk import Param, dag, get_current_context, task

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
        "epochs": Param(None, type=["null", "integer"], minimum=1, maximum=1000, description="Override training.epochs"),
        "learning_rate": Param(None, type=["null", "number"], exclusiveMinimum=0, maximum=1,
                               description="Override training.learning_rate"),
    },
    default_args=task_defaults(),
)
def aire_retrain() -> None:
    @task
    def validate_data() -> dict[str, Any]:
        from aire.pipeline import stages

        return stages.validate_data(run_spec(get_current_context()))

    @task
    def analyze_errors(validated: dict[str, Any]) -> dict[str, Any]:
        from aire.pipeline import stages

        return stages.analyze_errors(run_spec(get_current_context()), validated["champion_version"])

    @task(queue=gpu_queue())
    def fine_tune(validated: dict[str, Any], analysis: dict[str, Any]) -> dict[str, Any]:
        from aire.pipeline import stages

        return stages.fine_tune(run_spec(get_current_context()), validated["champion_version"])

    @task
    def sign_model(trained: dict[str, Any]) -> dict[str, Any]:
        from aire.pipeline import stages

        return stages.sign_model(run_spec(get_current_context()))

    @task
    def evaluate(validated: dict[str, Any], signed: dict[str, Any]) -> dict[str, Any]:
        from aire.pipeline import stages

        return stages.evaluate(run_spec(get_current_context()), validated["champion_version"])

    # The gate runs once the candidate is signed even if evaluate failed: it then reads the
    # missing report as missing evidence and records a reject decision. Had signing (or
    # anything before it) failed, there is no candidate to decide on, and it does not run.
    @task.branch(trigger_rule="all_done_min_one_success")
    def gate() -> str:
        from aire.pipeline import stages
        from aire_airflow.context import log_decision

        context = get_current_context()
        validated = context["ti"].xcom_pull(task_ids="validate_data")
        spec = run_spec(context)
        decision = stages.gate(spec, validated["champion_version"])
        log_decision(decision)
        return stages.after_gate(spec, decision)  # promote | await_approval | reject

    # Reached from the gate directly, or through await_approval (the other one is skipped).
    @task(trigger_rule="none_failed_min_one_success")
    def promote() -> dict[str, Any]:
        from aire.pipeline import stages

        return stages.promote(run_spec(get_current_context()))

    @task(trigger_rule="none_failed_min_one_success")
    def reject() -> dict[str, Any]:
        from aire.pipeline import stages
        from aire_airflow.connections import notifier_channel

        return stages.reject(run_spec(get_current_context()), resolver=notifier_channel)

    validated = validate_data()
    analysis = analyze_errors(validated)
    signed = sign_model(fine_tune(validated, analysis))
    decided = gate()
    [signed, evaluate(validated, signed)] >> decided
    promoted, rejected, approval = promote(), reject(), AwaitApproval(task_id="await_approval")
    decided >> [approval, promoted, rejected]
    approval >> [promoted, rejected]


aire_retrain()
