"""Where incidents come from: a task's final failure and a gate rejection.

(SLO breaches open theirs in ``aire.reliability.breaches``; failures no callback saw in
``aire.incidents.sweep``.) Every source
goes through ``open_incident``, which stores the incident before anything else is tried
(postmortem file, object-storage copy, notifiers), so a full disk or a notifier outage
never loses it. The postmortem stub is written once, when the incident opens, pre-filled
with whatever evidence the run directory holds: a repeat never overwrites a stub people
may already be editing.
"""

from __future__ import annotations

import csv
import json
import logging
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aire.errors import AireError
from aire.home import Home, RunLayout
from aire.incidents.postmortem import render_postmortem, write_postmortem
from aire.incidents.store import IncidentStore, Severity, SourceKind, dedup_key
from aire.telemetry import get_telemetry

if TYPE_CHECKING:
    from aire.config import Notify, PipelineConfig
    from aire.data.storage import ObjectStore
    from aire.incidents.notifiers import ChannelResolver

log = logging.getLogger(__name__)


def record_task_failure(
    *, dag_id: str, run_id: str, task_id: str, try_number: int,
    exception: BaseException | None, params: dict[str, Any], log_url: str | None = None,
    home: Home | None = None, resolver: ChannelResolver | None = None,
    object_store: ObjectStore | None = None,
) -> dict[str, Any]:
    """Open (or count) the incident for a task's final failure.

    Call it only for a final failure. Airflow's ``on_failure_callback`` is one: it fires
    only when the task ends FAILED (a try that will be retried calls
    ``on_retry_callback``), including a fail-fast before the last try, which a
    try-number check would miss.
    """
    home = home or Home.from_env()  # not ensure(): a broken folder must not stop the record
    config = _config_of(params)
    pipeline = config.name if config else "unknown"
    evidence = evidence_from_run(home.run_dir(pipeline, run_id) if config else None)
    evidence.update({
        "failed_task": {"dag_id": dag_id, "task_id": task_id, "run_id": run_id,
                        "try_number": try_number, "log_url": log_url},
        "log_url": log_url, "batch": params.get("batch"), "config": params.get("config"),
        "exception": _describe(exception), "champion": champion_of(home, pipeline),
    })
    kind = SourceKind.VALIDATION_FAILURE if "validat" in task_id else SourceKind.TASK_FAILURE
    if type(exception).__name__ == "VerificationError":
        kind = SourceKind.SIGNATURE_FAILURE
    return open_incident(
        home, dedup_key(dag_id, run_id, task_id, try_number), pipeline=pipeline,
        title=f"{pipeline}: {task_id} failed in {dag_id} run {run_id}", severity=Severity.HIGH,
        source={"kind": kind.value, "dag_id": dag_id, "run_id": run_id, "task_id": task_id,
                "try_number": try_number},
        evidence=evidence, notify=config.notify if config else None, resolver=resolver,
        object_store=object_store,
    )


@dataclass(frozen=True)
class RejectedRun:
    """The run whose candidate is not promoted, as the incident needs it."""

    pipeline: str
    run_key: str
    batch_uri: str
    config_path: str
    run_dir: Path
    notify: Notify | None = None


def record_gate_rejection(home: Home, run: RejectedRun, decision: dict[str, Any], *,
                          resolver: ChannelResolver | None = None, object_store: ObjectStore | None = None,
                          approval: dict[str, Any] | None = None) -> dict[str, Any]:
    """The candidate is not promoted: the gate rejected it, or (``approval``, when the gate
    passed it) a person rejected it or nobody approved it in time."""
    failed = [check for check in decision.get("checks", []) if not check.get("passed")]
    names = ", ".join(check.get("name", "?") for check in failed) or "no decision record"
    title = f"{run.pipeline}: candidate rejected by the gate ({names})"
    evidence = evidence_from_run(run.run_dir)
    evidence.update({"batch": run.batch_uri, "config": run.config_path,
                     "run_id": run.run_key, "champion": champion_of(home, run.pipeline)})
    if decision.get("promote") is True:
        why = approval.get("summary") if approval else "no approval answer was recorded"
        title = f"{run.pipeline}: candidate passed the gate but was not approved ({why})"
        if approval:
            evidence["approval"] = approval
    return open_incident(
        home, dedup_key("gate", run.pipeline, run.run_key), pipeline=run.pipeline,
        title=title, severity=Severity.MEDIUM,
        source={"kind": SourceKind.GATE_REJECTION.value, "dag_id": "aire_retrain",
                "run_id": run.run_key, "task_id": "reject", "try_number": 1},
        evidence=evidence, notify=run.notify, resolver=resolver, object_store=object_store,
    )


# The postmortem's location when its file could not be written: only the store holds it.
POSTMORTEM_IN_STORE = "kept with the incident (aire_postmortems)"


