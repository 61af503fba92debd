"""Attacks across stages, on one embedded home, as someone who can write to MLflow or the run store.

Each test is an attack the adversarial review of issue 13 ran: it must be refused (or
repaired) with the champion left where it was. The home holds v1 and v2 (two clean
batches) and one rejected run (the corrupted batch); each test puts back what it changed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from aire.cli.main import main
from aire.constants import (
    CHALLENGER,
    CHAMPION,
    LEDGER_PROMOTION,
    PREVIOUS,
    REFERENCE_ARTIFACT,
    TAG_DATA_DIGEST,
    TAG_SIGNED_DIGEST,
)
from aire.errors import InputError, VerificationError
from aire.home import PROJECT_ROOT, Home
from aire.pipeline import stages
from aire.pipeline.home_setup import prepare_home
from aire.pipeline.run_context import RunSpec
from aire.pipeline.runner import run_all
from aire.registry.mlflow_registry import Registry
from aire.trust.ledger import FileLedger
from aire.trust.verify import fetch_reference, fetch_verified
from tests.support.batches import generated_batch
from tests.support.homes import isolated_home

pytestmark = pytest.mark.integration

CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"
NAME = "credit-risk"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    with isolated_home(tmp_path_factory.mktemp("home")):
        home = Home.from_env()
        prepare_home(home, migrate_airflow=False)
        assert run_all(RunSpec(str(CONFIG), str(home.data_dir / "batch_clean.csv"), "clean-1"))["outcome"] == "promoted"
        assert run_all(RunSpec(str(CONFIG), generated_batch(home, seed=3), "clean-2"))["outcome"] == "promoted"
        rejected = run_all(RunSpec(str(CONFIG), str(home.data_dir / "batch_corrupt.csv"), "corrupt"))
        assert rejected["outcome"] == "rejected"
        yield home


@pytest.fixture()
def registry(home: Home) -> Registry:
    return Registry(home.mlflow_tracking_uri)


@pytest.fixture()
def ledger_kept(home: Home) -> Iterator[bytes]:
    """The ledger's bytes before the test, written back after it."""
    original = home.ledger_path.read_bytes()
    try:
        yield original
    finally:
        home.ledger_path.write_bytes(original)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_artifacts(home: Home, run_id: str) -> Path:
    return next(p for p in (home.mlflow_dir / "artifacts").rglob(run_id) if p.is_dir()) / "artifacts"


