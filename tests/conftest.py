"""Test-wide settings: every test gets a home of its own, never the developer's .aire/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK", "true")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


@pytest.fixture()
def aire_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh embedded home, with nothing from the environment pointing elsewhere."""
    from tests.support.homes import ELSEWHERE

    home = tmp_path / "home"
    monkeypatch.setenv("AIRE_HOME", str(home))
    for variable in ELSEWHERE:
        monkeypatch.delenv(variable, raising=False)
    yield home
