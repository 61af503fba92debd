"""aire score on a real embedded home: two promoted versions, then batches good and bad.

The champion is loaded only after it verifies; a tampered champion falls back to the previous
version with one incident; bad input is refused naming the file, the column and the rule,
with nothing written; a challenger scores in shadow.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from aire.cli.main import main as aire_main
from aire.constants import CHALLENGER, CHAMPION
from aire.data.datasets import german_credit, make_batch
from aire.errors import DataValidationError
from aire.home import PROJECT_ROOT, Home
from aire.incidents.store import IncidentStore
from aire.pipeline.home_setup import prepare_home
from aire.pipeline.run_context import RunSpec
from aire.pipeline.runner import run_all
from aire.promotion.shadow_record import healthy_streak
from aire.registry.mlflow_registry import Registry
from aire.scoring.cache import PROCESS_CACHE
from aire.scoring.loader import clear_cache
from aire.scoring.score import ScoreRequest, score_batch
from tests.support.homes import isolated_home

pytestmark = pytest.mark.integration

CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"
NAME = "credit-risk"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """A home whose registry has a champion and a previous version (two promoted runs)."""
    with isolated_home(tmp_path_factory.mktemp("aire-score-home")):
        home = Home.from_env()
        prepare_home(home, migrate_airflow=False)
        promoted = 0
        for seed in range(1, 7):
            batch, _ = make_batch(german_credit(), n_rows=700, seed=seed)
            batch.to_csv(home.root / f"train-{seed}.csv", index=False)
            if run_all(RunSpec(str(CONFIG), str(home.root / f"train-{seed}.csv"), f"train-{seed}"))["outcome"] \
                    == "promoted":
                promoted += 1
            if promoted == 2:
                break
        assert promoted == 2, "two clean batches should promote"
        clear_cache()
        yield home


def config_with(tmp_path: Path, **scoring: Any) -> str:
    data = yaml.safe_load(CONFIG.read_text())
    data["scoring"] = scoring
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def scoring_batch(home: Home, seed: int = 11) -> pd.DataFrame:
    batch, _ = make_batch(german_credit(), n_rows=400, seed=seed)
    return batch


def incidents(home: Home, kind: str) -> list[Any]:
    return [i for i in IncidentStore(home.incidents_db_url).list() if i.source.kind == kind]


def test_a_batch_is_scored_by_the_verified_champion(home: Home, tmp_path: Path) -> None:
    # Training is deterministic, so an earlier test in this process may have scored these very
    # rows with a model of the same digest: start from an empty row cache to count model calls.
    PROCESS_CACHE.clear()
    batch = scoring_batch(home)
    batch = pd.concat([batch, batch.head(100)], ignore_index=True)  # 100 rows seen twice
    batch.to_parquet(tmp_path / "batch.parquet", index=False)
    out = tmp_path / "out" / "scores.parquet"
    summary = score_batch(ScoreRequest(str(CONFIG), str(tmp_path / "batch.parquet"), str(out)), home)
    champion = Registry(home.mlflow_tracking_uri).champion(NAME)
    assert champion is not None
    scored = pd.read_parquet(out)
    assert len(scored) == len(batch) and scored["row_id"].tolist() == batch["row_id"].tolist()
    assert set(scored["model_version"]) == {champion.version}
    assert set(scored["model_digest"]) == {champion.signed_digest}
    np.testing.assert_allclose(scored[["proba_0", "proba_1"]].sum(axis=1), 1.0, rtol=1e-6)
    assert summary["served_by"]["source"] == CHAMPION and sum(summary["odd"]["counts"].values()) == len(batch)
    beside = json.loads((tmp_path / "out" / "scores.summary.json").read_text())
    assert beside["rows"] == len(batch) and beside["odd"] == summary["odd"]
    # each distinct row went through the model once; the repeats have the same outputs
    assert summary["rows_run_through_model"] == 400
    # the batch carries its labels (feedback): the served predictions' accuracy is recorded
    assert summary["quality"]["labeled_rows"] == 500 and 0.5 < summary["quality"]["accuracy"] <= 1
    assert scored["proba_1"].iloc[400:].tolist() == scored["proba_1"].iloc[:100].tolist()


@pytest.mark.parametrize(("write", "column", "rule"), [
    (lambda b, p: b.drop(columns=["age"]).to_csv(p, index=False), "age", "column exists"),
    (lambda b, p: b.head(0).to_csv(p, index=False), None, "row count >= 1"),
    (lambda b, p: p.write_bytes(b"\x00\x01PK not a table\xff" * 50), None, None),
])
def test_a_bad_batch_is_refused_with_nothing_written_and_an_incident(home: Home, tmp_path: Path, write: Any,
                                                                     column: str | None, rule: str | None) -> None:
    path = tmp_path / "bad.csv"
    write(scoring_batch(home), path)
    before = len(incidents(home, "scoring_failure"))
    with pytest.raises(DataValidationError) as caught:
        score_batch(ScoreRequest(str(CONFIG), str(path), str(tmp_path / "scores.parquet"), batch_id=f"bad-{rule}"),
                    home)
    assert str(path) in str(caught.value)
    if column:
        assert caught.value.column == column
    if rule:
        assert caught.value.rule == rule
    assert not any(tmp_path.glob("scores*")) and not any(tmp_path.glob(".scores*"))
    assert len(incidents(home, "scoring_failure")) == before + 1


def test_bad_cells_are_withheld_or_refuse_the_batch_as_configured(home: Home, tmp_path: Path) -> None:
    batch = scoring_batch(home).astype({"age": object, "duration": float})
    batch.loc[0, "age"] = "forty"
    batch.loc[1, "duration"] = np.inf
    batch.loc[2, "purpose"] = "spaceship"
    batch.to_csv(tmp_path / "cells.csv", index=False)
    summary = score_batch(ScoreRequest(str(CONFIG), str(tmp_path / "cells.csv"), str(tmp_path / "s.csv")), home)
    scored = pd.read_csv(tmp_path / "s.csv")
    assert scored.loc[:2, "odd"].tolist() == ["out"] * 3
    assert scored.loc[:2, "odd_column"].tolist() == ["age", "duration", "purpose"]
    assert scored.loc[:1, "withheld"].tolist() == [True, True] and scored.loc[:1, "prediction"].isna().all()
    assert not scored.loc[2, "withheld"]  # flag: the champion still scores a new category
    assert summary["odd"]["rules"]["finite number:age"] == 1
    strict = config_with(tmp_path, on_bad_input="quarantine")
    with pytest.raises(DataValidationError, match="column 'age' breaks rule 'finite number'"):
        score_batch(ScoreRequest(strict, str(tmp_path / "cells.csv"), str(tmp_path / "q.parquet"), batch_id="cells"),
                    home)
    assert not (tmp_path / "q.parquet").exists()
    assert (home.root / "scoring" / NAME / "quarantine" / "cells" / "cells.csv").exists()


def test_out_of_domain_rows_are_withheld_or_go_to_the_fallback(home: Home, tmp_path: Path) -> None:
    batch = scoring_batch(home)
    batch.loc[0, "credit_amount"] = 10_000_000
    batch.to_parquet(tmp_path / "b.parquet", index=False)
    withheld = config_with(tmp_path, out_of_domain="withhold")
    score_batch(ScoreRequest(withheld, str(tmp_path / "b.parquet"), str(tmp_path / "w.parquet")), home)
    row = pd.read_parquet(tmp_path / "w.parquet").iloc[0]
    assert (row["odd"], row["odd_rule"], row["withheld"]) == ("out", "in learned range", True)
    fallback = config_with(tmp_path, out_of_domain="fallback")
    score_batch(ScoreRequest(fallback, str(tmp_path / "b.parquet"), str(tmp_path / "f.parquet")), home)
    scored = pd.read_parquet(tmp_path / "f.parquet")
    previous = Registry(home.mlflow_tracking_uri).by_alias(NAME, "previous")
    assert previous is not None
    assert scored.loc[0, "scored_by"] == f"fallback:v{previous.version}"
    assert scored.loc[0, "model_version"] == previous.version and not scored.loc[0, "withheld"]


def test_a_tampered_champion_falls_back_to_the_previous_version_with_one_incident(home: Home,
                                                                                  tmp_path: Path) -> None:
    registry = Registry(home.mlflow_tracking_uri)
    champion, previous = registry.champion(NAME), registry.by_alias(NAME, "previous")
    assert champion is not None and previous is not None
    weights = next((home.mlflow_dir / "artifacts").rglob(f"{champion.signed_digest}/model/weights.safetensors"))
    original = weights.read_bytes()
    scoring_batch(home).to_parquet(tmp_path / "b.parquet", index=False)
    try:
        weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        clear_cache()  # a new process: nothing verified yet
        for attempt in range(2):
            summary = score_batch(ScoreRequest(str(CONFIG), str(tmp_path / "b.parquet"),
                                               str(tmp_path / f"s{attempt}.parquet")), home)
            assert summary["served_by"]["source"] == "previous"
            assert summary["served_by"]["version"] == previous.version
            assert "weights.safetensors" in summary["served_by"]["refused"][0]["reason"]
        scored = pd.read_parquet(tmp_path / "s1.parquet")
        assert set(scored["model_version"]) == {previous.version}
        found = incidents(home, "scoring_fallback")
        assert len(found) == 1 and found[0].count == 2 and found[0].severity.value == "high"
    finally:
        weights.write_bytes(original)
        clear_cache()


def test_a_challenger_scores_in_shadow_and_its_record_is_kept(home: Home, tmp_path: Path) -> None:
    registry = Registry(home.mlflow_tracking_uri)
    previous = registry.by_alias(NAME, "previous")
    assert previous is not None
    scoring_batch(home).to_parquet(tmp_path / "b.parquet", index=False)
    registry.set_alias(NAME, CHALLENGER, previous.version)
    try:
        first = score_batch(ScoreRequest(str(CONFIG), str(tmp_path / "b.parquet"), str(tmp_path / "a.parquet")),
                            home)["shadow"]
        canary = config_with(tmp_path, shadow={"canary_share": 0.5})
        second = score_batch(ScoreRequest(canary, str(tmp_path / "b.parquet"), str(tmp_path / "b2.parquet")),
                             home)["shadow"]
    finally:
        registry.delete_alias(NAME, CHALLENGER)
    assert first["challenger"]["version"] == previous.version and first["rows"] == 400
    assert 0.5 <= first["agreement"] <= 1 and 0 <= first["distance"] <= 1
    assert first["labeled_rows"] == 400 and first["champion_accuracy"] is not None
    assert 0 < second["rows"] < 400  # the canary share, chosen by row hash
    assert first["healthy"] is (first["agreement"] >= 0.8 and first["distance"] <= 0.15)
    assert healthy_streak(home, NAME, previous.version) == (2 if first["healthy"] and second["healthy"] else
                                                            int(second["healthy"]))


def test_aire_score_on_the_command_line(home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scoring_batch(home).to_csv(tmp_path / "b.csv", index=False)
    code = aire_main(["score", "--config", str(CONFIG), "--batch", str(tmp_path / "b.csv"),
                          "--out", str(tmp_path / "out.csv")])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0 and printed["rows"] == 400 and (tmp_path / "out.csv").exists()
    code = aire_main(["score", "--config", str(CONFIG), "--batch", str(tmp_path / "missing.csv"),
                          "--out", str(tmp_path / "none.csv")])
    assert code == 2 and "missing.csv" in capsys.readouterr().err and not (tmp_path / "none.csv").exists()


def test_a_batch_on_s3_is_scored_to_s3_with_its_summary(home: Home, tmp_path: Path, s3_server: Any) -> None:
    """moto's S3 server over HTTP: the batch read from s3://, the table and summary written there."""
    import io

    from aire.data.storage import S3Settings
    from tests.support.deployment import DATA_BUCKET

    settings = S3Settings(endpoint_url=s3_server.endpoint, access_key_id="aire-test",
                          secret_access_key="not-a-secret", region="us-east-1")
    buffer = io.BytesIO()
    scoring_batch(home, seed=41).to_parquet(buffer, index=False)
    s3_server.client().put_object(Bucket=DATA_BUCKET, Key="in/batch.parquet", Body=buffer.getvalue())
    summary = score_batch(ScoreRequest(str(CONFIG), f"s3://{DATA_BUCKET}/in/batch.parquet",
                                       f"s3://{DATA_BUCKET}/scores/batch.parquet", s3=settings), home)
    assert summary["summary_uri"] == f"s3://{DATA_BUCKET}/scores/batch.summary.json"
    assert sorted(s3_server.keys(DATA_BUCKET, "scores/")) == ["scores/batch.parquet", "scores/batch.summary.json"]
    body = s3_server.client().get_object(Bucket=DATA_BUCKET, Key="scores/batch.parquet")["Body"].read()
    assert len(pd.read_parquet(io.BytesIO(body))) == 400


