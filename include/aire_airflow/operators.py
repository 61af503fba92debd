"""aire_retrain's tasks: one per registered stage, and ``await_approval``.

``stage_task`` makes the task of a stage in ``aire.pipeline.stage_registry``.

``AwaitApproval`` is Airflow's human-in-the-loop branch, fed by the library. The gate routes
here only when it passed the candidate and the run's config says
``approval.required``. The task writes the request (subject and body from the gate's
decision record, the config's timeout and approvers) and parks in ``awaiting_input``,
holding no worker slot; Airflow 3.3's scheduler enforces the timeout. The answer is
recorded by ``aire.pipeline.approval_steps.record_approval`` before the branch: Approve -> ``promote``;
Reject, or no answer (the default on timeout) -> ``reject``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLBranchOperator

if TYPE_CHECKING:
    from aire.pipeline.stage_registry import Stage

log = logging.getLogger(__name__)


class AwaitApproval(HITLBranchOperator):
    """A HITL branch whose request comes from the run's config and gate decision at run time."""

    def __init__(self, **kwargs: Any) -> None:
        from aire.promotion.approval import APPROVE, REJECT, NextStep

        super().__init__(
            subject="Promote the candidate?",  # replaced by the gate's record when the task runs
            options=[APPROVE, REJECT],
            defaults=[REJECT],  # what the scheduler answers when the timeout passes: fail closed
            options_mapping={APPROVE: NextStep.PROMOTE.value, REJECT: NextStep.REJECT.value},
            **kwargs,
        )

    def execute(self, context: Any) -> Any:
        from aire.pipeline import approval_steps
        from aire_airflow.context import run_spec

        request = approval_steps.request_approval(run_spec(context))
        self.subject, self.body = request["subject"], request["body"]
        self.response_timeout = timedelta(seconds=request["timeout_seconds"])
        self.assigned_users = [{"id": user, "name": user} for user in request["approvers"]] or None
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" not in event:  # an error event makes the base class fail the task
            from aire.pipeline import approval_steps
            from aire_airflow.context import run_spec

            approval_steps.record_approval(run_spec(context), event)
        return super().execute_complete(context=context, event=event)


def stage_task(entry: Stage, **task_kwargs: Any) -> Any:
    """The TaskFlow task that runs one stage of the registry (``aire.pipeline.stage_registry``).

    Its task id is the stage's name; its queue is ``aire_airflow.schedules.queue_for``'s. Every
    stage but validate_data gets the champion that validate_data pinned (its XCom), so all
    stages of a run compare with, and warm-start from, the same model.
    """
    from airflow.sdk import get_current_context, task

    from aire_airflow.context import run_spec
    from aire_airflow.schedules import queue_for

    for key, value in queue_for(entry.name, entry.accelerator).items():
        task_kwargs.setdefault(key, value)

    @task(task_id=entry.name, **task_kwargs)
    def run_stage() -> dict[str, Any]:
        from aire.pipeline.preload import PRELOADED_MODULES, already_imported

        # Says whether this task was forked from a preloaded worker (aire_airflow.celery_config).
        log.info("%d of %d preload modules were imported before the stage began",
                 len(already_imported()), len(PRELOADED_MODULES))
        context = get_current_context()
        return dict(entry.run(run_spec(context), pinned_champion(context, entry)))

    return run_stage()


def pinned_champion(context: Any, entry: Stage) -> int | None:
    """The champion version validate_data pinned for this run (None before it ran, or none)."""
    if entry.name == "validate_data":
        return None
    validated = context["ti"].xcom_pull(task_ids="validate_data") or {}
    champion = validated.get("champion_version")
    return None if champion is None else int(champion)
