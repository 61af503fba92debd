"""The monitor on crafted batch summaries: SLIs per batch, and one incident per breached objective."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aire.home import Home
from aire.incidents.store import IncidentStore
from aire.scoring.monitor import batch_record, monitor
from aire.scoring.score import record_summary
from tests.support.scoring import summary

CONFIG = Path(__file__).resolve().parents[3] / "include" / "config" / "credit_risk.yaml"
def test_batch_slis_come_from_the_summary() -> None:
    now = datetime.now(UTC)
    record = batch_record(summary("b", now, [0.6, 0.4], [0.9, 0.1], {"own": 0.7, "rent": 0.3}, out=0.02))
    assert record.prediction_drift == pytest.approx(0.3)
    assert record.input_drift is not None and record.input_drift > 0.25  # age's PSI
    assert (record.odd_violation_rate, record.confidence) == (0.02, 0.05)


def test_a_drifted_batch_opens_exactly_one_incident_with_the_figures(aire_home: Path) -> None:
    home = Home.from_env()
    now = datetime.now(UTC)
    record_summary(home, summary("clean", now - timedelta(hours=3), [0.31, 0.69], [0.5, 0.5],
                                 {"own": 0.7, "rent": 0.3}))
    quiet = monitor(CONFIG, home, now=now - timedelta(hours=2))
    assert quiet["incidents"] == [] and not any(o["status"] == "breached" for o in quiet["objectives"])
    record_summary(home, summary("drifted", now - timedelta(minutes=5), [0.7, 0.3], [0.95, 0.05],
                                 {"own": 0.2, "rent": 0.8}))
    first = monitor(CONFIG, home, now=now)
    second = monitor(CONFIG, home, now=now + timedelta(minutes=1))
    breached = {o["name"] for o in first["objectives"] if o["status"] == "breached"}
    assert breached == {"prediction_drift", "input_drift"}
    assert all(i["created"] for i in first["incidents"]) and not any(i["created"] for i in second["incidents"])
    with IncidentStore(home.incidents_db_url) as store:
        incidents = store.list()
    assert len(incidents) == 2 and {i.count for i in incidents} == {2}
    drift = next(i for i in incidents if "prediction_drift" in i.title)
    assert drift.evidence["monitor"]["latest_batch"]["batch_id"] == "drifted"
    assert "housing" in Path(str(drift.postmortem)).read_text()


def test_labeled_batches_feed_serving_quality_and_a_fast_burn_asks_for_a_rollback(aire_home: Path,
                                                                                  tmp_path: Path) -> None:
    import yaml

    home = Home.from_env()
    now = datetime.now(UTC)
    batch = summary("labeled", now - timedelta(minutes=5), [0.31, 0.69], [0.5, 0.5], {"own": 0.7, "rent": 0.3})
    batch["quality"] = {"labeled_rows": 400, "accuracy": 0.41}
    assert batch_record(batch).quality == 0.41
    record_summary(home, batch)
    data = yaml.safe_load(CONFIG.read_text())
    data["scoring"] = {"rollback_on_fast_burn": True}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    report = monitor(config, home, now=now)
    quality = next(o for o in report["objectives"] if o["name"] == "serving_quality")
    assert quality["status"] == "breached" and quality["current"] == 0.41
    # an empty registry has no previous version to go back to: said, not raised
    assert report["rollback"]["rolled_back"] is False
