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
gate = bag.dags["aire_retrain"].get_task("gate")
rollback = bag.dags["aire_rollback"]
print(json.dumps({
    "gate": {"trigger_rule": str(gate.trigger_rule.value), "upstream": sorted(gate.upstream_task_ids),
             "downstream": sorted(gate.downstream_task_ids)},
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
    assert gate["upstream"] == ["evaluate", "sign_model"] and gate["downstream"] == ["promote", "reject"]


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
