"""The two steps around a person's answer, run by aire_retrain's ``await_approval`` task.

``request_approval`` writes the request for the gate's decision before the task parks;
``record_approval`` writes the answer (or the timeout) once Airflow has it. Neither is a
stage of the registry: Airflow asks the person (``aire_airflow.operators.AwaitApproval``).
"""

from __future__ import annotations

import logging
from typing import Any

from aire.errors import DataValidationError
from aire.pipeline.run_context import RunContext, RunSpec
from aire.pipeline.stages import timed

log = logging.getLogger(__name__)


@timed
def request_approval(spec: RunSpec) -> dict[str, Any]:
    """Open the approval request for the gate's decision: subject, body, timeout, approvers.

    ``approval.json`` says ``pending`` and holds the decision's sha256 until the answer.
    """
    from aire.promotion import approval as approvals
    from aire.promotion.decision_record import recorded_decision

    ctx = RunContext(spec)
    ctx.receive("gate")
    files = ctx.files
    decision = ctx.read_json(files.decision)
    if decision.get("promote") is not True:
        raise DataValidationError(str(files.decision), None, "gate decision is promote",
                                  "only a candidate the gate passed is put to a person")
    recorded_decision(ctx.ledger, files.decision, pipeline=ctx.name, run_key=spec.run_key,
                      mlflow_run_id=ctx.mlflow_run_id)  # an edited decision is never put to a person
    config = ctx.config.approval
    record = approvals.pending(approvals.digest_of(files.decision), config)
    ctx.write_json(record.to_dict(), files.approval)
    ctx.hand_over("approval", files.approval)
    subject, body = approvals.request_text(decision, config, batch_uri=spec.batch_uri)
    return {"subject": subject, "body": body, "timeout_seconds": config.timeout_hours * 3600,
            "approvers": list(config.approvers), "decision_sha256": record.decision_sha256}


@timed
def record_approval(spec: RunSpec, response: dict[str, Any]) -> dict[str, Any]:
    """Write the answer (or the timeout) into ``approval.json``, publish it, tag the run."""
    from aire.promotion import approval as approvals

    ctx = RunContext(spec)
    # The answer may resume the task on another worker than the one that asked.
    ctx.receive("gate", "approval")
    files = ctx.files
    request = approvals.approval_for(files.approval, files.decision)
    if request is None:
        raise DataValidationError(str(files.approval), None, "approval answers this decision",
                                  "no approval request for the current gate decision")
    record = approvals.answered(request, response)
    ctx.write_json(record.to_dict(), files.approval)
    ctx.publish(files.approval, "approval")
    ctx.hand_over("approval", files.approval)
    ctx.registry.set_run_tags(ctx.mlflow_run_id, record.tags())
    log.info("approval: %s", record.summary())
    return record.to_dict()
