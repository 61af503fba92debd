"""The AIRE pages on the production-like deployment: api-server, scheduler and dag-processor
on PostgreSQL, the MLflow server (PostgreSQL, S3 artifacts, basic auth), incidents in
PostgreSQL, reports published to S3.

One aire_retrain run through the scheduler promotes a champion; the pages then show it
verified now (its artifacts fetched back from the MLflow server), the run's gate decision
and reports, and an incident from the PostgreSQL store, which a user acknowledges.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.deployment import Deployment, pipeline_config
from tests.support.servers import MlflowServer

pytestmark = pytest.mark.integration

PIPELINE = "credit-risk-ui"
USERS = {"viewer": ("viewer", "viewer-pw-stack-2Hd"), "op": ("user", "op-pw-stack-8Wq")}


@pytest.fixture(scope="module")
def stack(deploy: Callable[..., Deployment], mlflow_server: MlflowServer,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    configs = tmp_path_factory.mktemp("ui-configs")
    config = pipeline_config(configs, PIPELINE, mlflow_server)  # reports on S3 through aire_s3
    passwords = configs / "passwords.json"
    passwords.write_text(json.dumps({user: password for user, (_, password) in USERS.items()}))
    deployment = deploy(env={
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{role}" for u, (role, _) in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRE_UI_CONFIGS": str(config),
        # The pages read the registry as any other MLflow client in the deployment does.
        "MLFLOW_TRACKING_USERNAME": mlflow_server.USER, "MLFLOW_TRACKING_PASSWORD": mlflow_server.password,
    })
    run_id = deployment.stack.trigger("aire_retrain", conf={
        "config": str(config), "batch": str(deployment.home / "data" / "batch_clean.csv")})
    state = deployment.stack.wait_run("aire_retrain", run_id, timeout=900)
    assert state == "success", {k: v.state for k, v in deployment.stack.tasks("aire_retrain", run_id).items()}
    return {"deployment": deployment, "run_id": run_id}


def client(stack: dict[str, Any], user: str) -> httpx.Client:
    base = f"http://127.0.0.1:{stack['deployment'].stack.api_port}"
    token = httpx.post(f"{base}/auth/token", json={"username": user, "password": USERS[user][1]}, timeout=30)
    token.raise_for_status()
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token.json()['access_token']}"},
                        timeout=120)


def test_the_overview_shows_the_champion_verified_from_the_mlflow_server(stack: dict[str, Any]) -> None:
    with client(stack, "viewer") as viewer:
        overview = viewer.get("/aire/")
    assert overview.status_code == 200, overview.text[:2000]
    assert f'data-pipeline="{PIPELINE}"' in overview.text
    assert '<span class="badge ok">champion</span></td><td>v1</td>' in overview.text
    assert '<span class="badge ok">pass</span>' in overview.text  # verified now
    assert f"run {stack['run_id']} (gate)" in overview.text
    assert 'class="problem"' not in overview.text  # registry, incidents and SLOs all read


def test_the_run_page_shows_the_decision_and_serves_its_reports(stack: dict[str, Any]) -> None:
    run = stack["run_id"]
    path = f"/aire/dags/aire_retrain/runs/{run.replace(':', '%3A').replace('+', '%2B')}"
    with client(stack, "viewer") as viewer:
        page = viewer.get(path)
        report = viewer.get(f"{path}/reports/evaluation/evaluation.html")
    assert page.status_code == 200 and "<td>signature_verified</td>" in page.text
    assert report.status_code == 200 and report.headers["content-security-policy"].startswith("sandbox")


def test_an_incident_in_postgresql_is_acknowledged_by_the_user(stack: dict[str, Any]) -> None:
    from aire.incidents.store import IncidentSource, IncidentStore, Severity, Status

    deployment: Deployment = stack["deployment"]
    with IncidentStore(deployment.incidents_url) as store:
        incident, _ = store.record(f"ui-stack-{stack['run_id']}", pipeline=PIPELINE, title="stack incident",
                                   severity=Severity.LOW, evidence={},
                                   source=IncidentSource(kind="slo_breach"))
    with client(stack, "viewer") as viewer:
        listed = viewer.get("/aire/incidents?status=open")
        refused = viewer.post(f"/aire/dags/aire_retrain/incidents/{incident.id}/acknowledge", json={})
    with client(stack, "op") as op:
        done = op.post(f"/aire/dags/aire_retrain/incidents/{incident.id}/acknowledge", json={})
    assert "stack incident" in listed.text and refused.status_code == 403
    assert done.status_code == 200, done.text
    with IncidentStore(deployment.incidents_url) as store:
        after = store.get(incident.id)
    assert after.status is Status.ACKNOWLEDGED and after.timeline[-1].detail == "by op"



def test_a_postmortem_a_worker_wrote_on_another_host_renders_from_the_incident_store(
        stack: dict[str, Any], tmp_path: Any) -> None:
    from aire.home import Home
    from aire.incidents.sources import open_incident
    from aire.incidents.store import Severity
    from tests.support.deployment import environment

    deployment: Deployment = stack["deployment"]
    worker = Home(tmp_path / "worker-home")  # not the api-server's home: its file stays there
    with environment({"AIRE_INCIDENTS_DB": deployment.incidents_url}):
        opened = open_incident(worker, f"ui-stack-elsewhere-{stack['run_id']}", pipeline=PIPELINE,
                               title="failed on another host", severity=Severity.HIGH,
                               source={"kind": "slo_breach"}, evidence={"detail": "disk of worker-7 full"})
    assert str(opened["postmortem"]).startswith(str(worker.postmortems_dir))
    with client(stack, "viewer") as viewer:
        page = viewer.get(f"/aire/incidents/{opened['incident_id']}")
    assert page.status_code == 200, page.text[:2000]
    assert 'class="postmortem"' in page.text and "Postmortem: failed on another host" in page.text
    assert "no postmortem yet" not in page.text
