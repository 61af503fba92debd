"""Where incidents come from: a task's final failure and a gate rejection.

The incident is stored before anything else is attempted (postmortem file, notifiers),
so a full disk or a notifier outage never loses it. The postmortem stub is pre-filled
with whatever evidence the run directory holds at that moment.
"""

from __future__ import annotations

import csv
import json
import logging
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aire.errors import AireError
from aire.home import Home
from aire.incidents import IncidentStore, dedup_key
from aire.postmortem import write_postmortem

if TYPE_CHECKING:
    from aire.run_context import RunContext

log = logging.getLogger(__name__)

def record_task_failure(
    *, dag_id: str, run_id: str, task_id: str, try_number: int,
    exception: BaseException | None, params: dict[str, Any], log_url: str | None = None,
    home: Home | None = None,
) -> dict[str, Any]:
    """Open (or count) the incident for a task's final failure.

    Call it only for a final failure. Airflow's ``on_failure_callback`` is one: it fires
    only when the task ends FAILED (a try that will be retried calls
    ``on_retry_callback``), including a fail-fast before the last try, which a
    try-number check would miss.
    """
    home = (home or Home.from_env()).ensure()
    pipeline, run_dir = _pipeline_of(params, run_id, home)
    evidence = _evidence_from(run_dir)
    evidence.update({
        "failed_task": {"dag_id": dag_id, "task_id": task_id, "run_id": run_id, "try_number": try_number},
        "log_url": log_url, "batch": params.get("batch"), "config": params.get("config"),
        "exception": _describe(exception),
    })
    evidence["champion"] = _champion_of(home, pipeline)
    kind = "validation_failure" if "validat" in task_id else "task_failure"
    if type(exception).__name__ == "VerificationError":
        kind = "signature_failure"
    return _open(
        home, dedup_key(dag_id, run_id, task_id, try_number), pipeline=pipeline,
        title=f"{pipeline}: {task_id} failed in {dag_id} run {run_id}",
        severity="high", source={"kind": kind, "dag_id": dag_id, "run_id": run_id, "task_id": task_id,
                                 "try_number": try_number},
        evidence=evidence,
    )


def record_gate_rejection(ctx: RunContext, decision: dict[str, Any]) -> dict[str, Any]:
    failed = [check for check in decision.get("checks", []) if not check.get("passed")]
    names = ", ".join(check.get("name", "?") for check in failed) or "no decision record"
    evidence = _evidence_from(ctx.run_dir)
    evidence.update({"batch": ctx.spec.batch_uri, "config": ctx.spec.config_path, "run_id": ctx.spec.run_key,
                     "champion": _champion_of(ctx.home, ctx.name)})
    return _open(
        ctx.home, dedup_key("gate", ctx.name, ctx.spec.run_key), pipeline=ctx.name,
        title=f"{ctx.name}: candidate rejected by the gate ({names})", severity="medium",
        source={"kind": "gate_rejection", "dag_id": "aire_retrain", "run_id": ctx.spec.run_key,
                "task_id": "reject", "try_number": 1},
        evidence=evidence,
    )


def _open(home: Home, key: str, *, pipeline: str, title: str, severity: str,
          source: dict[str, Any], evidence: dict[str, Any]) -> dict[str, Any]:
    store = IncidentStore(home.incidents_db_url)
    incident, created = store.record(key, pipeline=pipeline, title=title, severity=severity,
                                     source=source, evidence=evidence)
    postmortem: Path | None = None
    try:
        postmortem = write_postmortem(incident, home.postmortems_dir, evidence=evidence)
        store.set_postmortem(incident.id, str(postmortem))
    except AireError as exc:  # the incident is stored; the stub can be written later
        log.error("incident %s stored, but its postmortem could not be written: %s", incident.id, exc)
    log.warning("incident %s %s: %s (postmortem: %s)", incident.id, "opened" if created else "seen again",
                title, postmortem)
    return {"incident_id": incident.id, "created": created, "postmortem": str(postmortem) if postmortem else None}


def _pipeline_of(params: dict[str, Any], run_id: str, home: Home) -> tuple[str, Path | None]:
    from aire.config import load_config

    try:
        name = load_config(params.get("config", "")).name
    except AireError:
        return "unknown", None
    return name, home.run_dir(name, run_id)


def _champion_of(home: Home, pipeline: str) -> dict[str, Any] | None:
    """The champion at the time of the incident, as the registry says (best effort)."""
    from aire.registry import Registry

    try:
        champion = Registry(home.mlflow_tracking_uri).champion(pipeline)
    except Exception as exc:  # noqa: BLE001 - evidence gathering must not mask the incident
        return {"unknown": str(exc)}
    return champion.to_dict() if champion else None


def _evidence_from(run_dir: Path | None) -> dict[str, Any]:
    """Whatever reports the run had written when it stopped, under the postmortem's keys."""
    evidence: dict[str, Any] = {}
    if run_dir is None or not run_dir.exists():
        return evidence
    evidence["reports"] = str(run_dir)
    validation = _read_json(run_dir / "validation" / "validation.json")
    if validation:
        evidence["validation_failures"] = [c for c in validation.get("checks", []) if not c.get("success")]
    evaluation = _read_json(run_dir / "evaluation" / "evaluation.json") or {}
    if evaluation.get("drift"):
        drift = evaluation["drift"]
        evidence["drift"] = {key: drift.get(key) for key in
                             ("drift_share", "drifted_columns", "null_rate_change", "new_categories")}
    if evaluation.get("fairness"):
        evidence["fairness"] = evaluation["fairness"]
    decision = _read_json(run_dir / "decision.json")
    if decision:
        evidence["gate"] = {"decision": "promote" if decision.get("promote") else "reject",
                            "checks": decision.get("checks", [])}
    signing = _read_json(run_dir / "signing.json")
    if signing:
        evidence["model_digests"] = {"candidate": signing.get("digest")}
    analysis = _read_json(run_dir / "analysis" / "summary.json")
    if analysis:
        evidence["error_analysis"] = {key: analysis.get(key) for key in
                                      ("estimated_noise_rate", "n_suspected", "n_rows", "skipped", "reason")}
    suspects = run_dir / "analysis" / "review_queue.csv"
    if suspects.exists():
        with suspects.open(newline="") as handle:
            evidence["suspected_rows"] = [row for _, row in zip(range(10), csv.DictReader(handle))]
    return evidence


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _describe(exception: BaseException | None) -> dict[str, Any] | None:
    if exception is None:
        return None
    described: dict[str, Any] = {
        "type": type(exception).__name__, "message": str(exception),
        "traceback": "".join(traceback.format_exception(exception))[-4000:],
    }
    for attribute in ("file", "column", "rule"):
        if hasattr(exception, attribute):
            described[attribute] = getattr(exception, attribute)
    return described
