"""Human approval between the gate and promotion: config, routing, answers, and the stages
that write them (on the embedded home: SQLite MLflow and incidents)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from aire.config import Approval, load_config, parse_config
from aire.errors import ConfigError
from aire.home import PROJECT_ROOT
from aire.promotion import approval as approvals
from aire.promotion.approval import APPROVE, REJECT, NextStep, NotApprovedError, Outcome

EXAMPLE = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"
ALICE = {"id": "alice", "name": "Alice"}
DECISION = {"promote": True, "failed": [], "pipeline": "credit-risk", "run_key": "manual__1",
            "champion_version": 3, "checks": [
                {"name": "drift_share", "value": 0.125, "threshold": 0.3, "passed": True, "reason": None},
                {"name": "signature_verified", "value": True, "threshold": True, "passed": True,
                 "reason": None}]}


def example(**approval: Any) -> dict[str, Any]:
    data = yaml.safe_load(EXAMPLE.read_text())
    if approval:
        data["approval"] = approval
    return data


# --- config -------------------------------------------------------------------------------
def test_approval_is_off_by_default() -> None:
    config = load_config(EXAMPLE)
    assert config.approval == Approval(required=False, timeout_hours=24.0, approvers=[])


def test_approval_section_parses() -> None:
    config = parse_config(example(required=True, timeout_hours=0.5, approvers=["alice", "bob"]))
    assert config.approval.required and config.approval.timeout_hours == 0.5
    assert config.approval.approvers == ["alice", "bob"]


@pytest.mark.parametrize(("section", "key"), [
    ({"required": True, "timeout_hours": 0}, "approval.timeout_hours"),
    ({"required": True, "timeout_hours": -1}, "approval.timeout_hours"),
    ({"requird": True}, "approval.requird"),
    ({"approvers": ["alice", "alice"]}, "approval.approvers"),
    ({"approvers": [" "]}, "approval.approvers"),
    ({"required": "maybe"}, "approval.required"),
])
def test_a_bad_approval_section_names_the_key(section: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"key '{key}'"):
        parse_config(example(**section))


# --- routing and answers -------------------------------------------------------------------
@pytest.mark.parametrize(("promote", "required", "step"), [
    (True, False, NextStep.PROMOTE),
    (True, True, NextStep.AWAIT_APPROVAL),
    (False, False, NextStep.REJECT),
    (False, True, NextStep.REJECT),  # a person is never asked to override the gate
    (None, True, NextStep.REJECT),  # no decision record: fail closed
])
def test_next_step_after_the_gate(promote: bool | None, required: bool, step: NextStep) -> None:
    decision = {} if promote is None else {"promote": promote}
    assert approvals.next_step(decision, Approval(required=required)) is step


def request() -> approvals.ApprovalRecord:
    return approvals.pending("d" * 64, Approval(required=True, timeout_hours=2, approvers=["alice"]))


@pytest.mark.parametrize(("response", "outcome", "who"), [
    ({"chosen_options": [APPROVE], "responded_by_user": ALICE}, Outcome.APPROVED, "Alice"),
    ({"chosen_options": [REJECT], "responded_by_user": ALICE}, Outcome.REJECTED, "Alice"),
    # the scheduler's timeout sweep answers with the defaults and no user
    ({"chosen_options": [REJECT], "responded_by_user": None, "timedout": True}, Outcome.TIMED_OUT, None),
    # an Approve without a user (never sent by Airflow) does not approve
    ({"chosen_options": [APPROVE], "responded_by_user": None}, Outcome.TIMED_OUT, None),
    ({"chosen_options": [APPROVE], "responded_by_user": ALICE, "timedout": True}, Outcome.TIMED_OUT, None),
])
def test_an_answer_becomes_a_record(response: dict[str, Any], outcome: Outcome, who: str | None) -> None:
    at = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    record = approvals.answered(request(), {**response, "responded_at": at})
    assert record.outcome is outcome and record.who == who
    assert record.approved is (outcome is Outcome.APPROVED)
    assert record.decision_sha256 == "d" * 64 and record.approvers == ["alice"]
    assert approvals.ApprovalRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_summaries_and_tags_say_who_or_that_nobody_answered() -> None:
    approved = approvals.answered(request(), {"chosen_options": [APPROVE], "responded_by_user": ALICE,
                                              "responded_at": "2026-11-30T09:00:00+00:00"})
    assert approved.summary() == "approved by Alice at 2026-11-30T09:00:00+00:00"
    assert approved.tags() == {"aire.approval": "approved", "aire.approved_by": "Alice"}
    rejected = approvals.answered(request(), {"chosen_options": [REJECT], "responded_by_user": ALICE})
    assert rejected.tags() == {"aire.approval": "rejected", "aire.approval.responded_by": "Alice"}
    timed_out = approvals.answered(request(), {"chosen_options": [REJECT], "timedout": True})
    assert timed_out.summary() == "nobody approved it within 2 h"
    assert timed_out.tags() == {"aire.approval": "timed_out"}


def test_a_record_counts_only_for_the_decision_it_answered() -> None:
    record = approvals.answered(request(), {"chosen_options": [APPROVE], "responded_by_user": ALICE})
    assert approvals.bound(record.to_dict(), "d" * 64) == record
    assert approvals.bound(record.to_dict(), "e" * 64) is None  # the gate ran again since
    assert approvals.bound(record.to_dict(), None) is None
    assert approvals.bound({"outcome": "maybe"}, "d" * 64) is None
    assert approvals.bound(None, "d" * 64) is None


def test_promotion_needs_an_approved_record_only_when_required() -> None:
    required, optional = Approval(required=True), Approval(required=False)
    approved = approvals.answered(request(), {"chosen_options": [APPROVE], "responded_by_user": ALICE})
    rejected = approvals.answered(request(), {"chosen_options": [REJECT], "responded_by_user": ALICE})
    approvals.require_approved(None, optional, "x")
    approvals.require_approved(approved, required, "x")
    with pytest.raises(NotApprovedError, match="no approval answers"):
        approvals.require_approved(None, required, "x")
    with pytest.raises(NotApprovedError, match="rejected by Alice"):
        approvals.require_approved(rejected, required, "x")
    with pytest.raises(NotApprovedError, match="awaiting approval"):
        approvals.require_approved(request(), required, "x")


def test_the_request_shows_every_check_of_the_decision() -> None:
    subject, body = approvals.request_text(
        {**DECISION, "checks": [*DECISION["checks"], {"name": "leakage", "value": ["a|b"], "threshold": None,
                                                      "passed": False, "reason": "one feature"}]},
        Approval(required=True, timeout_hours=6), batch_uri="s3://aire/landing/b.csv")
    assert subject == "credit-risk: promote the candidate of run manual__1?"
    assert "| drift_share | 0.125 | 0.3 | pass |" in body
    assert "| signature_verified | True | True | pass |" in body
    assert "| leakage | ['a\\|b'] | – | **FAIL** (one feature) |" in body
    assert "replacing v3" in body and "s3://aire/landing/b.csv" in body and "6 h" in body


# --- the stages, on the embedded home -----------------------------------------------------
@pytest.fixture()
def spec(aire_home: Path, tmp_path: Path) -> Any:
    from aire.pipeline.run_context import RunSpec

    config = tmp_path / "approval.yaml"
    config.write_text(yaml.safe_dump(example(required=True, timeout_hours=1, approvers=["alice"])))
    return RunSpec(config_path=str(config), batch_uri="batch.csv", run_key="manual__approval")


def write_decision(spec: Any, *, recorded: bool = True, **changes: Any) -> Path:
    """The decision file, and (as the gate does) its digest in the ledger unless ``recorded`` is False."""
    from aire.pipeline.run_context import RunContext
    from aire.promotion.decision_record import record_decision

    ctx = RunContext(spec)
    decision = {**DECISION, "run_key": spec.run_key, **changes}
    path = ctx.write_json(decision, ctx.files.decision)
    if recorded:
        record_decision(ctx.ledger, path, decision, mlflow_run_id=ctx.mlflow_run_id)
    return path


def test_a_decision_the_gate_did_not_record_is_never_put_to_a_person(spec: Any) -> None:
    """The attack: a rejected run's decision.json edited to say promote (issue 13, case 2)."""
    from aire.errors import VerificationError
    from aire.pipeline import approval_steps, stages

    write_decision(spec, promote=False, failed=["drift_share"])
    write_decision(spec, recorded=False)  # the forgery, written over the gate's reject
    with pytest.raises(VerificationError, match="not the one the gate recorded"):
        approval_steps.request_approval(spec)
    with pytest.raises(VerificationError, match="not the one the gate recorded"):
        stages.promote(spec)


