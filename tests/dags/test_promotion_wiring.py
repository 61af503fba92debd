"""The gate's place in aire_retrain and the rollback DAG's Params, as Airflow parses them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PARSE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
retrain = bag.dags["aire_retrain"]
gate = retrain.get_task("gate")
rollback = bag.dags["aire_rollback"]
def wiring(task_id):
    task = retrain.get_task(task_id)
    return {"trigger_rule": str(task.trigger_rule.value), "upstream": sorted(task.upstream_task_ids),
            "downstream": sorted(task.downstream_task_ids), "type": type(task).__name__}
approval = retrain.get_task("await_approval")
print(json.dumps({
    "gate": {"trigger_rule": str(gate.trigger_rule.value), "upstream": sorted(gate.upstream_task_ids),
             "downstream": sorted(gate.downstream_task_ids)},
    "after_gate": {t: wiring(t) for t in ("await_approval", "promote", "reject")},
    "approval": {"options": approval.options, "defaults": approval.defaults, "multiple": approval.multiple,
                 "options_mapping": approval.options_mapping, "retries": approval.retries,
                 "response_timeout": approval.response_timeout is not None},
    "rollback": {"tasks": [t.task_id for t in rollback.tasks], "target": rollback.params["target"],
                 "schema": rollback.params.get_param("target").schema},
}))
"""


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("home")
    env = {**os.environ, "AIRE_HOME": str(home), "AIRFLOW_HOME": str(home / "airflow"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", PARSE, str(ROOT / "dags")], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_gate_decides_even_when_evaluate_failed_but_not_without_a_candidate(parsed: dict) -> None:
    # all_done_min_one_success over {sign_model, evaluate}: evaluate failed and sign_model
    # succeeded -> the gate runs and rejects on missing evidence; both failed -> it does not.
    gate = parsed["gate"]
    assert gate["trigger_rule"] == "all_done_min_one_success"
    assert gate["upstream"] == ["evaluate", "sign_model"]
    assert gate["downstream"] == ["await_approval", "promote", "reject"]


def test_the_gate_branches_to_promotion_directly_or_through_a_person(parsed: dict) -> None:
    # The config is read at run time, so every path exists: the gate picks one. Picking
    # await_approval skips nothing (promote and reject are downstream of it); picking
    # promote or reject skips await_approval, which the other two's rule tolerates.
    after = parsed["after_gate"]
    assert after["await_approval"]["type"] == "AwaitApproval"
    assert after["await_approval"]["upstream"] == ["gate"]
    assert after["await_approval"]["downstream"] == ["promote", "reject"]
    for task_id in ("promote", "reject"):
        assert after[task_id]["upstream"] == ["await_approval", "gate"]
        # runs when one upstream succeeded and none failed: a skipped approval is fine,
        # a failed one (or a failed gate) leaves the candidate where it is
        assert after[task_id]["trigger_rule"] == "none_failed_min_one_success"


def test_approval_options_map_to_promote_or_reject_and_the_timeout_rejects(parsed: dict) -> None:
    approval = parsed["approval"]
    assert approval["options"] == ["Approve", "Reject"] and approval["multiple"] is False
    assert approval["options_mapping"] == {"Approve": "promote", "Reject": "reject"}
    assert approval["defaults"] == ["Reject"]  # what the scheduler takes when nobody answers
    assert approval["response_timeout"] is False  # set from the run's config when the task runs
    assert approval["retries"] >= 2


@pytest.mark.parametrize(("value", "valid"), [("previous", True), ("3", True), ("0", False), ("-1", False),
                                              ("latest", False), ("", False)])
def test_rollback_target_param_takes_a_version_or_previous(parsed: dict, value: str, valid: bool) -> None:
    import jsonschema

    assert parsed["rollback"]["tasks"] == ["rollback"] and parsed["rollback"]["target"] == "previous"
    schema = parsed["rollback"]["schema"]
    if valid:
        jsonschema.validate(value, schema)
    else:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(value, schema)
