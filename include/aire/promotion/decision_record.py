"""The gate's decision as the gate wrote it: its digest goes into the ledger at decision time.

``decision.json`` lives in the run store, which whoever can write there can edit: setting
``"promote": true`` in a rejected run's decision must not move the champion. So the gate
appends the sha256 of the file it wrote (kind ``gate_decision``, with pipeline, run key,
MLflow run and verdict) and promotion, like the approval request, accepts only a file whose
digest is that of the newest decision the gate recorded for this run, and only when the
gate's verdict there was promote. A re-run of the gate records a newer decision; an older
one (even one that said promote) is then refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aire.constants import LEDGER_GATE
from aire.errors import VerificationError
from aire.promotion.approval import digest_of
from aire.trust.ledger import Ledger, LedgerEntry


def record_decision(ledger: Ledger, decision_json: Path, decision: dict[str, Any], *,
                    mlflow_run_id: str) -> LedgerEntry:
    """Append the digest of the decision file the gate has just written."""
    return ledger.append(LEDGER_GATE, {
        "pipeline": decision["pipeline"], "run_key": decision["run_key"], "mlflow_run_id": mlflow_run_id,
        "decision_sha256": digest_of(decision_json), "promote": decision.get("promote") is True,
    })


def recorded_decision(ledger: Ledger, decision_json: Path, *, pipeline: str, run_key: str,
                      mlflow_run_id: str) -> str:
    """The decision file's sha256, if it is the gate's newest recorded decision for this run
    and that decision was promote; VerificationError otherwise (bad input: no retry helps)."""
    try:
        actual = digest_of(decision_json)
    except OSError as exc:
        raise VerificationError(f"{decision_json}: no gate decision to promote on: {exc.strerror}") from None
    recorded = ledger.find(LEDGER_GATE, pipeline=pipeline, run_key=run_key, mlflow_run_id=mlflow_run_id)
    if not recorded:
        raise VerificationError(f"{decision_json}: the gate recorded no decision for run {run_key} in the ledger")
    newest = recorded[-1].entry
    if newest.get("decision_sha256") != actual:
        raise VerificationError(f"{decision_json}: this decision is not the one the gate recorded for run "
                                f"{run_key} (ledger seq {recorded[-1].seq}): edited after the gate wrote it")
    if newest.get("promote") is not True:
        raise VerificationError(f"{decision_json}: the gate's recorded decision for run {run_key} is reject")
    return actual