def open_incident(home: Home, key: str, *, pipeline: str, title: str, severity: Severity,
                  source: dict[str, Any], evidence: dict[str, Any], notify: Notify | None = None,
                  resolver: ChannelResolver | None = None,
                  object_store: ObjectStore | None = None) -> dict[str, Any]:
    """Store first; then the postmortem stub, its object-storage copy, and notifications."""
    with IncidentStore(home.incidents_db_url) as store:
        incident, created = store.record(key, pipeline=pipeline, title=title, severity=severity,
                                         source=source, evidence=evidence)
        get_telemetry().record_incident(incident, created)
        if incident.postmortem is None:
            # The stub is kept with the incident too: the page renders it on any host, and a
            # full disk here loses only the file, never the stub.
            location = POSTMORTEM_IN_STORE
            try:
                path = write_postmortem(incident, home.postmortems_dir, evidence=evidence)
                location = _publish(path, pipeline, object_store)
            except AireError as exc:
                log.error("incident %s stored, but its postmortem file could not be written "
                          "(the stub is kept with the incident): %s", incident.id, exc)
            incident = store.set_postmortem(incident.id, location, text=render_postmortem(
                incident, {**incident.evidence, **evidence}))
        deliveries: list[dict[str, Any]] = []
        if created and notify is not None and notify.channels:
            if resolver is None:
                log.info("incident %s: no connection resolver in this process; "
                         "aire_incident_sweep will notify %d channel(s)",
                         incident.id, len(notify.channels))
            else:
                from aire.incidents.notifiers import Action, notify_incident

                try:
                    deliveries = [d.to_dict() for d in
                                  notify_incident(incident, Action.TRIGGER, notify, resolver, store)]
                except AireError as exc:  # e.g. the store went away while marking delivery
                    log.error("incident %s stored; notifying failed: %s", incident.id, exc)
    log.warning("incident %s %s: %s (postmortem: %s)", incident.id,
                "opened" if created else "seen again", title, incident.postmortem)
    return {"incident_id": incident.id, "created": created, "postmortem": incident.postmortem,
            "notified": deliveries}


def _publish(path: Path, pipeline: str, object_store: ObjectStore | None) -> str:
    """The stub's location to link: its object-storage URI when it lives in S3."""
    if object_store is None:
        return str(path)
    try:
        uri = object_store.put_file(path, f"postmortems/{pipeline}/{path.name}")
    except (AireError, OSError) as exc:  # a local stub beats none
        log.error("postmortem %s kept locally; copying it to %r failed: %s",
                  path, object_store, exc)
        return str(path)
    return uri if uri.startswith("s3://") else str(path)


def _config_of(params: dict[str, Any]) -> PipelineConfig | None:
    from aire.config import load_config

    try:
        return load_config(params.get("config", ""))
    except AireError:
        return None


def champion_of(home: Home, pipeline: str) -> dict[str, Any] | None:
    """The champion at the time of the incident, as the registry says (best effort)."""
    from aire.registry.mlflow_registry import Registry

    try:
        champion = Registry(home.mlflow_tracking_uri).champion(pipeline)
    except Exception as exc:  # noqa: BLE001 - evidence gathering must not mask the incident
        return {"unknown": str(exc)}
    return champion.to_dict() if champion else None


def evidence_from_run(run_dir: Path | None) -> dict[str, Any]:
    """Whatever reports the run had written when it stopped, under the postmortem's keys."""
    evidence: dict[str, Any] = {}
    if run_dir is None or not run_dir.exists():
        return evidence
    evidence["reports"] = str(run_dir)
    files = RunLayout(run_dir)
    validation = _read_json(files.validation)
    if validation:
        evidence["validation_failures"] = [c for c in validation.get("checks", [])
                                           if not c.get("success")]
    evaluation = _read_json(files.evaluation) or {}
    if evaluation.get("drift"):
        drift = evaluation["drift"]
        evidence["drift"] = {key: drift.get(key) for key in
                             ("drift_share", "drifted_columns", "null_rate_change",
                              "new_categories")}
    if evaluation.get("fairness"):
        evidence["fairness"] = evaluation["fairness"]
    decision = _read_json(files.decision)
    if decision:
        evidence["gate"] = {"decision": "promote" if decision.get("promote") else "reject",
                            "checks": decision.get("checks", [])}
    signing = _read_json(files.signing)
    if signing:
        evidence["model_digests"] = {"candidate": signing.get("digest")}
    analysis = _read_json(files.analysis_summary)
    if analysis:
        evidence["error_analysis"] = {key: analysis.get(key) for key in
                                      ("estimated_noise_rate", "n_suspected", "n_rows",
                                       "skipped", "reason")}
    suspects = files.analysis_dir / "review_queue.csv"
    if suspects.exists():
        with suspects.open(newline="") as handle:
            evidence["suspected_rows"] = [row for _, row in zip(range(10), csv.DictReader(handle), strict=False)]
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
