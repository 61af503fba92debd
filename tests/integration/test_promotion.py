"""Promotion, rollback and the ledger in-process (`aire run`'s path) on one fresh home.

The example config ships ``gates: {}``: the demo story must hold on the defaults alone.
A clean batch becomes champion v1; the corrupted batch is rejected with drift named; a
second clean batch (another seed) is promoted to v2 with v1 as ``previous``. Rollback,
the ledger CLI, a failed evaluation and two concurrent promotions then run against it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aire.cli.main import main
from aire.constants import CHALLENGER, CHAMPION, PREVIOUS
from aire.home import PROJECT_ROOT, Home
from aire.incidents.store import IncidentStore
from aire.pipeline import stages
from aire.pipeline.home_setup import prepare_home
from aire.pipeline.run_context import RunSpec
from aire.pipeline.runner import run_all
from aire.registry.mlflow_registry import Registry
from aire.trust.ledger import FileLedger
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
        yield home


@pytest.fixture(scope="module")
def story(home: Home) -> dict[str, Any]:
    first = run_all(RunSpec(str(CONFIG), str(home.data_dir / "batch_clean.csv"), "clean-1"))
    corrupt = run_all(RunSpec(str(CONFIG), str(home.data_dir / "batch_corrupt.csv"), "corrupt"))
    second = run_all(RunSpec(str(CONFIG), generated_batch(home, seed=3), "clean-2"))
    return {"first": first, "corrupt": corrupt, "second": second}


def registry(home: Home) -> Registry:
    return Registry(home.mlflow_tracking_uri)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_demo_story_holds_on_empty_gates(home: Home, story: dict[str, Any]) -> None:
    assert yaml.safe_load(CONFIG.read_text())["gates"] == {}
    assert story["first"]["outcome"] == "promoted" and story["second"]["outcome"] == "promoted"
    corrupt = story["corrupt"]
    assert corrupt["outcome"] == "rejected" and {"drift_share", "noise_rate"} <= set(corrupt["gate"]["failed"])
    second = story["second"]["gate"]
    noise = next(c for c in second["checks"] if c["name"] == "noise_rate")
    assert "champion's 0.2" in noise["reason"]  # judged against v1's own estimate, not the cap
    assert second["evidence"]["champion_noise_rate"] == pytest.approx(
        story["first"]["analyze_errors"]["estimated_noise_rate"])
    assert registry(home).aliases(NAME) == {CHAMPION: 2, PREVIOUS: 1}  # no challenger left behind
    promotions = FileLedger(home.ledger_path).find("promotion", pipeline=NAME)
    assert [(e.entry["from_version"], e.entry["to_version"]) for e in promotions] == [(None, 1), (1, 2)]
    assert promotions[1].entry["decision"]["promote"] is True


def test_versions_lists_the_aliases(home: Home, story: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "versions", "--json")
    listed = json.loads(out)
    assert code == 0
    assert [(v["version"], v["aliases"]) for v in listed["versions"]] == [(1, [PREVIOUS]), (2, [CHAMPION])]
    assert all(v["signed_digest"] and v["data_digest"] and v["run_key"] for v in listed["versions"])


def test_rollback_restores_the_previous_champion_on_the_record(
        home: Home, story: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    incident = IncidentStore(home.incidents_db_url).list(status="open", pipeline=NAME)[0]
    code, out, _ = cli(capsys, "rollback", "--previous", "--reason", "v2 misbehaves", "--json")
    assert code == 0
    result = json.loads(out)
    assert (result["from_version"], result["to_version"], result["incident_id"]) == (2, 1, incident.id)
    assert registry(home).aliases(NAME) == {CHAMPION: 1, PREVIOUS: 2}
    entry = FileLedger(home.ledger_path).entries()[-1]
    assert entry.kind == "rollback" and entry.entry["by"].startswith("cli:") and entry.entry["to_version"] == 1
    assert entry.entry["digest"] == registry(home).version(NAME, 1).signed_digest
    notes = [e.detail for e in IncidentStore(home.incidents_db_url).get(incident.id).timeline if e.event == "note"]
    assert any("v2 -> v1" in n and "v2 misbehaves" in n for n in notes)
    assert cli(capsys, "ledger", "--verify")[0] == 0
    # previous now names v2: rolling back to it again undoes the rollback.
    assert cli(capsys, "rollback", "--previous")[0] == 0
    assert registry(home).aliases(NAME) == {CHAMPION: 2, PREVIOUS: 1}


@pytest.mark.parametrize(("argv", "message"), [
    (["--to", "99"], "no version 99"),
    (["--to", "2"], "already the champion"),
    (["--to", "0"], "must be >= 1"),
])
def test_rollback_refuses_bad_targets(home: Home, story: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                      argv: list[str], message: str) -> None:
    before = len(FileLedger(home.ledger_path).entries())
    code, _, err = cli(capsys, "rollback", *argv)
    assert code == 2 and message in err
    assert registry(home).aliases(NAME)[CHAMPION] == 2 and len(FileLedger(home.ledger_path).entries()) == before


def test_rollback_to_a_tampered_version_moves_nothing(home: Home, story: dict[str, Any],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    v1 = registry(home).version(NAME, 1)
    weights = next((home.mlflow_dir / "artifacts").rglob(f"{v1.signed_digest}/model/weights.safetensors"))
    original = weights.read_bytes()
    before = len(FileLedger(home.ledger_path).entries())
    try:
        weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        code, _, err = cli(capsys, "rollback", "--to", "1")
        assert code == 2 and "weights.safetensors" in err
    finally:
        weights.write_bytes(original)
    assert registry(home).aliases(NAME) == {CHAMPION: 2, PREVIOUS: 1}
    assert len(FileLedger(home.ledger_path).entries()) == before


def test_ledger_prints_and_a_tampered_ledger_is_detected(home: Home, story: dict[str, Any],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "ledger", "--json")
    listed = json.loads(out)
    assert code == 0 and listed["verified"] is True and listed["count"] == len(listed["entries"])
    assert {"model_signed", "promotion", "rollback"} <= {e["kind"] for e in listed["entries"]}
    code, out, _ = cli(capsys, "ledger", "--kind", "promotion")
    assert code == 0 and "v1 -> v2" in out and "hash chain verified" in out

    original = home.ledger_path.read_bytes()
    lines = original.decode().splitlines()
    edited = json.loads(lines[2])
    edited["entry"]["digest"] = "0" * 64  # point a record at another model
    try:
        home.ledger_path.write_text("\n".join([*lines[:2], json.dumps(edited), *lines[3:]]) + "\n")
        code, out, err = cli(capsys, "ledger", "--json")
        assert code == 2 and "seq 3" in err and json.loads(out)["verified"] is False
        home.ledger_path.write_text("\n".join([*lines[:1], *lines[2:]]) + "\n")  # a line deleted
        code, _, err = cli(capsys, "ledger", "--verify")
        assert code == 2 and "seq 3 found where seq 2 belongs" in err
    finally:
        home.ledger_path.write_bytes(original)
    assert cli(capsys, "ledger", "--verify")[0] == 0


def test_a_failed_evaluation_still_gets_a_reject_decision(home: Home, story: dict[str, Any]) -> None:
    spec = RunSpec(str(CONFIG), generated_batch(home, seed=4), "evaluate-dies")
    champion = stages.validate_data(spec)["champion_version"]
    stages.analyze_errors(spec, champion)
    stages.fine_tune(spec, champion)
    stages.sign_model(spec)
    run_dir = home.run_dir(NAME, spec.run_key)
    stale = run_dir / "evaluation" / "evaluation.json"
    stale.parent.mkdir(exist_ok=True)
    stale.write_text(json.dumps({"drift": {"drift_share": 0.0}, "quality": {"candidate": {"accuracy": 0.99}}}))
    (run_dir / "holdout.parquet").unlink()  # evaluate dies after it has started
    with pytest.raises(Exception, match="holdout.parquet"):
        stages.evaluate(spec, champion)
    assert not stale.exists(), "an earlier try's report must not reach the gate"
    decision = stages.gate(spec, champion)
    assert decision["promote"] is False and "accuracy" in decision["failed"]
    assert json.loads((run_dir / "decision.json").read_text())["promote"] is False
    assert stages.reject(spec)["incident_id"]


PROMOTE_WHEN_TOLD = """
import json, os, sys, time
from pathlib import Path
from aire.pipeline import stages
from aire.pipeline.run_context import RunSpec
go = Path(sys.argv[3])
while not go.exists():
    time.sleep(0.01)
