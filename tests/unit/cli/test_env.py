"""`aire env` as a user meets it (issue 14, item 3): a bash shell that sourced the activate
script `make demo` writes, then switches homes.

Each test copies the venv's activate script, appends the hook with the Makefile's own
``activate-hook`` target, and runs real ``bash`` on it: what the shell ends up exporting is
what the user's next command sees.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from aire.home import PROJECT_ROOT

VENV_BIN = Path(sys.executable).parent
# Print the variables a home decides, as JSON, from inside the shell.
SHOW = ("python -c 'import json, os; print(json.dumps({k: os.environ.get(k) for k in "
        "(\"AIRE_HOME\", \"AIRFLOW_HOME\", \"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN\", "
        "\"MLFLOW_TRACKING_URI\", \"AIRE_DERIVED_FROM\")}))'")


def activate_script(tmp_path: Path, first_home: Path) -> Path:
    script = tmp_path / "activate"
    # The venv's own script as `make install` left it: a `make demo` before the tests has
    # appended its hook, which would keep this copy from getting one for ``first_home``.
    hook = "# AIRE: point airflow, mlflow and aire at the embedded home"
    script.write_text((VENV_BIN / "activate").read_text().split(f"\n{hook}\n")[0] + "\n")
    done = subprocess.run(["make", "-s", "-C", str(PROJECT_ROOT), "activate-hook", f"ACTIVATE={script}",
                           f"AIRE_HOME={first_home}"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert 'eval "$(' in script.read_text()
    return script


def shell(script: Path, commands: str) -> str:
    """Run ``commands`` in a clean bash that sourced ``script``; the output of the last line."""
    env = {"HOME": str(script.parent), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(["bash", "-c", f"set -e\nsource {script}\n{commands}"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return done.stdout.strip().splitlines()[-1]


def sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


def test_a_new_home_takes_the_registry_with_it(tmp_path: Path) -> None:
    """The bug: Airflow's database moved, MLFLOW_TRACKING_URI stayed on the old home's mlflow.db."""
    old, new = tmp_path / "old", tmp_path / "new"
    script = activate_script(tmp_path, old)
    before = json.loads(shell(script, SHOW))
    assert before["MLFLOW_TRACKING_URI"] == sqlite(old / "mlflow" / "mlflow.db")
    after = json.loads(shell(script, f'eval "$(AIRE_HOME={new} aire env)"\n{SHOW}'))
    assert after == {"AIRE_HOME": str(new), "AIRFLOW_HOME": str(new / "airflow"),
                     "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlite(new / "airflow" / "airflow.db"),
                     "MLFLOW_TRACKING_URI": sqlite(new / "mlflow" / "mlflow.db"),
                     "AIRE_DERIVED_FROM": str(new)}


def test_a_command_run_with_another_home_uses_that_homes_services(tmp_path: Path) -> None:
    """Without `aire env` again: the old home's exported values are still in the shell."""
    old, new = tmp_path / "old", tmp_path / "new"
    script = activate_script(tmp_path, old)
    probe = ("python -c 'import json; from aire.home import Home; h = Home.from_env(); "
             "print(json.dumps([h.mlflow_tracking_uri, h.airflow_db_url]))'")
    seen = json.loads(shell(script, f"AIRE_HOME={new} {probe}"))
    assert seen == [sqlite(new / "mlflow" / "mlflow.db"), sqlite(new / "airflow" / "airflow.db")]


def test_service_uris_set_by_hand_stay_when_the_home_changes(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    script = activate_script(tmp_path, old)
    commands = ("export MLFLOW_TRACKING_URI=http://127.0.0.1:5000\n"
                "export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg://airflow@db/airflow\n"
                f'eval "$(AIRE_HOME={new} aire env)"\n'
                f'eval "$(AIRE_HOME={tmp_path / "third"} aire env)"\n{SHOW}')
    after = json.loads(shell(script, commands))
    assert after["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    assert after["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg://airflow@db/airflow"
    assert after["AIRFLOW_HOME"] == str(tmp_path / "third" / "airflow")


def test_a_home_whose_path_the_shell_would_expand_comes_back_whole(tmp_path: Path) -> None:
    odd = tmp_path / "my $HOME `id` home"
    script = activate_script(tmp_path, tmp_path / "old")
    after = json.loads(shell(script, f"eval \"$(AIRE_HOME='{odd}' aire env)\"\n{SHOW}"))
    assert after["AIRE_HOME"] == str(odd)
    assert after["MLFLOW_TRACKING_URI"] == sqlite(odd / "mlflow" / "mlflow.db")
