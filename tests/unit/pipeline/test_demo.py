"""The demo's runs go through an executor, against an Execution API the demo starts and stops.

The servers here are real processes (Python's http.server standing in for Airflow's, which
tests/integration/test_demo_logs.py starts with the whole demo).
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import pytest

from aire.errors import AireError
from aire.home import Home
from aire.pipeline.demo import dags_test_command, execution_api, executor_env


def test_a_demo_run_hands_its_tasks_to_a_local_executor_on_the_demo_s_api(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")  # a shell set up for the stack
    env = executor_env(Home(tmp_path), "http://127.0.0.1:1234/execution/")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:1234/execution/"
    assert env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    command = dags_test_command(tmp_path / "c.yaml", tmp_path / "b.csv")
    assert command[3:6] == ["dags", "test", "aire_retrain"] and "--use-executor" in command  # else: no task logs
    assert json.loads(command[command.index("--conf") + 1]) == {"config": str(tmp_path / "c.yaml"),
                                                                "batch": str(tmp_path / "b.csv")}


def _static_server(root: Path) -> list[str]:
    (root / "execution").mkdir(parents=True)
    (root / "execution" / "health").write_text('{"status": "healthy"}')
    return [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(root)]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_the_api_is_up_inside_the_block_and_gone_after_it(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    with execution_api(home, command=lambda port: [*_static_server(tmp_path / "www"), str(port)]) as api:
        assert api.url.startswith("http://127.0.0.1:") and api.url.endswith("/execution/")
        api.wait_ready()
        assert _answers(f"{api.url}health")
        api.wait_ready()  # answered once: no second wait
    assert not _answers(f"{api.url}health")


def test_a_server_that_exits_is_an_error_naming_its_log(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    failing = [sys.executable, "-c", "import sys; print('no database'); sys.exit(3)"]
    with pytest.raises(AireError, match=r"exited \(3\) before it answered; see .*demo-execution-api\.log"):
        with execution_api(home, command=lambda port: failing) as api:
            api.wait_ready()
    assert "no database" in (home.root / "logs" / "demo-execution-api.log").read_text()


def test_a_server_that_never_answers_is_stopped_after_the_timeout(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    pid_file = tmp_path / "pid"
    silent = [sys.executable, "-c", f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
                                    "time.sleep(600)"]
    with pytest.raises(AireError, match="did not answer .*/execution/health within 3s"):
        with execution_api(home, timeout=3, command=lambda port: silent) as api:
            api.wait_ready()
    assert not Path(f"/proc/{pid_file.read_text()}").exists()  # stopped and reaped
