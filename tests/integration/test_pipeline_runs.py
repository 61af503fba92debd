"""The stages in-process (`aire run`'s path) on a fresh home: bad input never gets through.

One champion per module; every bad batch after it must stop with an error that names the
file, the column and the rule, open an incident, and leave the champion and its
artifacts exactly as they were.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from aire.errors import ConfigError, DataValidationError, InputError, VerificationError
from aire.home import PROJECT_ROOT, Home
from aire.incidents.store import IncidentStore
from aire.pipeline.home_setup import prepare_home
from aire.pipeline.run_context import RunSpec
from aire.pipeline.runner import run_all
from aire.pipeline.status import pipeline_status
from aire.registry.mlflow_registry import Registry
from tests.support.homes import isolated_home

CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    with isolated_home(tmp_path_factory.mktemp("home")):
        home = Home.from_env()
        prepare_home(home, migrate_airflow=False)
        outcome = run_all(RunSpec(str(CONFIG), str(home.data_dir / "batch_clean.csv"), "champion-run"))
        assert outcome["outcome"] == "promoted"
        yield home


def artifacts_fingerprint(home: Home) -> str:
    """Every byte the champion's MLflow run holds (model, signature, reference, reports)."""
    champion = Registry(home.mlflow_tracking_uri).champion("credit-risk")
    digest = hashlib.sha256()
    for path in sorted((home.mlflow_dir / "artifacts" / "credit-risk" / champion.run_id).rglob("*")):
        if path.is_file():
            digest.update(path.as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def clean(home: Home) -> pd.DataFrame:
    return pd.read_csv(home.data_dir / "batch_clean.csv")


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def truncated(home: Home, path: Path) -> Path:
    text = (home.data_dir / "batch_clean.csv").read_text()
    path.write_text(text[: len(text) // 2])
    return path


def with_value(column: str, value: object):
    def make(home: Home, path: Path) -> Path:
        frame = clean(home)
        frame[column] = frame[column].astype(object)
        frame.loc[3, column] = value
        return write_csv(frame, path)
    return make


BAD_BATCHES = {
    "missing column": (lambda h, p: write_csv(clean(h).drop(columns=["purpose"]), p), "purpose", "column exists"),
    "empty file": (lambda h, p: (p.write_text(""), p)[1], None, "file is not empty"),
    "header only": (lambda h, p: (p.write_text(",".join(clean(h).columns) + "\n"), p)[1], None, "row count >= 1"),
    "truncated csv": (truncated, None, "complete rows"),
    "NaN in a numeric feature": (with_value("age", np.nan), "age", "not null"),
    "infinite value": (with_value("credit_amount", np.inf), "credit_amount", "finite"),
    "label never seen": (with_value("risk", 7), "risk", "label in known classes"),
    "category never seen": (with_value("housing", "castle"), "housing", "known categories"),
}


@pytest.mark.parametrize("case", list(BAD_BATCHES))
def test_bad_batch_is_refused_with_an_incident_and_the_champion_untouched(
    home: Home, tmp_path: Path, case: str
) -> None:
    make, column, rule = BAD_BATCHES[case]
    batch = make(home, tmp_path / "batch.csv")
    before = (pipeline_status(CONFIG, home), artifacts_fingerprint(home))
    run_key = f"bad-{case.replace(' ', '-')}"

    with pytest.raises(DataValidationError) as raised:
        run_all(RunSpec(str(CONFIG), str(batch), run_key))

    error = raised.value
    # The message names the file and lists every broken rule; the first names the column.
    assert str(batch) in str(error) and rule in str(error) and error.column == column
    incidents = [i for i in IncidentStore(home.incidents_db_url).list() if i.source.run_id == run_key]
    assert len(incidents) == 1 and incidents[0].source.task_id == "validate_data"
    assert Path(incidents[0].postmortem).is_file()
    after = (pipeline_status(CONFIG, home), artifacts_fingerprint(home))
    assert after[0]["champion"] == before[0]["champion"] and after[1] == before[1]


def test_unknown_config_key_is_refused_naming_the_key(home: Home, tmp_path: Path) -> None:
    data = yaml.safe_load(CONFIG.read_text())
    data["training"]["epocs"] = 3
    config = tmp_path / "typo.yaml"
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="key 'training.epocs'"):
        run_all(RunSpec(str(config), str(home.data_dir / "batch_clean.csv"), "bad-config"))
    incidents = [i for i in IncidentStore(home.incidents_db_url).list() if i.source.run_id == "bad-config"]
    assert len(incidents) == 1 and "training.epocs" in incidents[0].evidence["exception"]["message"]


def test_a_tampered_champion_is_never_loaded(home: Home) -> None:
    champion = Registry(home.mlflow_tracking_uri).champion("credit-risk")
    weights = next((home.mlflow_dir / "artifacts").rglob(f"{champion.signed_digest}/model/weights.safetensors"))
    original = weights.read_bytes()
    try:
        flipped = bytearray(original)
        flipped[-1] ^= 0x01
        weights.write_bytes(bytes(flipped))
        assert pipeline_status(CONFIG, home)["champion"]["verified"] is False
        with pytest.raises(VerificationError, match="weights.safetensors"):
            run_all(RunSpec(str(CONFIG), str(home.data_dir / "batch_clean.csv"), "tampered"))
        incidents = [i for i in IncidentStore(home.incidents_db_url).list() if i.source.run_id == "tampered"]
        assert len(incidents) == 1 and incidents[0].source.kind == "signature_failure"
        assert "changed bytes in weights.safetensors" in Path(incidents[0].postmortem).read_text()
        assert Registry(home.mlflow_tracking_uri).champion("credit-risk").version == champion.version
    finally:
        weights.write_bytes(original)
    assert pipeline_status(CONFIG, home)["champion"]["verified"] is True


def test_a_failed_evaluation_still_ends_in_a_recorded_reject(home: Home) -> None:
    """As in the DAG: evaluate fails (the champion's reference data no longer matches its
    recorded digest), the gate reads the missing report as missing evidence and rejects."""
    champion = Registry(home.mlflow_tracking_uri).champion("credit-risk")
    reference = next((home.mlflow_dir / "artifacts").rglob(f"{champion.run_id}/artifacts/reference/batch.parquet"))
    original = reference.read_bytes()
    try:
        pd.read_parquet(reference).iloc[1:].to_parquet(reference)  # a row lost in the artifact store
        outcome = run_all(RunSpec(str(CONFIG), str(home.data_dir / "batch_clean.csv"), "evaluate-fails"))
    finally:
        reference.write_bytes(original)
    assert outcome["outcome"] == "rejected" and outcome["failed"] == ["evaluate"]
    failed = outcome["gate"]["failed"]
    assert {"drift_share", "accuracy", "accuracy_drop_vs_champion"} <= set(failed)
    checks = {c["name"]: c for c in outcome["gate"]["checks"]}
    assert "evaluation.json: file not found" in checks["drift_share"]["reason"]
    incidents = [i for i in IncidentStore(home.incidents_db_url).list() if i.source.run_id == "evaluate-fails"]
    by_task = {i.source.task_id: i for i in incidents}  # the failure, and the rejection it caused
    assert sorted(by_task) == ["evaluate", "reject"]
    assert "does not match its recorded data digest" in by_task["evaluate"].evidence["exception"]["message"]
    assert Registry(home.mlflow_tracking_uri).champion("credit-risk").version == champion.version


def test_aire_run_never_promotes_past_a_required_approval(home: Home, tmp_path: Path) -> None:
    data = yaml.safe_load(CONFIG.read_text())
    config = tmp_path / "approval.yaml"
    config.write_text(yaml.safe_dump({**data, "approval": {"required": True}}))
    champion = Registry(home.mlflow_tracking_uri).champion("credit-risk")
    outcome = run_all(RunSpec(str(config), str(home.data_dir / "batch_clean.csv"), "needs-approval"))
    assert outcome["gate"]["promote"] is True and outcome["outcome"] == "awaiting_approval"
    assert "promote" not in outcome and "reject" not in outcome
    assert Registry(home.mlflow_tracking_uri).champion("credit-risk").version == champion.version


def test_input_errors_are_the_ones_the_dag_never_retries() -> None:
    assert issubclass(DataValidationError, InputError) and issubclass(VerificationError, InputError)
    assert issubclass(ConfigError, InputError)


def test_cli_verifies_a_registered_version_against_its_recorded_digest(home: Home) -> None:
    import subprocess
    import sys

    aire = str(Path(sys.executable).with_name("aire"))
    ok = subprocess.run([aire, "verify", "--version", "1"], capture_output=True, text=True,
                        env={**os.environ, "AIRE_HOME": str(home.root)})
    assert ok.returncode == 0, ok.stderr
    missing = subprocess.run([aire, "verify", "--version", "99"], capture_output=True, text=True,
                             env={**os.environ, "AIRE_HOME": str(home.root)})
    assert missing.returncode != 0 and "no version 99" in missing.stderr


def test_an_older_model_replayed_under_a_newer_version_is_refused(home: Home, tmp_path: Path) -> None:
    """v1's files and valid signature, put where v2 lives, must not pass as v2."""
    import shutil

    from aire.data.datasets import german_credit, make_batch
    from aire.trust.ledger import FileLedger
    from aire.trust.verify import fetch_verified

    data = yaml.safe_load(CONFIG.read_text())
    data["gates"] = {"max_drift_share": 1, "min_drift_effect": 1, "max_noise_vs_no_signal": 2, "min_accuracy": 0,
                     "max_accuracy_drop": 1, "max_fairness_gap": 1, "max_fairness_gap_increase": 1,
                     "max_f1_drop": 1, "max_roc_auc_drop": 1, "max_calibration_error_increase": 1,
                     "max_group_suspect_rate_gap": 1}
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text(yaml.safe_dump(data))
    second, _ = make_batch(german_credit(), n_rows=600, seed=11)
    batch = write_csv(second, tmp_path / "second.csv")
    assert run_all(RunSpec(str(lenient), str(batch), "second-champion"))["outcome"] == "promoted"

    registry = Registry(home.mlflow_tracking_uri)
    v1, v2 = registry.version("credit-risk", 1), registry.version("credit-risk", 2)
    artifacts = home.mlflow_dir / "artifacts" / "credit-risk"
    v1_dir = artifacts / v1.run_id / "artifacts" / "candidates" / v1.signed_digest
    v2_dir = artifacts / v2.run_id / "artifacts" / "candidates" / v2.signed_digest
    saved = tmp_path / "v2-saved"
    shutil.copytree(v2_dir, saved)
    try:
        shutil.rmtree(v2_dir)
        shutil.copytree(v1_dir, v2_dir)  # the older model, with its own valid signature
        with pytest.raises(VerificationError, match="replayed or swapped"):
            fetch_verified(registry, v2, public_key=home.public_key, ledger=FileLedger(home.ledger_path),
                           workdir=tmp_path / "fetch")
        assert pipeline_status(CONFIG, home)["champion"]["verified"] is False
    finally:
        shutil.rmtree(v2_dir)
        shutil.copytree(saved, v2_dir)
    assert pipeline_status(CONFIG, home)["champion"] == {
        "version": 2, "digest": v2.signed_digest, "verified": True}
