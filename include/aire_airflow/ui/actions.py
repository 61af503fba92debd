"""The write routes: acknowledge or resolve an incident, trigger a rollback.

Each is a POST with a JSON body (FastAPI refuses another content type with 422, so a
cross-site form cannot post one: the UI's cookie is SameSite=Lax and Airflow has no CSRF
token), needs edit rights on the DAG in its path (``auth.WRITE``), and records the
acting Airflow user: on the incident's timeline, or in the rollback run's conf (its
``reason`` reaches the ledger), its note and its triggering user.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from aire.dashboard.incidents import ROLLBACK_DAG, owning_dag
from aire.dashboard.sources import load_sources
from aire.incidents.store import IncidentStore
from aire.incidents.types import Incident, IncidentStateError, UnknownIncidentError
from aire_airflow.ui.auth import WRITE, UserName

router = APIRouter(dependencies=[WRITE])


class Acknowledge(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Resolve(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(min_length=1, max_length=2000, description="what fixed it")


class Rollback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pipeline: str = Field(min_length=1, max_length=200)
    target: str = Field(pattern=r"^(previous|[1-9][0-9]{0,8})$", description="a version, or 'previous'")
    reason: str = Field(default="", max_length=500)


def _incident(dag_id: str, incident_id: int) -> Incident:
    """The incident, if the DAG in the path owns it: edit rights on one DAG are not rights
    on another DAG's incidents."""
    try:
        with IncidentStore(load_sources().home.incidents_db_url) as store:
            incident = store.get(incident_id)
    except UnknownIncidentError as exc:
        raise HTTPException(404, str(exc)) from None
    if owning_dag(incident) != dag_id:
        raise HTTPException(404, f"incident {incident_id} does not belong to DAG {dag_id}")
    return incident


def _changed(incident: Incident, verb: str) -> dict[str, Any]:
    return {"message": f"incident {incident.id} {verb}", "incident": incident.to_dict()}


@router.post("/dags/{dag_id}/incidents/{incident_id}/acknowledge")
def acknowledge(dag_id: str, incident_id: int, body: Acknowledge, user: str = UserName) -> dict[str, Any]:
    _incident(dag_id, incident_id)
    try:
        with IncidentStore(load_sources().home.incidents_db_url) as store:
            return _changed(store.acknowledge(incident_id, user), f"acknowledged by {user}")
    except IncidentStateError as exc:
        raise HTTPException(409, str(exc)) from None


@router.post("/dags/{dag_id}/incidents/{incident_id}/resolve")
def resolve(dag_id: str, incident_id: int, body: Resolve, user: str = UserName) -> dict[str, Any]:
    _incident(dag_id, incident_id)
    try:
        with IncidentStore(load_sources().home.incidents_db_url) as store:
            return _changed(store.resolve(incident_id, user, body.note), f"resolved by {user}")
    except IncidentStateError as exc:
        raise HTTPException(409, str(exc)) from None


@router.post("/dags/{dag_id}/rollback")
def rollback(dag_id: str, body: Rollback, user: str = UserName) -> dict[str, Any]:
    """Trigger ``aire_rollback``; the DAG verifies the target before anything moves."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound
    from airflow.utils.types import DagRunTriggeredByType

    if dag_id != ROLLBACK_DAG:
        raise HTTPException(404, f"rollbacks run as {ROLLBACK_DAG}, not {dag_id}")
    pipeline = load_sources().pipeline(body.pipeline)
    if pipeline is None:
        raise HTTPException(404, f"no pipeline {body.pipeline!r}")
    said = f"{body.reason.strip()} " if body.reason.strip() else ""
    conf = {"config": str(pipeline.config_path), "target": body.target,
            "reason": f"{said}(requested by {user} in the AIRE UI)"}
    try:
        run = trigger_dag(ROLLBACK_DAG, triggered_by=DagRunTriggeredByType.UI, triggering_user_name=user,
                          conf=conf, note=f"rollback of {pipeline.name} to {body.target}, requested by {user}")
    except DagNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    if run is None:
        raise HTTPException(500, f"{ROLLBACK_DAG} was not triggered")
    return {"message": f"{ROLLBACK_DAG} run {run.run_id} queued: {pipeline.name} to {body.target}",
            "dag_id": ROLLBACK_DAG, "run_id": run.run_id, "conf": conf}
