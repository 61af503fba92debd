"""aire_retrain's ``await_approval`` task: Airflow's human-in-the-loop branch, fed by the library.

The gate routes here only when it passed the candidate and the run's config says
``approval.required``. The task writes the request (subject and body from the gate's
decision record, the config's timeout and approvers) and parks in ``awaiting_input``,
holding no worker slot; Airflow 3.3's scheduler enforces the timeout. The answer is
recorded by ``aire.pipeline.stages.record_approval`` before the branch: Approve -> ``promote``;
Reject, or no answer (the default on timeout) -> ``reject``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLBranchOperator


class AwaitApproval(HITLBranchOperator):
    """A HITL branch whose request comes from the run's config and gate decision at run time."""

    def __init__(self, **kwargs: Any) -> None:
        from aire.promotion.promote.approval import APPROVE, REJECT, NextStep

        super().__init__(
            subject="Promote the candidate?",  # replaced by the gate's record when the task runs
            options=[APPROVE, REJECT],
            defaults=[REJECT],  # what the scheduler answers when the timeout passes: fail closed
            options_mapping={APPROVE: NextStep.PROMOTE.value, REJECT: NextStep.REJECT.value},
            **kwargs,
        )

    def execute(self, context: Any) -> Any:
        from aire.pipeline import stages

        from aire_airflow.context import run_spec

        request = stages.request_approval(run_spec(context))
        self.subject, self.body = request["subject"], request["body"]
        self.response_timeout = timedelta(seconds=request["timeout_seconds"])
        self.assigned_users = [{"id": user, "name": user} for user in request["approvers"]] or None
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" not in event:  # an error event makes the base class fail the task
            from aire.pipeline import stages

            from aire_airflow.context import run_spec

            stages.record_approval(run_spec(context), event)
        return super().execute_complete(context=context, event=event)
