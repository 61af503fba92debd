"""A fresh embedded home for a whole test module (the per-test one is conftest's ``aire_home``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# Variables that would point a home's parts elsewhere: a test's home must own all of them.
ELSEWHERE = ("MLFLOW_TRACKING_URI", "AIRE_INCIDENTS_DB", "AIRE_LOCK_URL", "AIRE_SIGNING_CONN_ID")


@contextmanager
def isolated_home(root: Path) -> Iterator[Path]:
    """``AIRE_HOME`` is ``root`` and nothing in the environment points elsewhere, until exit,
    when the environment is as it was."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRE_HOME", str(root))
        for variable in ELSEWHERE:
            patch.delenv(variable, raising=False)
        yield root
