"""A human's yes between a passing gate and promotion (config ``approval:``).

With ``approval.required`` a candidate the gate passed is not promoted until a person
approves it. The request shows the gate's decision record (every check, its value, its
threshold, pass or fail). The answer is written to ``approval.json`` beside
``decision.json`` and bound to it by the decision's sha256, so an answer given for one
decision never approves another (a re-run gate writes a new one). Reject, or no answer
within ``approval.timeout_hours``, rejects the candidate: it fails closed.

Pure functions only; ``aire.pipeline.stages`` reads and writes the run directory, and the DAG's
``await_approval`` task (``aire_airflow.approval``) asks Airflow's human-in-the-loop
machinery for the answer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aire.constants import TAG_APPROVAL, TAG_APPROVED_BY
from aire.errors import InputError

if TYPE_CHECKING:
    from aire.config import Approval

APPROVE = "Approve"  # the options a person is offered
REJECT = "Reject"


class NextStep(str, Enum):
    """Where a run goes after the gate; the values are aire_retrain's task ids."""

    PROMOTE = "promote"
    AWAIT_APPROVAL = "await_approval"
    REJECT = "reject"


class Outcome(str, Enum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"  # a person chose Reject
    TIMED_OUT = "timed_out"  # nobody answered in time


class NotApprovedError(InputError):
    """Promotion asked for a candidate that approval was required for and nobody approved."""


def next_step(decision: dict[str, Any], approval: Approval) -> NextStep:
    """Reject unless the gate said promote; then promote, or wait for a person first."""
    if decision.get("promote") is not True:
        return NextStep.REJECT
    return NextStep.AWAIT_APPROVAL if approval.required else NextStep.PROMOTE


def digest_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ApprovalRecord:
    """One request and, once it came, its answer: what ``approval.json`` holds."""

    outcome: Outcome
    decision_sha256: str
    requested_at: str
    timeout_hours: float
    approvers: list[str] = field(default_factory=list)
    responded_by: dict[str, str] | None = None  # {"id", "name"} of the Airflow user
    responded_at: str | None = None

    @property
    def approved(self) -> bool:
        return self.outcome is Outcome.APPROVED and self.responded_by is not None

    @property
    def who(self) -> str | None:
        if not self.responded_by:
            return None
        return str(self.responded_by.get("name") or self.responded_by.get("id"))

    def summary(self) -> str:
        if self.outcome is Outcome.APPROVED:
            return f"approved by {self.who} at {self.responded_at}"
        if self.outcome is Outcome.REJECTED:
            return f"rejected by {self.who} at {self.responded_at}"
        if self.outcome is Outcome.TIMED_OUT:
            return f"nobody approved it within {self.timeout_hours:g} h"
        return f"awaiting approval since {self.requested_at}"

    def tags(self) -> dict[str, str]:
        """MLflow tags: the outcome, and who answered when someone did."""
        tags = {TAG_APPROVAL: self.outcome.value}
        if self.who:
            tags[TAG_APPROVED_BY if self.approved else f"{TAG_APPROVAL}.responded_by"] = self.who
        return tags

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome.value, "decision_sha256": self.decision_sha256,
                "requested_at": self.requested_at, "timeout_hours": self.timeout_hours,
                "approvers": list(self.approvers), "responded_by": self.responded_by,
                "responded_at": self.responded_at, "summary": self.summary()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApprovalRecord:
        return cls(outcome=Outcome(data["outcome"]), decision_sha256=str(data["decision_sha256"]),
                   requested_at=str(data["requested_at"]), timeout_hours=float(data["timeout_hours"]),
                   approvers=list(data.get("approvers") or []), responded_by=data.get("responded_by"),
                   responded_at=data.get("responded_at"))


def pending(decision_sha256: str, approval: Approval) -> ApprovalRecord:
    return ApprovalRecord(Outcome.PENDING, decision_sha256, _now(), approval.timeout_hours,
                          list(approval.approvers))


def answered(request: ApprovalRecord, response: dict[str, Any]) -> ApprovalRecord:
    """The request with Airflow's human-in-the-loop response filled in.

    ``response`` is the operator's resume event: ``chosen_options``, ``responded_by_user``
    (``None`` when the timeout took the default), ``responded_at``, ``timedout``. Only an
    explicit Approve from a named user approves.
    """
    user = response.get("responded_by_user")
    chosen = list(response.get("chosen_options") or [])
    responded_at = response.get("responded_at")
    if isinstance(responded_at, datetime):
        responded_at = responded_at.isoformat(timespec="seconds")
    if response.get("timedout") or not user:
        outcome, user = Outcome.TIMED_OUT, None
    elif chosen == [APPROVE]:
        outcome = Outcome.APPROVED
    else:
        outcome = Outcome.REJECTED
    who = {"id": str(user.get("id")), "name": str(user.get("name") or user.get("id"))} if user else None
    return ApprovalRecord(outcome, request.decision_sha256, request.requested_at, request.timeout_hours,
                          list(request.approvers), who, str(responded_at) if responded_at else None)


def bound(record: dict[str, Any] | None, decision_sha256: str | None) -> ApprovalRecord | None:
    """The record if it answers this very decision; a stale or unreadable one counts as none."""
    if not record or decision_sha256 is None:
        return None
    try:
        parsed = ApprovalRecord.from_dict(record)
    except (KeyError, TypeError, ValueError):
        return None
    return parsed if parsed.decision_sha256 == decision_sha256 else None


def require_approved(record: ApprovalRecord | None, approval: Approval, where: str) -> None:
    """Promotion's own check: with approval required, only an approved record lets it through."""
    if not approval.required:
        return
    if record is None:
        raise NotApprovedError(f"{where}: approval.required is set and no approval answers "
                               "this gate decision")
    if not record.approved:
        raise NotApprovedError(f"{where}: approval.required is set and the candidate was not approved "
                               f"({record.summary()})")


def request_text(decision: dict[str, Any], approval: Approval, *, batch_uri: str) -> tuple[str, str]:
    """Subject and Markdown body of the request: the gate's decision record, check by check."""
    pipeline = decision.get("pipeline", "?")
    champion = decision.get("champion_version")
    subject = f"{pipeline}: promote the candidate of run {decision.get('run_key', '?')}?"
    lines = [
        f"The gate **passed** this candidate of `{pipeline}`. Approve to make it the champion "
        f"(replacing {'no champion' if champion is None else f'v{champion}'}); "
        f"reject to keep the current one.",
        "",
        f"- batch: `{batch_uri}`",
        f"- no answer within {approval.timeout_hours:g} h rejects the candidate",
        "",
        "| check | value | threshold | result |",
        "|---|---|---|---|",
    ]
    for check in decision.get("checks", []):
        mark = "pass" if check.get("passed") else "**FAIL**"
        note = f" ({check['reason']})" if check.get("reason") else ""
        lines.append(f"| {check.get('name')} | {_cell(check.get('value'))} | "
                     f"{_cell(check.get('threshold'))} | {mark}{note} |")
    if not decision.get("checks"):
        lines.append("| (no checks recorded) | | | |")
    return subject, "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "–" if value is None else str(value).replace("|", "\\|")


def approval_for(approval_json: Path, decision_json: Path) -> ApprovalRecord | None:
    """The answer recorded for the decision file as it is now, if any (see ``bound``)."""
    try:
        record = dict(json.loads(approval_json.read_text()))
    except (OSError, ValueError, TypeError):
        record = None
    try:
        decision_sha256: str | None = digest_of(decision_json)
    except OSError:
        decision_sha256 = None
    return bound(record, decision_sha256)
