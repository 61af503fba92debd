"""RunSpec: a run key is checked whole before it reaches a filter, a path or a lock."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aire.data.storage import S3Settings, S3Store
from aire.errors import InputError
from aire.home import PROJECT_ROOT
from aire.pipeline.run_context import RunSpec

CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"


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


def test_the_config_s_endpoint_and_region_reach_the_run_s_store(aire_home: Path, tmp_path: Path) -> None:
    """The attack (issue 13, case 12): a CLI run (no S3 settings of its own) used public S3
    for a bucket the config puts on a private endpoint, with the operator's credentials."""
    from aire.pipeline.run_context import RunContext

    config = yaml.safe_load(CONFIG.read_text())
    config["storage"] = {"uri": "s3://reports/aire", "endpoint_url": "http://minio.internal:9000",
                         "region": "eu-private-1"}
    path = tmp_path / "private.yaml"
    path.write_text(yaml.safe_dump(config))
    store = RunContext(RunSpec(str(path), "batch.csv", "cli-1")).store
    assert isinstance(store, S3Store)
    assert (store.settings.endpoint_url, store.settings.region) == ("http://minio.internal:9000", "eu-private-1")
    given = S3Settings(access_key_id="k", secret_access_key="s")  # a secret with no endpoint of its own
    store = RunContext(RunSpec(str(path), "batch.csv", "dag-1", s3=given)).store
    assert isinstance(store, S3Store) and store.settings.endpoint_url == "http://minio.internal:9000"
    assert store.settings.access_key_id == "k"


@pytest.mark.parametrize(("epochs", "learning_rate"), [(0, None), (1_000_000_000, None), (-1, None),
                                                       (None, 0.0), (None, 5.0), (None, float("nan"))])
def test_run_time_knobs_out_of_the_dag_s_bounds_are_refused(epochs: int | None, learning_rate: float | None) -> None:
    """The attack (issue 13, cases 7 and 13): `aire run --epochs 1000000000` was accepted while the
    DAG caps it at 1000, and --epochs 0 silently meant the config's value."""
    with pytest.raises(InputError, match="epochs|learning rate"):
        RunSpec("config.yaml", "batch.csv", "cli-1", epochs=epochs, learning_rate=learning_rate)
