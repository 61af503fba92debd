"""The MLflow registry wrapper on a real SQLite-backed MLflow: filters built from values."""

from __future__ import annotations

from pathlib import Path

import pytest

from aire.errors import InputError
from aire.registry.mlflow_registry import Registry, filter_literal


@pytest.fixture()
def registry(tmp_path: Path) -> Registry:
    return Registry(f"sqlite:///{tmp_path / 'mlflow.db'}", (tmp_path / "artifacts").as_uri())


@pytest.mark.parametrize("run_key", ["it's", 'say "hi"', "back\\slash", "a' OR '1'='1"])
def test_a_run_key_with_quotes_finds_its_own_run_again(registry: Registry, run_key: str) -> None:
    """The attack: a quote in the run key broke the filter, so each stage opened its own run."""
    first = registry.run_for("p", run_key)
    assert registry.run_for("p", run_key) == first
    assert registry.run_for("p", "other") != first


def test_a_value_with_both_quotes_is_refused_not_mangled() -> None:
    assert filter_literal("it's") == '"it\'s"'
    with pytest.raises(InputError, match="both kinds of quote"):
        filter_literal("it's \"x\"")


def test_metrics_are_logged_in_batches_with_their_step_and_none_left_out(registry: Registry) -> None:
    run_id = registry.run_for("p", "metrics")
    for epoch in (1, 2):
        registry.log_metrics(run_id, {"loss": 1.0 / epoch, "accuracy": None}, step=epoch)
    many = {f"m{i}": float(i) for i in range(1005)}  # over one log_batch call's 1,000
    registry.log_metrics(run_id, many)
    history = registry.client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(1, 1.0), (2, 0.5)]
    logged = registry.client.get_run(run_id).data.metrics
    assert "accuracy" not in logged and logged["m1004"] == 1004.0 and len(logged) == 1006
