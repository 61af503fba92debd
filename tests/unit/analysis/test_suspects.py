"""Actions on suspects: drop / downweight / keep change the training set as documented."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from aire.analysis.suspects import apply_action, suspects_from_table, training_set
from aire.data.datasets import german_credit, make_batch
from aire.errors import AireError, InputError
from aire.home import PROJECT_ROOT

CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"


@pytest.fixture()
def frame() -> pd.DataFrame:
    return pd.DataFrame({"row_id": [10, 11, 12, 13, 14], "x": [1.0, 2.0, 3.0, 4.0, 5.0],
                         "risk": [0, 1, 0, 1, 1]})


SUSPECTED = np.array([False, True, False, False, True])


def write_table(path: Path, row_ids: list[object], suspected: list[bool]) -> Path:
    pd.DataFrame({"row_id": row_ids, "label": 0, "predicted": 0, "loss": 0.0,
                  "confidence": 0.5, "suspected": suspected}).to_csv(path, index=False)
    return path


def test_drop_leaves_the_suspects_out(frame: pd.DataFrame) -> None:
    result = apply_action(frame, SUSPECTED, "drop")
    assert result.frame["row_id"].tolist() == [10, 12, 13] and result.sample_weight is None
    assert result.to_dict() == {"action": "drop", "n_rows": 3, "n_suspected": 2, "n_dropped": 2,
                                "n_downweighted": 0, "weight": None}


def test_downweight_keeps_every_row_with_lower_weight_for_suspects(frame: pd.DataFrame) -> None:
    result = apply_action(frame, SUSPECTED, "downweight", weight=0.25)
    pd.testing.assert_frame_equal(result.frame, frame)
    assert result.sample_weight is not None
    assert result.sample_weight.tolist() == [1.0, 0.25, 1.0, 1.0, 0.25]
    assert (result.n_dropped, result.n_downweighted, result.weight) == (0, 2, 0.25)


def test_keep_changes_nothing(frame: pd.DataFrame) -> None:
    result = apply_action(frame, SUSPECTED, "keep")
    pd.testing.assert_frame_equal(result.frame, frame)
    assert result.sample_weight is None and result.n_dropped == result.n_downweighted == 0


def test_action_bad_input(frame: pd.DataFrame) -> None:
    with pytest.raises(InputError, match="action 'delete' is not one of"):
        apply_action(frame, SUSPECTED, "delete")
    with pytest.raises(InputError, match="weight must be in"):
        apply_action(frame, SUSPECTED, "downweight", weight=0.0)
    with pytest.raises(InputError, match="covers 2 rows but the data has 5"):
        apply_action(frame, SUSPECTED[:2], "drop")


def test_suspects_are_matched_by_id_whatever_the_order(frame: pd.DataFrame,
                                                      tmp_path: Path) -> None:
    table = write_table(tmp_path / "t.csv", [14, 11, 10, 12, 13], [True, True, False, False, False])
    assert suspects_from_table(table, frame, "row_id").tolist() == SUSPECTED.tolist()
    shuffled = frame.iloc[::-1].reset_index(drop=True)
    assert suspects_from_table(table, shuffled, "row_id").tolist() == SUSPECTED[::-1].tolist()


def test_suspects_are_matched_by_position_without_an_id(frame: pd.DataFrame,
                                                       tmp_path: Path) -> None:
    table = write_table(tmp_path / "t.csv", [4, 1, 0, 2, 3], [True, True, False, False, False])
    assert suspects_from_table(table, frame, None).tolist() == SUSPECTED.tolist()


def test_a_table_of_another_batch_or_with_duplicate_ids_is_refused(frame: pd.DataFrame,
                                                                  tmp_path: Path) -> None:
    other = write_table(tmp_path / "o.csv", [1, 2, 3, 4, 5], [False] * 5)
    with pytest.raises(InputError, match="column 'row_id' do not match the batch"):
        suspects_from_table(other, frame, "row_id")
    short = write_table(tmp_path / "s.csv", [10, 11], [False, True])
    with pytest.raises(InputError, match="2 analysed rows, 5 in the batch"):
        suspects_from_table(short, frame, "row_id")
    duplicated = frame.assign(row_id=[10, 10, 12, 13, 14])
    good = write_table(tmp_path / "g.csv", [10, 11, 12, 13, 14], [False] * 5)
    with pytest.raises(InputError, match="breaks rule 'unique row id'"):
        suspects_from_table(good, duplicated, "row_id")


def test_a_skipped_analysis_suspects_nothing(frame: pd.DataFrame, tmp_path: Path) -> None:
    empty = write_table(tmp_path / "e.csv", [], [])
    assert not suspects_from_table(empty, frame, "row_id").any()


def test_training_set_needs_the_table_only_to_act(frame: pd.DataFrame, tmp_path: Path) -> None:
    kept = training_set(frame, frame, tmp_path, action="keep", weight=0.2, id_column="row_id")
    assert len(kept.frame) == 5 and kept.n_suspected is None
    with pytest.raises(AireError, match="run the 'analyze_errors' stage first"):
        training_set(frame, frame, tmp_path, action="drop", weight=0.2, id_column="row_id")
    write_table(tmp_path / "error_analysis.csv", [10, 11, 12, 13, 14], SUSPECTED.tolist())
    train = frame.iloc[[4, 0, 1]]  # a split keeps the batch's index
    dropped = training_set(train, frame, tmp_path, action="drop", weight=0.2, id_column="row_id")
    assert dropped.frame["row_id"].tolist() == [10] and dropped.n_dropped == 2


# --- through the pipeline's stages -----------------------------------------------------------


def config_with(tmp_path: Path, action: str) -> str:
    data = yaml.safe_load(CONFIG.read_text())
    data["analysis"].update({"action": action, "downweight": 0.3})
    path = tmp_path / f"{action}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_fine_tune_applies_the_configured_action_to_the_training_split(
        aire_home: Path, tmp_path: Path) -> None:
    from aire.pipeline.run_context import RunSpec
    from aire.pipeline.stages import analyze_errors, fine_tune, validate_data

    batch, _ = make_batch(german_credit(), n_rows=400, seed=2, label_noise=0.2)
    batch_csv = tmp_path / "batch.csv"
    batch.to_csv(batch_csv, index=False)

    def spec(action: str) -> RunSpec:  # one run: every config names the same pipeline
        return RunSpec(config_with(tmp_path, action), str(batch_csv), "actions")

    validate_data(spec("keep"))
    analysis = analyze_errors(spec("keep"), None)
    assert analysis["n_suspected"] > 0 and analysis["source"] == "cross_fit:5:boosted_trees"
    run_dir = aire_home / "reports" / "credit-risk" / "actions"
    table = pd.read_csv(run_dir / "analysis" / "error_analysis.csv")
    suspects = set(table.loc[table["suspected"], "row_id"])

    outcomes = {action: fine_tune(spec(action), None) for action in ("keep", "downweight", "drop")}
    split = outcomes["keep"]["rows_train"]
    in_split = outcomes["drop"]["analysis_action"]["n_dropped"]
    assert 0 < in_split < len(suspects)
    assert outcomes["drop"]["rows_train"] == split - in_split
    assert outcomes["downweight"]["rows_train"] == split
    assert outcomes["downweight"]["analysis_action"] == {
        "action": "downweight", "n_rows": split, "n_suspected": in_split, "n_dropped": 0,
        "n_downweighted": in_split, "weight": 0.3}
    assert outcomes["keep"]["analysis_action"]["n_suspected"] is None

    # the last fine-tune (drop) trained on no suspect; the holdout keeps its suspects
    trained = pd.read_parquet(run_dir / "train.parquet")
    assert len(trained) == split - in_split and not set(trained["row_id"]) & suspects
    holdout = pd.read_parquet(run_dir / "holdout.parquet")
    assert set(holdout["row_id"]) & suspects
    training = json.loads((run_dir / "training.json").read_text())
    assert training["analysis_action"]["action"] == "drop"
    assert training["n_rows"] == split - in_split
