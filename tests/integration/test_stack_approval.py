"""aire_retrain with ``approval: {required: true}`` on a real deployment: api-server,
scheduler and dag-processor with the LocalExecutor on PostgreSQL, the MLflow server.

The story, in order, on one pipeline: the gate passes the first candidate and the run
parks at ``await_approval`` (Airflow 3.3's ``awaiting_input``), showing the gate's checks;
a user who is not an approver is refused; the approver approves through the public REST
API and the candidate becomes the champion, the approver recorded on the version, the
MLflow run and the ledger. The next candidate is rejected by the approver, the one after
gets no answer before its timeout: both end in ``reject`` with an incident that says
why, and the champion stays.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.airflow_stack import wait_for_task_state
from tests.support.deployment import Deployment, environment
from tests.support.servers import wait_until

pytestmark = pytest.mark.integration

DAG = "aire_retrain"
PIPELINE = "credit-risk-approval"
USERS = {"alice": "alice-pw-approves", "mallory": "mallory-pw-is-no-approver"}


@pytest.fixture(scope="module")
def deployment(deploy: Callable[..., Deployment], tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """Two users of the simple auth manager with known passwords; a 5 s timeout sweep."""
    passwords = tmp_path_factory.mktemp("auth") / "passwords.json"
    passwords.write_text(json.dumps(USERS))
    return deploy(env={
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{user}:admin" for user in USERS),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "5",
    })


class Api:
    """Airflow's public REST API as one user."""

    def __init__(self, deployment: Deployment, user: str) -> None:
        self.base = f"http://127.0.0.1:{deployment.stack.api_port}"
        token = httpx.post(f"{self.base}/auth/token", json={"username": user, "password": USERS[user]},
                           timeout=30)
        token.raise_for_status()
        self.headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

    def hitl(self, run_id: str, method: str = "GET", **body: Any) -> httpx.Response:
        url = f"{self.base}/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/await_approval/-1/hitlDetails"
        return httpx.request(method, url, headers=self.headers, json=body or None, timeout=30)


def config(deployment: Deployment, **approval: Any) -> Path:
    path = deployment.config(PIPELINE)  # the example pipeline, reports on S3
    data = yaml.safe_load(path.read_text())
    data["approval"] = {"required": True, **approval}
    out = path.with_name(f"{PIPELINE}-{len(list(path.parent.glob('*.yaml')))}.yaml")
    out.write_text(yaml.safe_dump(data))
    return out


def start(deployment: Deployment, config_path: Path) -> str:
    """Trigger a run and wait until it waits for a person (or fail with what the gate said)."""
    stack = deployment.stack
    batch = str(deployment.home / "data" / "batch_clean.csv")
    run_id = stack.trigger(DAG, conf={"config": str(config_path), "batch": batch})
    state = wait_for_task_state(stack, DAG, run_id, "await_approval",
                                ("awaiting_input", "skipped", "upstream_failed", "failed"), timeout=900)
    if state != "awaiting_input":
        decision = deployment.home / "reports" / PIPELINE / run_id / "decision.json"
        pytest.fail(f"await_approval is {state}, not awaiting input: tasks "
                    f"{ {k: v.state for k, v in stack.tasks(DAG, run_id).items()} }; decision "
                    f"{decision.read_text() if decision.exists() else 'none'}")
    # Airflow 3.3.2 race: an answer that lands before the scheduler has processed the
    # executor's "workload finished" event of the parked try makes the scheduler see a
    # queued task its executor called done, and fail that try (the retry then asks again,
    # and the answer is lost). A person takes longer than that second; the test waits for it.
    scheduler = stack.process("scheduler")
    parked = (f"TaskInstance Finished: dag_id={DAG}, task_id=await_approval, run_id={run_id},")
    wait_until(lambda: any(parked in line and "state=awaiting_input" in line
                           for line in scheduler.log_path.read_text(errors="replace").splitlines()),
               60, "the scheduler to see await_approval parked", stack.processes, 0.5)
    return run_id


def champion(deployment: Deployment) -> Any:
    from aire.registry.mlflow_registry import Registry

    with environment(deployment.client_env()):
        return Registry(deployment.mlflow.uri).champion(PIPELINE)


@pytest.fixture(scope="module")
def approved(deployment: Deployment) -> dict[str, Any]:
    run_id = start(deployment, config(deployment, approvers=["alice"]))
    request = Api(deployment, "alice").hitl(run_id)
    refused = Api(deployment, "mallory").hitl(run_id, "PATCH", chosen_options=["Approve"])
    answer = Api(deployment, "alice").hitl(run_id, "PATCH", chosen_options=["Approve"])
    state = deployment.stack.wait_run(DAG, run_id, timeout=600)
    return {"run_id": run_id, "request": request, "refused": refused, "answer": answer, "state": state,
            "tasks": {k: v.state for k, v in deployment.stack.tasks(DAG, run_id).items()}}


