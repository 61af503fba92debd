"""`make demo`'s runs in the Airflow UI: their task logs open through the real api-server.

One demo home as ``aire init`` makes it (its SQLite metadata database, the example batches),
the demo as ``make demo`` runs it (``run_demo``: two ``airflow dags test --use-executor`` runs),
then ``airflow api-server`` on that home with a simple-auth viewer. Each run's gate log comes
back through Airflow's REST API, the endpoint the UI's log view reads, with the decision table
the run recorded in ``decision.json``; the AIRE run page links that log.

Before the demo ran its tasks through an executor, the same request answered only "Could not
read served logs" (``dags test`` ran the tasks in its own process and wrote no log file).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from aire.home import PROJECT_ROOT, Home, RunLayout
from aire.pipeline.demo import run_demo
from aire.pipeline.home_setup import airflow_env, prepare_home
from tests.support.homes import isolated_home
from tests.support.servers import BIN, Process, free_port, http_ok, wait_until

pytestmark = pytest.mark.integration

CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"
VIEWER = ("viewer", "viewer-pw-5Rt")


@dataclass(frozen=True)
class DemoUi:
    base: str
    home: Home
    runs: list[str]  # the demo's aire_retrain runs, oldest first
    token: str  # the viewer's

    def get(self, route: str) -> httpx.Response:
        return httpx.get(f"{self.base}{route}", headers={"Authorization": f"Bearer {self.token}"}, timeout=60)

    def decision(self, run_id: str) -> dict[str, object]:
        return dict(json.loads(RunLayout(self.home.run_dir("credit-risk", run_id)).decision.read_text()))


def _runs(home: Home) -> list[str]:
    with sqlite3.connect(home.airflow_home / "airflow.db") as db:
        rows = db.execute("SELECT run_id FROM dag_run WHERE dag_id = 'aire_retrain' ORDER BY id").fetchall()
    return [row[0] for row in rows]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, stack_logs: Path, stack_token: str) -> Iterator[DemoUi]:
    with isolated_home(tmp_path_factory.mktemp("demo-home")) as root:
        home = Home.from_env()
        prepare_home(home)  # what `aire init` does: the SQLite metadata DB is migrated
        # The demo's verdict (its story of promote, then reject) is test_promotion's subject;
        # here both runs only need to reach the gate, which every finished run does.
        run_demo(home, CONFIG)
        runs = _runs(home)
        assert len(runs) == 2, runs
        passwords = root / "passwords.json"
        passwords.write_text(json.dumps({VIEWER[0]: VIEWER[1]}))
        port = free_port()
        env = {**airflow_env(home), "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{VIEWER[0]}:viewer",
               "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords)}
        api = Process("demo-api-server", [str(BIN / "airflow"), "api-server", "--host", "127.0.0.1",
                                          "--port", str(port), "--workers", "1"], env, stack_logs, stack_token)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: http_ok(f"{base}/api/v2/version"), 180, "the api-server", [api], 1.0)
            token = httpx.post(f"{base}/auth/token", json={"username": VIEWER[0], "password": VIEWER[1]}, timeout=30)
            token.raise_for_status()
            yield DemoUi(base, home, runs, token.json()["access_token"])
        finally:
            api.stop()


def _log_events(demo: DemoUi, run_id: str, task_id: str, attempt: int = 1) -> list[str]:
    response = demo.get(f"/api/v2/dags/aire_retrain/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"
                        f"/logs/{attempt}")
    assert response.status_code == 200, response.text[:500]
    return [str(item.get("event", "")) for item in response.json()["content"]]


@pytest.mark.parametrize("run", [0, 1], ids=["clean", "corrupt"])
def test_the_gate_s_log_of_a_demo_run_shows_its_decision_table(demo: DemoUi, run: int) -> None:
    run_id = demo.runs[run]
    decision = demo.decision(run_id)
    [table] = [event for event in _log_events(demo, run_id, "gate") if event.startswith("gate decision:")]
    assert table.splitlines()[0] == f"gate decision: {'PROMOTE' if decision['promote'] else 'REJECT'}"
    checks = decision["checks"]
    assert isinstance(checks, list) and checks
    for check in checks:  # every check, with its verdict, as the run recorded it
        mark = "pass" if check["passed"] else "FAIL"
        assert f"  [{mark}] {check['name']}: value={check['value']} threshold={check['threshold']}" in table, check


def test_every_task_a_demo_run_ran_has_its_log_from_the_log_folder(demo: DemoUi) -> None:
    for run_id in demo.runs:
        with sqlite3.connect(demo.home.airflow_home / "airflow.db") as db:
            ran = [row[0] for row in db.execute(
                "SELECT task_id FROM task_instance WHERE dag_id = 'aire_retrain' AND run_id = ? "
                "AND state IN ('success', 'failed')", (run_id,))]
        assert {"validate_data", "gate"} <= set(ran), ran
        for task_id in ran:
            events = _log_events(demo, run_id, task_id)
            source = str(demo.home.airflow_home / "logs" / "dag_id=aire_retrain" / f"run_id={run_id}"
                         / f"task_id={task_id}" / "attempt=1.log")
            assert source in events, (task_id, events[:3])  # read from the file, not "Could not read served logs"
            assert "Worker startup parse complete" in events, (task_id, events[:10])  # the supervisor's own record


def test_the_aire_run_page_links_the_gate_s_log(demo: DemoUi) -> None:
    for run_id in demo.runs:
        quoted = quote(run_id, safe="")
        page = demo.get(f"/aire/dags/aire_retrain/runs/{quoted}")
        assert page.status_code == 200, page.text[:500]
        # The Airflow UI's task page (route dags/:dagId/runs/:runId/tasks/:taskId), which opens
        # on the log read above.
        assert f'<a href="/dags/aire_retrain/runs/{quoted}/tasks/gate">' in page.text
