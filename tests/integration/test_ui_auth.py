"""The AIRE pages on Airflow's real api-server with the simple auth manager: who may read,
who may write, and what a write records.

One home with a real pipeline run (the clean example batch: champion v1, its reports) and
incidents recorded in its store; one ``airflow api-server`` on PostgreSQL serving it, with
four users, one per simple-auth role: ``viewer`` (role viewer), ``op`` (role user, despite its
name), ``operator`` (role op) and ``admin`` (role admin).

The matrix: anonymous gets 401 on every route, read or write; the viewer reads every page
and gets 403 on every write, which leaves the incident as it was; the user, the op and the
admin acknowledge, resolve and request a rollback, and their names land on the incident's
timeline and in the rollback run (its conf's reason, which the DAG writes into the ledger,
and its triggering user).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from aire.home import PROJECT_ROOT, Home
from aire.incidents.store import IncidentSource, IncidentStore, Severity, Status
from aire.pipeline.home_setup import prepare_home
from aire.pipeline.run_context import RunSpec
from aire.pipeline.runner import run_all
from tests.support.airflow_stack import AirflowStack
from tests.support.homes import isolated_home
from tests.support.servers import BIN, Databases, Process, http_ok, wait_until

pytestmark = pytest.mark.integration

CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"
RUN_ID = "manual__2026-12-02T10:00:00+00:00"  # an Airflow run id: ':' and '+' in the URL
USERS = {"viewer": ("viewer", "viewer-pw-7Qx"), "op": ("user", "op-pw-3Lm"), "operator": ("op", "operator-pw-8Wz"),
         "admin": ("admin", "admin-pw-9Kd")}
WRITERS = ["op", "operator", "admin"]  # roles user, op and admin: each has edit rights on DAGs
HOSTILE_TITLE = '<script>alert("owned")</script> drift on "purpose" & \'housing\''


@dataclass
class Ui:
    base: str
    home: Home
    incidents: dict[str, int]  # what each incident is for -> its id

    def client(self, user: str | None) -> httpx.Client:
        headers = {}
        if user is not None:
            token = httpx.post(f"{self.base}/auth/token", json={"username": user, "password": USERS[user][1]},
                               timeout=30)
            token.raise_for_status()
            headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        return httpx.Client(base_url=self.base, headers=headers, timeout=60)

    def incident(self, purpose: str) -> Any:
        with IncidentStore(self.home.incidents_db_url) as store:
            return store.get(self.incidents[purpose])


def _record(home: Home) -> dict[str, int]:
    ids = {}
    with IncidentStore(home.incidents_db_url) as store:
        for purpose, title in (("ack-op", "gate rejected run 2"), ("ack-admin", "gate rejected run 3"),
                               ("ack-operator", "gate rejected run 4"),
                               ("resolve-op", "validation failed"), ("resolve-admin", "signature failed"),
                               ("resolve-operator", "reference missing"),
                               ("viewer", "the viewer may not touch this"), ("hostile", HOSTILE_TITLE)):
            incident, _ = store.record(f"ui-test-{purpose}", pipeline="credit-risk", title=title,
                                       severity=Severity.HIGH, evidence={"note": title},
                                       source=IncidentSource(kind="gate_rejection", dag_id="aire_retrain",
                                                             run_id=RUN_ID))
            ids[purpose] = incident.id
    return ids


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory, databases: Databases, airflow_template: str, stack_logs: Path,
       stack_token: str) -> Iterator[Ui]:
    with isolated_home(tmp_path_factory.mktemp("ui-home")) as root:
        home = Home.from_env()
        prepare_home(home, migrate_airflow=False)
        outcome = run_all(RunSpec(str(CONFIG), str(home.data_dir / "batch_clean.csv"), RUN_ID))["outcome"]
        assert outcome == "promoted", outcome
        incidents = _record(home)
        passwords = root / "passwords.json"
        passwords.write_text(json.dumps({user: password for user, (_, password) in USERS.items()}))
        stack = AirflowStack(root, databases, airflow_template, stack_logs, stack_token, env={
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{role}" for u, (role, _) in USERS.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        })
        # aire_rollback must be in the metadata DB to be triggered; no scheduler runs it here
        # (tests/e2e/test_rollback_dag.py runs the DAG and checks its reason reaches the ledger).
        done = subprocess.run([str(BIN / "airflow"), "dags", "reserialize"], env=stack.env, capture_output=True,
                              text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        api = Process("api-server", [str(BIN / "airflow"), "api-server"], stack.env, stack_logs, stack_token)
        stack.processes.append(api)
        try:
            base = f"http://127.0.0.1:{stack.api_port}"
            wait_until(lambda: http_ok(f"{base}/api/v2/version"), 180, "the api-server", [api], 1.0)
            yield Ui(base, home, incidents)
        finally:
            stack.stop()


def run_path(name: str = "") -> str:
    quoted = RUN_ID.replace(":", "%3A").replace("+", "%2B")
    return f"/aire/dags/aire_retrain/runs/{quoted}{name}"


READS = ["/aire/", "/aire/versions", "/aire/versions?pipeline=credit-risk&metric=candidate.roc_auc",
         "/aire/incidents", "/aire/incidents?status=open", "/aire/trends", run_path(),
         run_path("/report?name=evaluation%2Fevaluation.html"), run_path("/reports/evaluation/evaluation.html"),
         "/aire/static/aire.js", "/aire/static/aire.css"]


def writes(ui: Ui, purpose: str) -> list[tuple[str, dict[str, Any]]]:
    incident = f"/aire/dags/aire_retrain/incidents/{ui.incidents[purpose]}"
    return [(f"{incident}/acknowledge", {}), (f"{incident}/resolve", {"note": "fixed"}),
            ("/aire/dags/aire_rollback/rollback", {"pipeline": "credit-risk", "target": "previous"})]


def test_the_plugin_loads_once_with_its_nav_entry_and_run_tab(ui: Ui) -> None:
    with ui.client("viewer") as client:
        plugins = client.get("/api/v2/plugins").json()
        errors = client.get("/api/v2/plugins/importErrors").json()
    assert errors == {"import_errors": [], "total_entries": 0}
    [plugin] = plugins["plugins"]
    assert plugin["name"] == "aire" and "airflow.plugins" in plugin["source"]  # through the entry point
    assert [app["url_prefix"] for app in plugin["fastapi_apps"]] == ["/aire"]
    views = {view["destination"]: view for view in plugin["external_views"]}
    assert views["nav"]["href"] == "aire/" and views["nav"]["url_route"]
    assert views["dag_run"]["href"] == "aire/dags/{DAG_ID}/runs/{RUN_ID}" and views["dag_run"]["url_route"]


def test_anonymous_gets_401_on_every_route(ui: Ui) -> None:
    with ui.client(None) as client:
        for route in READS:
            assert client.get(route).status_code == 401, route
        for route, body in writes(ui, "viewer"):
            assert client.post(route, json=body).status_code == 401, route
        client.cookies.set("_token", "not-a-jwt")
        forged = client.get("/aire/")
    assert forged.status_code == 403 and "credit-risk" not in forged.text  # Airflow: a token that does not verify


@pytest.mark.parametrize("reader", ["viewer", "operator"])  # the least and a middle role
def test_a_reader_reads_every_page(ui: Ui, reader: str) -> None:
    with ui.client(reader) as client:
        for route in READS:
            response = client.get(route)
            assert response.status_code == 200, (route, response.text[:500])
        overview = client.get("/aire/")
        run = client.get(run_path())
    assert "script-src 'self'" in overview.headers["content-security-policy"]
    assert '<section class="pipeline" data-pipeline="credit-risk">' in overview.text
    assert '<span class="badge ok">champion</span>' in overview.text and "v1" in overview.text
    assert "gate rejected run 2" in overview.text  # an open incident of the pipeline
    for check in ("data_validation", "drift_share", "signature_verified"):
        assert f"<td>{check}</td>" in run.text
    assert "evaluation/evaluation.html" in run.text


def test_the_viewer_gets_403_on_every_write_and_nothing_changes(ui: Ui) -> None:
    before = ui.incident("viewer")
    with ui.client("viewer") as client:
        for route, body in writes(ui, "viewer"):
            response = client.post(route, json=body)
            assert response.status_code == 403, (route, response.text)
    after = ui.incident("viewer")
    assert after.status is Status.OPEN and after.timeline == before.timeline


@pytest.mark.parametrize("user", WRITERS)
def test_a_user_acknowledges_and_their_name_lands_on_the_timeline(ui: Ui, user: str) -> None:
    incident_id = ui.incidents[f"ack-{user}"]
    with ui.client(user) as client:
        response = client.post(f"/aire/dags/aire_retrain/incidents/{incident_id}/acknowledge", json={})
        page = client.get(f"/aire/incidents/{incident_id}")
    assert response.status_code == 200, response.text
    incident = ui.incident(f"ack-{user}")
    assert incident.status is Status.ACKNOWLEDGED
    assert (incident.timeline[-1].event, incident.timeline[-1].detail) == ("acknowledged", f"by {user}")
    assert f"<td>acknowledged</td><td>by {user}</td>" in page.text


@pytest.mark.parametrize("user", WRITERS)
def test_a_user_resolves_with_a_note(ui: Ui, user: str) -> None:
    incident_id = ui.incidents[f"resolve-{user}"]
    with ui.client(user) as client:
        response = client.post(f"/aire/dags/aire_retrain/incidents/{incident_id}/resolve",
                               json={"note": "re-ran the batch after the upstream fix"})
        again = client.post(f"/aire/dags/aire_retrain/incidents/{incident_id}/resolve", json={"note": "twice"})
    assert response.status_code == 200, response.text
    incident = ui.incident(f"resolve-{user}")
    assert incident.status is Status.RESOLVED
    assert incident.timeline[-1].detail == f"by {user}: re-ran the batch after the upstream fix"
    assert again.status_code == 409  # resolving a resolved incident is refused, not recorded twice


def test_writes_take_only_a_json_body_posted_to_the_incidents_own_dag(ui: Ui) -> None:
    incident = ui.incidents["viewer"]
    with ui.client("op") as client:
        form = client.post(f"/aire/dags/aire_retrain/incidents/{incident}/acknowledge", data={"x": "1"})
        get = client.get(f"/aire/dags/aire_retrain/incidents/{incident}/acknowledge")
        other_dag = client.post(f"/aire/dags/aire_rollback/incidents/{incident}/acknowledge", json={})
        extra = client.post(f"/aire/dags/aire_retrain/incidents/{incident}/resolve", json={"note": "x", "by": "eve"})
    assert form.status_code == 422 and get.status_code == 405
    assert other_dag.status_code == 404 and extra.status_code == 422
    assert ui.incident("viewer").status is Status.OPEN


@pytest.mark.parametrize("user", WRITERS)
def test_a_rollback_request_triggers_aire_rollback_in_the_users_name(ui: Ui, user: str) -> None:
    with ui.client(user) as client:
        response = client.post("/aire/dags/aire_rollback/rollback",
                               json={"pipeline": "credit-risk", "target": "previous", "reason": "drill"})
        bad = client.post("/aire/dags/aire_rollback/rollback", json={"pipeline": "credit-risk", "target": "../x"})
        unknown = client.post("/aire/dags/aire_rollback/rollback", json={"pipeline": "nope", "target": "1"})
        wrong_dag = client.post("/aire/dags/aire_retrain/rollback", json={"pipeline": "credit-risk", "target": "1"})
    assert response.status_code == 200, response.text
    assert (bad.status_code, unknown.status_code, wrong_dag.status_code) == (422, 404, 404)
    run_id = response.json()["run_id"]
    with ui.client("admin") as client:
        run = client.get(f"/api/v2/dags/aire_rollback/dagRuns/{run_id}").json()
    assert run["triggering_user_name"] == user and run["state"] == "queued"
    assert run["conf"] == {"config": str(CONFIG), "target": "previous",
                           "reason": f"drill (requested by {user} in the AIRE UI)"}


@pytest.mark.parametrize("name", ["..%2F..%2F..%2Fledger.jsonl", "%2E%2E/%2E%2E/%2E%2E/keys/signing.key",
                                  "model.sig", "model/weights.safetensors", "batch.parquet", "nothing.html"])
def test_only_report_files_of_the_runs_own_folder_are_served(ui: Ui, name: str) -> None:
    with ui.client("admin") as client:
        assert client.get(run_path(f"/reports/{name}")).status_code == 404


def test_reports_are_sandboxed_without_same_origin_rights(ui: Ui) -> None:
    with ui.client("viewer") as client:
        report = client.get(run_path("/reports/evaluation/evaluation.html"))
        frame = client.get(run_path("/report?name=evaluation%2Fevaluation.html"))
    policy = report.headers["content-security-policy"]
    assert policy.startswith("sandbox allow-scripts;") and "allow-same-origin" not in policy
    assert "connect-src 'none'" in policy
    assert '<iframe src="/aire/dags/aire_retrain/runs/' in frame.text and 'sandbox="allow-scripts"' in frame.text


def test_an_incident_title_with_script_and_quotes_is_shown_as_text(ui: Ui) -> None:
    with ui.client("viewer") as client:
        listing = client.get("/aire/incidents").text
        detail = client.get(f"/aire/incidents/{ui.incidents['hostile']}").text
    for page in (listing, detail):
        assert "<script>alert" not in page
        assert "&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt; drift on &quot;purpose&quot; &amp; " \
               "&#x27;housing&#x27;" in page