# --- 2: a forged gate decision ------------------------------------------------------------
def test_a_forged_promote_in_a_rejected_decision_moves_nothing(
        home: Home, registry: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    decision_path = home.run_dir(NAME, "corrupt") / "decision.json"
    original = decision_path.read_text()
    forged = {**json.loads(original), "promote": True}
    assert forged["failed"], "the forged decision still lists its failed checks"
    before = registry.aliases(NAME)
    try:
        decision_path.write_text(json.dumps(forged))
        code, _, err = cli(capsys, "stage", "promote", "--run-key", "corrupt",
                           "--batch", str(home.data_dir / "batch_corrupt.csv"))
        assert code == 2 and "decision" in err
        forged["failed"], forged["checks"] = [], [c | {"passed": True} for c in forged["checks"]]
        decision_path.write_text(json.dumps(forged))  # the checks rewritten to pass, too
        code, _, err = cli(capsys, "stage", "promote", "--run-key", "corrupt",
                           "--batch", str(home.data_dir / "batch_corrupt.csv"))
        assert code == 2 and "decision" in err
    finally:
        decision_path.write_text(original)
    assert registry.aliases(NAME) == before
    assert not [e for e in FileLedger(home.ledger_path).find(LEDGER_PROMOTION, pipeline=NAME)
                if e.entry["run_key"] == "corrupt"]


# --- 1: a replay through the registry, without the key ---------------------------------------
def test_an_older_signed_model_replayed_into_a_newer_version_is_refused(
        home: Home, registry: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    v1, v2 = registry.version(NAME, 1), registry.version(NAME, 2)
    assert v1.signed_digest and v2.signed_digest
    source = run_artifacts(home, v1.run_id) / "candidates" / v1.signed_digest
    planted = run_artifacts(home, v2.run_id) / "candidates" / v1.signed_digest
    shutil.copytree(source, planted)
    registry.client.set_model_version_tag(NAME, "2", TAG_SIGNED_DIGEST, v1.signed_digest)
    try:
        code, out, err = cli(capsys, "verify", "--version", "2")
        assert code == 2 and "version 2" in err, out
        code, out, _ = cli(capsys, "status", "--json")
        assert code == 0 and json.loads(out)["champion"]["verified"] is False
    finally:
        registry.client.set_model_version_tag(NAME, "2", TAG_SIGNED_DIGEST, v2.signed_digest)
        shutil.rmtree(planted)
    assert cli(capsys, "verify", "--version", "2")[0] == 0


# --- 3: the ledger is binding, not advisory ---------------------------------------------------
def test_an_edited_middle_entry_stops_the_next_append(
        home: Home, registry: Registry, ledger_kept: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ledger_kept.decode().splitlines()
    edited = json.loads(lines[1])
    edited["entry"]["run_key"] = "someone-else"
    home.ledger_path.write_text("\n".join([lines[0], json.dumps(edited), *lines[2:]]) + "\n")
    code, _, err = cli(capsys, "rollback", "--previous", "--reason", "drill")
    assert code == 2 and "ledger" in err
    assert registry.aliases(NAME) == {CHAMPION: 2, PREVIOUS: 1}
    with pytest.raises(VerificationError, match="seq 2"):
        FileLedger(home.ledger_path).append("model_signed", {"pipeline": NAME, "digest": "f" * 64})


def test_a_truncated_ledger_tail_is_detected(home: Home, ledger_kept: bytes,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    lines = ledger_kept.decode().splitlines()
    home.ledger_path.write_text("\n".join(lines[:-2]) + "\n")  # a consistent chain, two entries short
    code, _, err = cli(capsys, "ledger", "--verify")
    assert code == 2 and "head" in err
    # One entry short is also what a crash between anchoring and writing leaves: the anchor
    # holds that entry, and it is written back, never accepted as the end of the ledger.
    home.ledger_path.write_text("\n".join(lines[:-1]) + "\n")
    assert cli(capsys, "ledger", "--verify")[0] == 0
    assert home.ledger_path.read_bytes() == ledger_kept


def test_a_deleted_ledger_is_detected(home: Home, ledger_kept: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    home.ledger_path.unlink()
    code, _, err = cli(capsys, "ledger", "--verify")
    assert code == 2 and "head" in err
    code, out, _ = cli(capsys, "status", "--json")
    assert json.loads(out)["champion"]["verified"] is False


# --- 11: the reference batch's provenance -------------------------------------------------------
def test_a_swapped_reference_without_its_data_digest_tag_is_refused(
        home: Home, registry: Registry, tmp_path: Path) -> None:
    champion = registry.champion(NAME)
    assert champion is not None and champion.data_digest
    reference = run_artifacts(home, champion.run_id) / REFERENCE_ARTIFACT / "batch.parquet"
    original = reference.read_bytes()
    swapped = pd.read_parquet(reference).head(50)
    try:
        swapped.to_parquet(reference, index=False)
        registry.client.delete_model_version_tag(NAME, str(champion.version), TAG_DATA_DIGEST)
        verified = fetch_verified(registry, registry.champion(NAME), public_key=home.public_key,  # type: ignore[arg-type]
                                  ledger=FileLedger(home.ledger_path), workdir=tmp_path / "dl")
        with pytest.raises(VerificationError, match="data digest"):
            fetch_reference(registry, verified, tmp_path / "ref")
    finally:
        reference.write_bytes(original)
        registry.client.set_model_version_tag(NAME, str(champion.version), TAG_DATA_DIGEST, champion.data_digest)


# --- 6: strings that reach filters and paths ------------------------------------------------------
@pytest.mark.parametrize("run_key", ["it's", "..", "a/b", "x\ny", ""])
def test_a_run_key_that_would_break_a_filter_or_a_path_is_refused(
        home: Home, registry: Registry, run_key: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = registry.aliases(NAME)
    with pytest.raises(InputError, match="run key"):
        run_all(RunSpec(str(CONFIG), str(home.data_dir / "batch_clean.csv"), run_key))
    if not run_key:
        return  # the CLI's empty --run-key means its default key
    code, _, err = cli(capsys, "stage", "validate-data", "--run-key", run_key,
                       "--batch", str(home.data_dir / "batch_clean.csv"))
    assert code == 2 and "run key" in err
    assert registry.aliases(NAME) == before


# --- 4: a crash between the alias move and the ledger entry -----------------------------------------
class Killed(BaseException):
    """What a SIGKILL looks like to the code after it: nothing further runs."""


def test_a_crash_after_the_champion_moved_is_completed_by_the_next_run(
        home: Home, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = RunSpec(str(CONFIG), generated_batch(home, seed=7), "crash-mid-promotion")
    champion = stages.validate_data(spec)["champion_version"]
    for step in (stages.analyze_errors, stages.fine_tune, stages.sign_model, stages.evaluate):
        step(spec, champion)
    assert stages.gate(spec, champion)["promote"] is True
    append = FileLedger.append

    def killed_at_the_promotion_record(self: FileLedger, kind: str, entry: dict[str, Any]) -> Any:
        if kind == LEDGER_PROMOTION:
            raise Killed()
        return append(self, kind, entry)

    monkeypatch.setattr(FileLedger, "append", killed_at_the_promotion_record)
    with pytest.raises(Killed):
        stages.promote(spec, champion)
    monkeypatch.undo()
    result = stages.promote(spec, champion)  # the retried task
    new = result["version"]
    aliases = registry.aliases(NAME)
    assert aliases[CHAMPION] == new and aliases[PREVIOUS] == champion and CHALLENGER not in aliases
    records = [e.entry for e in FileLedger(home.ledger_path).find(LEDGER_PROMOTION, pipeline=NAME)]
    assert [(r["from_version"], r["to_version"]) for r in records][-1] == (champion, new)
    FileLedger(home.ledger_path).verify()


# --- 13: honest outcomes ---------------------------------------------------------------------------
def test_a_run_kept_as_challenger_does_not_say_promoted(home: Home, registry: Registry,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A run judged against one champion, which moved before it promoted: the CLI said
    ``"outcome": "promoted"`` and exit 0 for a candidate that stayed the challenger."""
    late = RunSpec(str(CONFIG), generated_batch(home, seed=8), "judged-against-the-old-champion")
    champion = stages.validate_data(late)["champion_version"]  # pins it
    assert run_all(RunSpec(str(CONFIG), generated_batch(home, seed=9), "moves-the-champion"))["outcome"] == "promoted"
    code, out, _ = cli(capsys, "run", "--run-key", late.run_key, "--batch", late.batch_uri)
    outcome = json.loads(out)
    assert outcome["gate"]["promote"] is True and outcome["gate"]["champion_version"] == champion
    assert outcome["outcome"] == "kept_as_challenger" and code == 3
    assert registry.aliases(NAME)[CHALLENGER] == outcome["promote"]["version"]


def test_status_says_why_when_the_champion_s_artifacts_are_gone(
        home: Home, registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`aire status` crashed with a traceback when a version's artifacts were missing."""
    champion = registry.champion(NAME)
    assert champion is not None
    artifacts = run_artifacts(home, champion.run_id)
    aside = tmp_path / "aside"
    shutil.move(artifacts / "candidates", aside)
    try:
        code, out, _ = cli(capsys, "status", "--json")
        status = json.loads(out)["champion"]
        assert code == 0 and status["verified"] is False and "cannot download" in status["reason"]
    finally:
        shutil.move(aside, artifacts / "candidates")
