"""``aire incidents list|show|ack|resolve`` in-process, on a fresh home."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aire.cli.main import main
from aire.home import PROJECT_ROOT
from aire.incidents.sources import record_task_failure

CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"


def aire(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    # One registry for the module: creating MLflow's tables takes seconds per home.
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(autouse=True)
def shared_registry(aire_home: Path, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)


@pytest.fixture
def incident_id(aire_home: Path) -> int:
    outcome = record_task_failure(
        dag_id="aire_retrain", run_id="manual__1", task_id="sign_model", try_number=3,
        exception=RuntimeError("HSM unreachable"), params={"config": str(CONFIG)})
    return int(outcome["incident_id"])


def test_list_and_show_in_json_carry_what_an_sre_needs(
        incident_id: int, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = aire(capsys, "incidents", "list", "--json")
    [listed] = json.loads(out)
    assert status == 0 and listed["id"] == incident_id
    assert (listed["pipeline"], listed["status"], listed["count"]) == ("credit-risk", "open", 1)
    assert listed["evidence"]["exception"]["message"] == "HSM unreachable"
    assert Path(listed["postmortem"]).is_file()
    _, out, _ = aire(capsys, "incidents", "show", str(incident_id), "--json")
    assert json.loads(out) == listed
    _, out, _ = aire(capsys, "incidents", "show", str(incident_id))
    assert f"#{incident_id} [high] open" in out and "postmortem: " in out and "opened" in out
    _, out, _ = aire(capsys, "incidents", "list", "--status", "resolved", "--json")
    assert json.loads(out) == []


def test_ack_then_resolve_and_the_moves_that_are_refused(
        incident_id: int, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = aire(capsys, "incidents", "ack", str(incident_id), "--by", "alice", "--json")
    assert status == 0 and json.loads(out)["status"] == "acknowledged"
    status, out, _ = aire(capsys, "incidents", "resolve", str(incident_id), "--by", "alice",
                          "--note", "rotated the HSM credentials")
    assert status == 0 and f"incident {incident_id} is resolved" in out
    refused: list[tuple[list[str], str]] = [
        (["resolve", str(incident_id), "--note", "again"], "is resolved; cannot mark it resolved"),
        (["ack", "9999"], "no incident with id 9999"),
    ]
    for argv, message in refused:
        status, _, err = aire(capsys, "incidents", *argv)
        assert status == 2 and message in err
    _, out, _ = aire(capsys, "incidents", "list")
    assert "resolved" in out and "sign_model failed" in out


def test_resolve_needs_a_note(incident_id: int) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["incidents", "resolve", str(incident_id)])
    assert exit_info.value.code == 2  # argparse: --note is required


def test_slo_status_human_table(aire_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = aire(capsys, "slo", "status", "--config", str(CONFIG))
    rows: dict[str, Any] = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert status == 0 and out.startswith("credit-risk: 6 objective(s) over 0 run(s)")
    assert rows["pipeline_success"][-1] == "no_data" and rows["data_freshness"][-1] == "no_data"
