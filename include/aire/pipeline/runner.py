"""``aire run``: every stage of a pipeline run in this process, as the DAG runs them.

A stage's failure is recorded as an incident exactly as the DAG's failure callback would.
As in the DAG, a failure the gate can decide on (a failed evaluation) does not stop the
run: the gate reads the missing report as missing evidence and the reject stage records
why (``failed`` lists the stage). Any other failure leaves no candidate to decide on and
is raised. With ``approval.required`` a passing run stops at ``awaiting_approval``: a
person answers only through the DAG.
"""

from __future__ import annotations

import logging
from typing import Any

from aire.pipeline import stages
from aire.pipeline.run_context import RunSpec
from aire.pipeline.stage_registry import AWAIT_APPROVAL, PIPELINE, Stage, stage

log = logging.getLogger(__name__)

# What run_all reports as its outcome for each task the gate chose.
OUTCOME = {"promote": "promoted", AWAIT_APPROVAL: "awaiting_approval", "reject": "rejected"}


def run_all(spec: RunSpec) -> dict[str, Any]:
    """Run every stage in order; ``outcome`` is promoted, kept_as_challenger, not_promoted,
    rejected or awaiting_approval (``aire run`` exits 0 only for promoted)."""
    results: dict[str, Any] = {"run_key": spec.run_key, "failed": []}
    champion: int | None = None
    for entry in PIPELINE:
        result = _step(spec, entry, champion, results)
        if result is not None:
            results[entry.name] = result
        if entry.name == "validate_data" and result is not None:  # it is fatal: None never gets here
            champion = result["champion_version"]
    after = stages.after_gate(spec, results["gate"])
    if after != AWAIT_APPROVAL:
        # Nobody can be asked from here: with approval.required, promotion goes through the
        # DAG's await_approval task. The candidate stays unregistered; the champion is untouched.
        results[after] = _step(spec, stage(after), champion, results)
    results["outcome"] = _outcome(after, results.get(after))
    return results


def _outcome(after: str, result: dict[str, Any] | None) -> str:
    """What happened, not what the gate chose: a candidate that passed the gate but found the
    champion moved is ``kept_as_challenger`` (or ``not_promoted``), never ``promoted``."""
    if after != "promote" or result is None or result.get("champion_version") == result.get("version"):
        return OUTCOME[after]
    return "kept_as_challenger" if result.get("challenger") else "not_promoted"


def _step(spec: RunSpec, entry: Stage, champion: int | None, results: dict[str, Any]) -> dict[str, Any] | None:
    from aire.incidents.sources import record_task_failure

    try:
        return dict(entry.run(spec, champion))
    except Exception as exc:
        record_task_failure(dag_id="aire-cli", run_id=spec.run_key, task_id=entry.name, try_number=1,
                            exception=exc, params={"config": spec.config_path, "batch": spec.batch_uri})
        if entry.fatal:
            raise
        log.warning("%s failed (%s: %s); the gate decides on the evidence there is",
                    entry.name, type(exc).__name__, exc)
        results["failed"].append(entry.name)
        return None
