"""The SLO history read from a real MLflow SQLite store plus the incident store, end to end."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

from aire.cli.main import main
from aire.home import PROJECT_ROOT, Home
from aire.incidents.store import IncidentStore

EXAMPLE = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"
DAY, HOUR = timedelta(days=1), timedelta(hours=1)


def _mlflow_run(client: MlflowClient, experiment: str, key: str, start: datetime,
                end: datetime | None, status: str, gate: str | None,
                evaluation: dict[str, Any] | None, tmp: Path) -> None:
    tags = {"aire.run_key": key, **({"aire.gate": gate} if gate else {})}
    run_id = client.create_run(experiment, start_time=int(start.timestamp() * 1000),
                               tags=tags).info.run_id
    if evaluation is not None:
        report = tmp / key / "evaluation.json"
        report.parent.mkdir(parents=True)
        report.write_text(json.dumps(evaluation))
        client.log_artifact(run_id, str(report), "evaluation")
    if end is not None:
        client.set_terminated(run_id, status, end_time=int(end.timestamp() * 1000))


def _evaluation(candidate: float, champion: float | None, drift: float, gap: float) -> dict[str, Any]:
    return {"quality": {"candidate": {"accuracy": candidate},
                        "comparison": {"champion": {"accuracy": champion}} if champion else None},
            "drift": {"drift_share": drift},
            "fairness": {"candidate": {"max_gap": gap}, "champion": {"max_gap": gap + 0.02}}}


def test_history_from_mlflow_and_incidents_end_to_end(aire_home: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    home = Home.from_env().ensure()
    now = datetime.now(UTC)
    client = MlflowClient(home.mlflow_tracking_uri)
    experiment = client.create_experiment("aire/credit-risk",
                                          artifact_location=(tmp_path / "artifacts").as_uri())
    _mlflow_run(client, experiment, "promoted-1", now - 3 * DAY - HOUR, now - 3 * DAY, "FINISHED",
                "promote", _evaluation(0.72, None, 0.0, 0.1), tmp_path)
    _mlflow_run(client, experiment, "rejected-1", now - 2 * DAY - HOUR, now - 2 * DAY, "FAILED",
                "reject", _evaluation(0.5, 0.7, 0.6, 0.1), tmp_path)
    _mlflow_run(client, experiment, "crashed-1", now - DAY, None, "RUNNING", None, None, tmp_path)
    _mlflow_run(client, experiment, "in-flight", now - HOUR, None, "RUNNING", None, None, tmp_path)
    with IncidentStore(home.incidents_db_url) as store:  # failures only the store knows about
        for key in ("crashed-1", "never-reached-mlflow"):
            store.record(f"k-{key}", pipeline="credit-risk", title=f"{key} failed",
                         severity="high", evidence={},
                         source={"kind": "task_failure", "dag_id": "aire_retrain",
                                 "run_id": key, "task_id": "fine_tune", "try_number": 3})
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({**yaml.safe_load(EXAMPLE.read_text()), "slo": {
        "objectives": [{"name": "pipeline_success", "sli": "success_rate", "target": 0.9},
                       {"name": "champion_quality", "sli": "quality", "threshold": 0.65,
                        "target": 0.9}]}}))

    assert main(["slo", "status", "--config", str(config), "--json", "--open-incidents"]) == 0
    status = json.loads(capsys.readouterr().out)
    success, quality = status["objectives"]
    assert status["runs"] == 4  # promoted, rejected, crashed, never reached MLflow; in-flight not yet
    assert (success["good"], success["total"]) == (2, 4) and success["status"] == "breached"
    # Quality is the serving model's: the candidate after the promotion (0.72), the
    # champion on the rejected batch (0.7), both above 0.65.
    assert (quality["good"], quality["total"], quality["current"]) == (2, 2, 0.7)
    [opened] = status["incidents"]
    assert opened["created"] and Path(opened["postmortem"]).is_file()
    assert main(["slo", "status", "--config", str(config), "--open-incidents"]) == 0
    assert "pipeline_success: " in capsys.readouterr().out
    with IncidentStore(home.incidents_db_url) as store:
        [breach] = store.list(pipeline="credit-risk", status="open")[:1]
    assert breach.source.kind == "slo_breach" and breach.count == 2  # the same breach, counted
    assert breach.evidence["slo"]["name"] == "pipeline_success"