print(json.dumps(stages.promote(RunSpec(sys.argv[1], "unused", sys.argv[2]))))
"""


def test_two_concurrent_promotions_leave_one_champion_judged_against_its_predecessor(
        home: Home, story: dict[str, Any], tmp_path: Path) -> None:
    config = tmp_path / "race.yaml"
    # A pipeline of its own, with gates that pass both candidates: the race is the point.
    loose = {"max_drift_share": 1, "min_drift_effect": 1, "max_noise_vs_no_signal": 2, "min_accuracy": 0,
             "max_accuracy_drop": 1, "max_fairness_gap": 1, "max_fairness_gap_increase": 1,
             "max_f1_drop": 1, "max_roc_auc_drop": 1, "max_calibration_error_increase": 1,
             "max_group_suspect_rate_gap": 1}
    config.write_text(yaml.safe_dump({**yaml.safe_load(CONFIG.read_text()), "name": "race", "gates": loose}))
    assert run_all(RunSpec(str(config), str(home.data_dir / "batch_clean.csv"), "race-base"))["outcome"] == "promoted"
    for seed in (5, 6):
        spec = RunSpec(str(config), generated_batch(home, seed=seed), f"race-{seed}")
        champion = stages.validate_data(spec)["champion_version"]
        stages.analyze_errors(spec, champion)
        stages.fine_tune(spec, champion)
        stages.sign_model(spec)
        stages.evaluate(spec, champion)
        assert stages.gate(spec, champion)["promote"] is True and champion == 1

    go = tmp_path / "go"
    racers = [subprocess.Popen([sys.executable, "-c", PROMOTE_WHEN_TOLD, str(config), f"race-{seed}", str(go)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
              for seed in (5, 6)]
    time.sleep(3)  # both interpreters up and polling (imports take ~2 s)
    go.touch()
    results = []
    for racer in racers:
        out, err = racer.communicate(timeout=180)
        assert racer.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))

    winner, loser = sorted(results, key=lambda r: not r["champion_moved"])
    assert winner["champion_moved"] and not loser["champion_moved"]
    assert winner["previous_version"] == 1 and "moved to v" in loser["reason"] and loser["challenger"]
    assert registry(home).aliases("race") == {CHAMPION: winner["version"], PREVIOUS: 1,
                                              CHALLENGER: loser["version"]}
    ledger = FileLedger(home.ledger_path)
    ledger.verify()
    promotions = [(e.entry["from_version"], e.entry["to_version"]) for e in ledger.find("promotion", pipeline="race")]
    assert promotions == [(None, 1), (1, winner["version"])]
