"""Routing and data-triggered scheduling, without a deployment: the DAGs as the
dag-processor parses them under a given environment, which batch a run picks, and what
the landing watcher announces (against moto's S3 server on loopback).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from aire_airflow.context import batch_uri
from aire_airflow.schedules import landed_batch

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PARSE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[1]).dags["aire_retrain"]
timetable = dag.timetable
print(json.dumps({
    "queues": {t.task_id: t.queue for t in dag.tasks},
    "timetable": type(timetable).__name__,
    "cron": timetable.timetable.expression,
    "assets": [{"name": a.name, "uri": a.uri} for a in timetable.asset_condition.objects],
}))
"""

# What the dag-processor shows in the UI as the file's import error.
IMPORT_ERRORS = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
print(json.dumps(DagBag(dag_folder=sys.argv[1]).import_errors))
"""


def parse(tmp_path: Path, **env: str) -> dict[str, Any]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIRE_") or k == "AIRE_HOME"}
    environ.update({"AIRE_HOME": str(tmp_path), "AIRFLOW_HOME": str(tmp_path / "airflow"), **env})
    out = subprocess.run([sys.executable, "-c", PARSE, str(ROOT / "dags")], env=environ,
                         capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_by_default_every_task_uses_the_default_queue_and_a_weekly_cron(tmp_path: Path) -> None:
    parsed = parse(tmp_path)
    assert set(parsed["queues"].values()) == {"default"}
    assert parsed["timetable"] == "AssetOrTimeSchedule" and parsed["cron"] == "0 3 * * 1"
    assert [a["name"] for a in parsed["assets"]] == ["aire_landing"]


def test_the_gpu_queue_takes_fine_tune_only_and_the_schedule_follows_the_environment(tmp_path: Path) -> None:
    parsed = parse(tmp_path, AIRE_GPU_QUEUE="gpu", AIRE_RETRAIN_CRON="*/30 * * * *",
                   AIRE_LANDING_URI="s3://landing-bucket/credit/")
    queues = parsed["queues"]
    assert queues.pop("fine_tune") == "gpu" and set(queues.values()) == {"default"}
    assert parsed["cron"] == "*/30 * * * *"
    assert parsed["assets"] == [{"name": "aire_landing", "uri": "s3://landing-bucket/credit"}]


def test_task_routes_send_any_task_to_its_queue_and_win_over_the_gpu_queue(tmp_path: Path) -> None:
    routes = "analyze_errors=hosts-b, sign_model=hosts-b,gate=hosts-b,fine_tune=hosts-c,await_approval=hosts-c"
    queues = parse(tmp_path, AIRE_GPU_QUEUE="gpu", AIRE_TASK_QUEUES=routes)["queues"]
    assert queues == {"validate_data": "default", "analyze_errors": "hosts-b", "fine_tune": "hosts-c",
                      "sign_model": "hosts-b", "evaluate": "default", "gate": "hosts-b",
                      "await_approval": "hosts-c", "promote": "default", "reject": "default"}


@pytest.mark.parametrize(("routes", "error"), [("gate", "'gate' is not task=queue"),
                                               ("train=gpu", "no task 'train' in aire_retrain")])
def test_a_malformed_task_route_fails_the_parse_naming_the_variable(tmp_path: Path, routes: str,
                                                                    error: str) -> None:
    environ = {**os.environ, "AIRE_HOME": str(tmp_path), "AIRFLOW_HOME": str(tmp_path / "airflow"),
               "AIRE_TASK_QUEUES": routes}
    out = subprocess.run([sys.executable, "-c", IMPORT_ERRORS, str(ROOT / "dags")], env=environ,
                         capture_output=True, text=True, check=True)
    errors = json.loads(out.stdout.strip().splitlines()[-1])
    assert any(path.endswith("aire_retrain.py") and f"AIRE_TASK_QUEUES: {error}" in message
               for path, message in errors.items()), errors


# --- which batch a run trains on --------------------------------------------------------------
def event(batch: str | None, at: int) -> Any:
    return SimpleNamespace(extra={"batch": batch} if batch else {}, timestamp=datetime.fromtimestamp(at, UTC))


def context(conf: dict[str, Any], events: dict[str, list[Any]] | None = None) -> dict[str, Any]:
    return {"params": {"batch": conf.get("batch", "/default.csv")}, "dag_run": SimpleNamespace(conf=conf),
            "triggering_asset_events": events or {}}


def test_a_run_takes_the_triggered_batch_then_the_newest_landed_one_then_the_default() -> None:
    events = {"aire_landing": [event("s3://b/old.csv", 100), event("s3://b/new.csv", 200), event(None, 300)]}
    assert batch_uri(context({"batch": "s3://b/explicit.csv"}, events)) == "s3://b/explicit.csv"
    assert batch_uri(context({}, events)) == "s3://b/new.csv"
    assert batch_uri(context({})) == "/default.csv"
    assert batch_uri(context({}, {"aire_landing": [event(None, 1)]})) == "/default.csv"


# --- the landing watcher ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from moto.server import ThreadedMotoServer

    from aire.data.storage import S3Settings, s3_client

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    conn = {"conn_type": "aws", "login": "k", "password": "s",
            "extra": {"endpoint_url": f"http://{host}:{port}", "region_name": "us-east-1"}}
    saved = os.environ.get("AIRFLOW_CONN_AIRE_TEST_S3")
    os.environ["AIRFLOW_CONN_AIRE_TEST_S3"] = json.dumps(conn)
    client = s3_client(S3Settings(endpoint_url=f"http://{host}:{port}", access_key_id="k",
                                  secret_access_key="s", region="us-east-1"))
    client.create_bucket(Bucket="landing")
    try:
        yield client
    finally:
        os.environ.pop("AIRFLOW_CONN_AIRE_TEST_S3") if saved is None else \
            os.environ.__setitem__("AIRFLOW_CONN_AIRE_TEST_S3", saved)
        server.stop()


def test_the_watcher_announces_the_newest_batch_once(s3: Any) -> None:
    uri = "s3://landing/credit"  # as the Asset holds it: Airflow drops the trailing slash
    assert landed_batch(uri, "aire_test_s3", None) is None
    s3.put_object(Bucket="landing", Key="credit/a.csv", Body=b"x")
    s3.put_object(Bucket="landing", Key="credit/readme.txt", Body=b"not a batch")
    first = landed_batch(uri, "aire_test_s3", None)
    assert first is not None and first["batch"] == "s3://landing/credit/a.csv"
    assert landed_batch(uri, "aire_test_s3", first) is None  # announced already
    time.sleep(1.1)  # S3 times have one-second resolution
    s3.put_object(Bucket="landing", Key="credit/b.parquet", Body=b"y")
    s3.put_object(Bucket="landing", Key="other/c.csv", Body=b"z")  # outside the prefix
    s3.put_object(Bucket="landing", Key="credit-old/d.csv", Body=b"z")  # a prefix of the same start
    second = landed_batch(uri, "aire_test_s3", first)
    assert second is not None and second["batch"] == "s3://landing/credit/b.parquet" and second["size"] == 1