def test_a_held_challenger_is_promoted_after_n_healthy_shadow_batches_and_an_unhealthy_one_ends(
        home: Home, tmp_path: Path) -> None:
    """Runs last: it moves the aliases, and puts them back."""
    from aire.constants import LEDGER_CHALLENGER_ENDED, LEDGER_SHADOW_HOLD, PREVIOUS
    from aire.trust.ledger import Ledger

    registry, ledger = Registry(home.mlflow_tracking_uri), Ledger.for_home(home)
    champion, previous = registry.champion(NAME), registry.by_alias(NAME, PREVIOUS)
    assert champion is not None and previous is not None
    scoring_batch(home, seed=31).to_parquet(tmp_path / "b.parquet", index=False)
    lenient = config_with(tmp_path, shadow={"required_healthy_batches": 2, "min_agreement": 0.0, "max_distance": 1.0})
    ledger.append(LEDGER_SHADOW_HOLD, {"pipeline": NAME, "run_key": "held", "version": previous.version,
                                       "digest": previous.signed_digest, "judged_against": champion.version,
                                       "required": 2, "decision": {"promote": True}})
    registry.set_alias(NAME, CHALLENGER, previous.version)
    try:
        shadows = [score_batch(ScoreRequest(lenient, str(tmp_path / "b.parquet"), str(tmp_path / f"{i}.parquet"),
                                            batch_id=f"held-{i}"), home)["shadow"] for i in range(2)]
        assert "promotion" not in shadows[0] or not shadows[0]["promotion"]["moved"]
        assert shadows[1]["promotion"]["moved"] is True
        assert registry.aliases(NAME) == {CHAMPION: previous.version, PREVIOUS: champion.version}
        # back as it was, then an unhealthy batch ends a new challenger
        registry.set_alias(NAME, CHAMPION, champion.version)
        registry.set_alias(NAME, PREVIOUS, previous.version)
        registry.set_alias(NAME, CHALLENGER, previous.version)
        strict = config_with(tmp_path, shadow={"required_healthy_batches": 2, "min_agreement": 1.0,
                                               "max_distance": 0.0})
        shadow = score_batch(ScoreRequest(strict, str(tmp_path / "b.parquet"), str(tmp_path / "s.parquet"),
                                          batch_id="strict"), home)["shadow"]
        assert shadow["healthy"] is False and shadow["ended"]["ended"] is True
        assert CHALLENGER not in registry.aliases(NAME)
        assert ledger.find(LEDGER_CHALLENGER_ENDED, pipeline=NAME, version=previous.version)
    finally:
        registry.set_alias(NAME, CHAMPION, champion.version)
        registry.set_alias(NAME, PREVIOUS, previous.version)
        registry.delete_alias(NAME, CHALLENGER)
