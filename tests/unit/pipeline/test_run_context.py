"""RunSpec: a run key is checked whole before it reaches a filter, a path or a lock."""

from __future__ import annotations

import pytest

from aire.errors import InputError
from aire.pipeline.run_context import RunSpec


@pytest.mark.parametrize("run_key", ["it's", "..", ".hidden", "a/b", "a\\b", "x\ny", "", "k" * 251, "a b",
                                     "a\x00b", "é"])
def test_a_run_key_that_could_break_a_filter_or_a_path_is_refused(run_key: str) -> None:
    """The attack (issue 13, case 6): a quote broke the MLflow filter; '..' and '/' reach folders."""
    with pytest.raises(InputError, match="run key"):
        RunSpec("config.yaml", "batch.csv", run_key)


@pytest.mark.parametrize("run_key", ["manual__2026-12-02T14:26:57.123456+00:00", "scheduled__2026-12-02T00:00:00+00:00",
                                     "asset_triggered__x~1", "cli-20261202T142657Z", "clean-1"])
def test_airflow_and_cli_run_keys_are_taken(run_key: str) -> None:
    assert RunSpec("config.yaml", "batch.csv", run_key).run_key == run_key