def test_request_then_answer_is_written_beside_the_decision(spec: Any) -> None:
    from aire.pipeline import approval_steps
    from aire.pipeline.run_context import RunContext

    decision = write_decision(spec)
    asked = approval_steps.request_approval(spec)
    assert asked["timeout_seconds"] == 3600 and asked["approvers"] == ["alice"]
    assert "| drift_share | 0.125 | 0.3 | pass |" in asked["body"]
    ctx = RunContext(spec)
    assert ctx.read_json(ctx.files.approval)["outcome"] == "pending"
    assert asked["decision_sha256"] == approvals.digest_of(decision)

    record = approval_steps.record_approval(spec, {"chosen_options": [APPROVE], "responded_by_user": ALICE,
                                           "responded_at": datetime(2026, 11, 30, tzinfo=UTC),
                                           "timedout": False})
    assert record["outcome"] == "approved" and record["responded_by"] == ALICE
    assert ctx.read_json(ctx.files.approval) == record
    tags = ctx.registry.client.get_run(ctx.mlflow_run_id).data.tags
    assert tags["aire.approval"] == "approved" and tags["aire.approved_by"] == "Alice"


def test_no_request_for_a_rejected_decision_and_no_answer_for_a_changed_one(spec: Any) -> None:
    from aire.errors import DataValidationError
    from aire.pipeline import approval_steps

    write_decision(spec, promote=False)
    with pytest.raises(DataValidationError, match="gate decision is promote"):
        approval_steps.request_approval(spec)
    write_decision(spec)
    approval_steps.request_approval(spec)
    write_decision(spec, champion_version=4)  # the gate ran again after the request
    with pytest.raises(DataValidationError, match="no approval request for the current gate decision"):
        approval_steps.record_approval(spec, {"chosen_options": [APPROVE], "responded_by_user": ALICE})