def test_the_run_waits_for_a_person_who_sees_the_gates_checks(approved: dict[str, Any]) -> None:
    assert approved["request"].status_code == 200, approved["request"].text
    request = approved["request"].json()
    assert request["subject"] == f"{PIPELINE}: promote the candidate of run {approved['run_id']}?"
    assert request["options"] == ["Approve", "Reject"] and request["defaults"] == ["Reject"]
    assert [user["id"] for user in request["assigned_users"]] == ["alice"]
    body = request["body"]
    assert "| check | value | threshold | result |" in body
    for check in ("drift_share", "signature_verified"):
        assert f"| {check} |" in body


def test_only_an_approver_may_answer(approved: dict[str, Any]) -> None:
    assert approved["refused"].status_code == 403, approved["refused"].text
    assert approved["answer"].status_code == 200, approved["answer"].text
    assert approved["answer"].json()["responded_by"] == {"id": "alice", "name": "alice"}


def test_approval_promotes_and_records_the_approver(deployment: Deployment, approved: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    from aire.home import Home
    from aire.trust.ledger import Ledger

    assert approved["state"] == "success", approved["tasks"]
    assert approved["tasks"]["promote"] == "success" and approved["tasks"]["reject"] == "skipped"
    current = champion(deployment)
    assert current is not None and current.run_key == approved["run_id"]
    with environment(deployment.client_env()):
        version = MlflowClient().get_model_version(PIPELINE, str(current.version))
        run = MlflowClient().get_run(version.run_id)
        # The deployment's home uses services: its ledger is the incident database's (as the workers').
        entries = Ledger.for_home(Home(deployment.home)).entries()
    assert version.tags["aire.approved_by"] == "alice"
    assert run.data.tags["aire.approval"] == "approved" and run.data.tags["aire.approved_by"] == "alice"
    [entry] = [e.entry for e in entries if e.kind == "promotion" and e.entry["run_key"] == approved["run_id"]]
    assert entry["approval"]["outcome"] == "approved"
    assert entry["approval"]["responded_by"] == {"id": "alice", "name": "alice"}


@pytest.fixture(scope="module")
def rejected(deployment: Deployment, approved: dict[str, Any]) -> dict[str, Any]:
    """The next candidate: the approver rejects it."""
    before = champion(deployment)
    run_id = start(deployment, config(deployment, approvers=["alice"]))
    answer = Api(deployment, "alice").hitl(run_id, "PATCH", chosen_options=["Reject"])
    state = deployment.stack.wait_run(DAG, run_id, timeout=600)
    return {"run_id": run_id, "answer": answer, "state": state, "before": before,
            "tasks": {k: v.state for k, v in deployment.stack.tasks(DAG, run_id).items()}}


def test_a_person_rejecting_keeps_the_champion_and_opens_an_incident(deployment: Deployment,
                                                                     rejected: dict[str, Any]) -> None:
    assert rejected["answer"].status_code == 200, rejected["answer"].text
    assert rejected["tasks"]["reject"] == "success" and rejected["tasks"]["promote"] == "skipped"
    assert rejected["tasks"]["await_approval"] == "success"
    assert champion(deployment).version == rejected["before"].version
    with environment(deployment.client_env()):
        [incident] = deployment.incidents(rejected["run_id"])
    assert incident.source.kind == "gate_rejection"
    assert "was not approved (rejected by alice at" in incident.title


@pytest.fixture(scope="module")
def timed_out(deployment: Deployment, rejected: dict[str, Any]) -> dict[str, Any]:
    """The candidate after that: nobody answers within its 18-second timeout."""
    before = champion(deployment)
    run_id = start(deployment, config(deployment, timeout_hours=0.005))
    state = deployment.stack.wait_run(DAG, run_id, timeout=300)
    return {"run_id": run_id, "state": state, "before": before,
            "tasks": {k: v.state for k, v in deployment.stack.tasks(DAG, run_id).items()},
            "request": Api(deployment, "mallory").hitl(run_id)}


def test_no_answer_in_time_rejects(deployment: Deployment, timed_out: dict[str, Any]) -> None:
    assert timed_out["tasks"]["reject"] == "success" and timed_out["tasks"]["promote"] == "skipped"
    request = timed_out["request"].json()
    assert request["chosen_options"] == ["Reject"] and request["responded_by_user"] is None
    assert champion(deployment).version == timed_out["before"].version
    with environment(deployment.client_env()):
        [incident] = deployment.incidents(timed_out["run_id"])
    assert "was not approved (nobody approved it within 0.005 h)" in incident.title
