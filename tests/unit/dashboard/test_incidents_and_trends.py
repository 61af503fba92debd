"""Which DAG owns an incident, which postmortem file may be read, and the points of the trends."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from aire.dashboard.incidents import owning_dag, postmortem_file
from aire.dashboard.runs import RunSummary
from aire.dashboard.trends import trend
from aire.home import Home
from aire.incidents.types import Incident, IncidentSource, Severity, Status


def _incident(source: IncidentSource, postmortem: str | None = None) -> Incident:
    now = datetime(2026, 12, 2, tzinfo=UTC)
    return Incident(1, "k", "credit-risk", "t", Severity.HIGH, Status.OPEN, source, now, now, 1, {}, postmortem, ())


def test_an_incident_without_a_dag_belongs_to_the_retraining_dag() -> None:
    assert owning_dag(_incident(IncidentSource(kind="slo_breach"))) == "aire_retrain"
    assert owning_dag(_incident(IncidentSource(kind="task_failure", dag_id="aire_rollback"))) == "aire_rollback"


def test_only_a_postmortem_inside_the_homes_folder_is_read(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.postmortems_dir.mkdir(parents=True)
    inside = home.postmortems_dir / "2026-12-02-credit-risk-1.md"
    inside.write_text("# pm")
    outside = tmp_path / "elsewhere.md"
    outside.write_text("# not ours")
    source = IncidentSource(kind="gate_rejection")
    assert postmortem_file(home, _incident(source, str(inside))) == inside.resolve()
    assert postmortem_file(home, _incident(source, str(outside))) is None
    assert postmortem_file(home, _incident(source, str(home.postmortems_dir / ".." / ".." / "elsewhere.md"))) is None
    assert postmortem_file(home, _incident(source, "s3://bucket/pm.md")) is None
    assert postmortem_file(home, _incident(source, None)) is None


def _run(folder: Path, name: str, mtime: float, evaluation: dict[str, object] | None,
         analysis: dict[str, object] | None) -> RunSummary:
    run = folder / name
    (run / "evaluation").mkdir(parents=True)
    (run / "analysis").mkdir()
    if evaluation is not None:
        (run / "evaluation" / "evaluation.json").write_text(json.dumps(evaluation))
    if analysis is not None:
        (run / "analysis" / "summary.json").write_text(json.dumps(analysis))
    return RunSummary("credit-risk", name, run, datetime.fromtimestamp(mtime, UTC), "reject")


def test_trend_points_come_from_each_runs_files_oldest_first(tmp_path: Path) -> None:
    newer = _run(tmp_path, "b", 2_000, {"drift": {"drift_share": 0.75}, "quality": {"candidate": {"accuracy": 0.53}},
                                        "fairness": {"candidate": {"max_gap": None}}}, {"estimated_noise_rate": 0.39})
    older = _run(tmp_path, "a", 1_000, None, {"estimated_noise_rate": 0.28})
    points = trend([newer, older])
    assert [p.run.run_key for p in points] == ["a", "b"]
    assert points[0].values == {"drift_share": None, "noise_rate": 0.28, "accuracy": None, "fairness_gap": None}
    assert points[1].values == {"drift_share": 0.75, "noise_rate": 0.39, "accuracy": 0.53, "fairness_gap": None}