def test_promote_refuses_a_candidate_nobody_approved(spec: Any) -> None:
    from aire.pipeline import approval_steps, stages

    write_decision(spec)
    with pytest.raises(NotApprovedError, match="no approval answers this gate decision"):
        stages.promote(spec)
    approval_steps.request_approval(spec)
    approval_steps.record_approval(spec, {"chosen_options": [REJECT], "responded_by_user": ALICE})
    with pytest.raises(NotApprovedError, match="rejected by Alice"):
        stages.promote(spec)


def test_reject_after_a_timeout_opens_an_incident_that_says_nobody_answered(spec: Any) -> None:
    import pandas as pd

    from aire.home import Home
    from aire.incidents.store import IncidentStore
    from aire.pipeline import approval_steps, stages
    from aire.pipeline.run_context import RunContext

    write_decision(spec)
    pd.DataFrame({"age": [30, 40], "risk": [0, 1]}).to_parquet(RunContext(spec).path("batch.parquet"))
    approval_steps.request_approval(spec)
    approval_steps.record_approval(spec, {"chosen_options": [REJECT], "responded_by_user": None, "timedout": True})
    stages.reject(spec)
    with IncidentStore(Home.from_env().incidents_db_url) as store:
        [incident] = store.list()
    assert incident.title == ("credit-risk: candidate passed the gate but was not approved "
                              "(nobody approved it within 1 h)")
    assert incident.source.kind == "gate_rejection"


def test_reject_of_a_passed_candidate_without_an_answer_says_so(spec: Any) -> None:
    import pandas as pd

    from aire.home import Home
    from aire.incidents.store import IncidentStore
    from aire.pipeline import stages
    from aire.pipeline.run_context import RunContext

    write_decision(spec)
    pd.DataFrame({"age": [30, 40], "risk": [0, 1]}).to_parquet(RunContext(spec).path("batch.parquet"))
    stages.reject(spec)  # e.g. marked to run by hand: no approval.json at all
    with IncidentStore(Home.from_env().incidents_db_url) as store:
        [incident] = store.list()
    assert incident.title.endswith("was not approved (no approval answer was recorded)")
    assert "approval" not in incident.evidence
