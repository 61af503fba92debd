"""aire_monitor through Airflow (`airflow dags test`): a drifted scored batch opens one incident,
and a labeled feedback batch is announced on the aire_landing Asset that schedules aire_retrain."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from aire.data.datasets import german_credit
from aire.home import PROJECT_ROOT, Home
from aire.incidents.store import IncidentStore
from aire.pipeline.home_setup import airflow_bin, airflow_env, prepare_home
from aire.scoring.score import record_summary
from tests.support.homes import isolated_home
from tests.support.scoring import summary

pytestmark = pytest.mark.e2e

CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    with isolated_home(tmp_path_factory.mktemp("aire-home")):
        home = Home.from_env()
        prepare_home(home)
        yield home


def test_a_drifted_batch_opens_one_incident_and_feedback_reaches_the_landing_asset(home: Home) -> None:
    now = datetime.now(UTC)
    record_summary(home, summary("drifted", now - timedelta(minutes=5), [0.7, 0.3], [0.95, 0.05],
                                 {"own": 0.2, "rent": 0.8}))
    feedback = home.root / "feedback.csv"
    german_credit().head(200).to_csv(feedback, index=False)
    conf = json.dumps({"config": str(CONFIG), "feedback": str(feedback)})
    done = subprocess.run([airflow_bin(), "dags", "test", "aire_monitor", "--conf", conf], env=airflow_env(home),
                          capture_output=True, text=True, timeout=600, check=False)
    with sqlite3.connect(home.airflow_home / "airflow.db") as db:
        state = db.execute("SELECT state FROM dag_run WHERE dag_id='aire_monitor'").fetchone()[0]
        events = db.execute("SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                            "WHERE a.name = 'aire_landing'").fetchall()
    assert state == "success", f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    with IncidentStore(home.incidents_db_url) as store:
        titles = sorted(i.title for i in store.list())
    assert len(titles) == 2 and "input_drift" in titles[0] and "prediction_drift" in titles[1]
    assert [json.loads(extra)["batch"] for (extra,) in events] == [str(feedback)]
