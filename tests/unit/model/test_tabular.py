"""The tabular recipe: preprocessing, scoring in batches, and the pickle-free model directory."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from aire.config import Features, PipelineConfig, parse_config
from aire.errors import InputError
from aire.model import tabular as model_module
from aire.model.tabular import (
    MODEL_FILE,
    PREPROCESSING_FILE,
    WEIGHTS_FILE,
    TabularPreprocessor,
    TrainedModel,
    label_classes,
    load_model,
    resolve_device,
)
from aire.model.training import fit
from tests.support.german import FEATURES, german_csv

GERMAN = german_csv()


@pytest.fixture(scope="module")
def german() -> pd.DataFrame:
    return pd.read_csv(GERMAN)


@pytest.fixture(scope="module")
def config() -> PipelineConfig:
    return parse_config({"name": "credit-risk", "dataset": {
        "label": "risk", "features": FEATURES, "sensitive": ["sex"]}})


@pytest.fixture(scope="module")
def trained(german: pd.DataFrame, config: PipelineConfig) -> TrainedModel:
    return fit(german, config, epochs=3, seed=0, device="cpu").model


# --- preprocessing -----------------------------------------------------------------------


def test_preprocessor_standardizes_numeric_and_one_hots_categorical(german: pd.DataFrame) -> None:
    prep = TabularPreprocessor.fit(german, Features(**FEATURES))
    x = prep.transform(german)
    assert x.shape == (len(german), prep.input_dim) == (len(german), len(prep.feature_names))
    np.testing.assert_allclose(x[:, :4].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x[:, :4].std(axis=0), 1.0, atol=1e-4)
    # each categorical block is one-hot: exactly one 1 per row per column
    assert x[:, 4:].sum(axis=1).tolist() == [4.0] * len(german)
    assert "housing=own" in prep.feature_names and "housing=<unknown>" in prep.feature_names


def test_constant_numeric_column_does_not_divide_by_zero() -> None:
    df = pd.DataFrame({"a": [5.0, 5.0, 5.0], "c": ["x", "y", "x"]})
    prep = TabularPreprocessor.fit(df, Features(numeric=["a"], categorical=["c"]))
    assert prep.stds["a"] == 1.0
    assert np.isfinite(prep.transform(df)).all()


def test_preprocessor_json_round_trip(german: pd.DataFrame) -> None:
    prep = TabularPreprocessor.fit(german, Features(**FEATURES))
    again = TabularPreprocessor.from_dict(json.loads(json.dumps(prep.to_dict())))
    assert again == prep
    np.testing.assert_array_equal(again.transform(german), prep.transform(german))


def test_malformed_preprocessing_state_is_an_input_error(german: pd.DataFrame) -> None:
    state = TabularPreprocessor.fit(german, Features(**FEATURES)).to_dict()
    del state["means"]["age"]
    with pytest.raises(InputError, match="preprocessing"):
        TabularPreprocessor.from_dict(state)


def test_unseen_category_maps_to_the_unknown_slot(german: pd.DataFrame) -> None:
    prep = TabularPreprocessor.fit(german, Features(**FEATURES))
    row = german.iloc[[0]].copy()
    row["purpose"] = "spaceship"
    encoded = prep.transform(row)[0]
    names = prep.feature_names
    purpose_slots = [i for i, n in enumerate(names) if n.startswith("purpose=")]
    assert [names[i] for i in purpose_slots if encoded[i] == 1.0] == ["purpose=<unknown>"]


def test_missing_feature_column_names_the_column(german: pd.DataFrame) -> None:
    prep = TabularPreprocessor.fit(german, Features(**FEATURES))
    with pytest.raises(InputError, match=r"\['duration'\].*required feature column"):
        prep.transform(german.drop(columns=["duration"]))


@pytest.mark.parametrize("bad", [np.nan, "lots", np.inf])
def test_bad_numeric_value_names_column_and_rule(german: pd.DataFrame, bad: object) -> None:
    prep = TabularPreprocessor.fit(german, Features(**FEATURES))
    df = german.head(5).astype({"age": object})
    df.loc[2, "age"] = bad
    with pytest.raises(InputError, match="column 'age' breaks rule 'numeric feature"):
        prep.transform(df)


# --- labels and devices ------------------------------------------------------------------


def test_label_classes_are_sorted_json_values() -> None:
    assert label_classes(pd.Series([1, 0, 1]), "y") == [0, 1]
    assert label_classes(pd.Series([1.0, 0.0]), "y") == [0, 1]
    assert label_classes(pd.Series(["good", "bad"]), "y") == ["bad", "good"]
    json.dumps(label_classes(pd.Series(np.array([3, 1], dtype=np.int64)), "y"))


@pytest.mark.parametrize("labels", [[1, None], [1, "a"], [0.5, 1.0]])
def test_bad_labels_name_the_label_column(labels: list[object]) -> None:
    with pytest.raises(InputError, match="column 'y' breaks rule"):
        label_classes(pd.Series(labels, dtype=object), "y")


def test_label_not_in_classes_raises_naming_label_column(trained: TrainedModel) -> None:
    assert trained.encode_labels(pd.Series([0, 1, 1.0])).tolist() == [0, 1, 1]
    expected = r"column 'risk' breaks rule 'label in classes \[0, 1\]'.*'2'"
    with pytest.raises(InputError, match=expected):
        trained.encode_labels(pd.Series([0, 1, 2]))


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(InputError, match="not one of"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_is_a_clear_input_error() -> None:
    with pytest.raises(InputError, match="no CUDA GPU"):
        resolve_device("cuda")


# --- scoring -----------------------------------------------------------------------------


def test_predict_proba_in_small_batches_matches_one_batch(
        trained: TrainedModel, german: pd.DataFrame) -> None:
    whole = trained.predict_proba(german)
    assert whole.shape == (len(german), 2)
    np.testing.assert_allclose(whole.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(trained.predict_proba(german, batch_size=128), whole, atol=1e-6)
    assert trained.predict_proba(german.head(0)).shape == (0, 2)
    with pytest.raises(InputError, match="batch_size"):
        trained.predict_proba(german, batch_size=0)


# --- the model directory -----------------------------------------------------------------


def test_save_load_round_trip_gives_identical_probabilities(
        trained: TrainedModel, german: pd.DataFrame, tmp_path: Path) -> None:
    model_dir = trained.save(tmp_path / "model")
    loaded = load_model(model_dir)
    np.testing.assert_array_equal(loaded.predict_proba(german), trained.predict_proba(german))
    assert loaded.classes == [0, 1] and loaded.label == "risk"
    assert loaded.preprocessor == trained.preprocessor
    meta = json.loads((model_dir / MODEL_FILE).read_text())
    assert meta["torch_version"] == torch.__version__
    assert meta["feature_order"] == trained.preprocessor.feature_names
    assert meta["input_dim"] == trained.preprocessor.input_dim


def test_model_directory_holds_no_pickle_and_loads_without_unpickling(
        trained: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model_dir = trained.save(tmp_path / "model")
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(
        [WEIGHTS_FILE, MODEL_FILE, PREPROCESSING_FILE])
    for path in model_dir.iterdir():
        head = path.read_bytes()[:2]
        assert head[:1] != b"\x80", f"{path.name} starts like a pickle"
        assert head != b"PK", f"{path.name} starts like a torch.save zip"

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("load_model tried to unpickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert load_model(model_dir).classes == [0, 1]


def test_save_replaces_an_existing_directory_and_leaves_no_staging(
        trained: TrainedModel, tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.bin").write_bytes(b"old")
    trained.save(target)
    assert not (target / "stale.bin").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_failed_save_leaves_the_previous_model_intact(
        trained: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = trained.save(tmp_path / "model")
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def disk_full(path: Path, data: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model_module, "_write_json", disk_full)
    with pytest.raises(OSError):
        trained.save(target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_load_rejects_broken_directories(trained: TrainedModel, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a readable model directory"):
        load_model(tmp_path / "missing")
    model_dir = trained.save(tmp_path / "model")
    (model_dir / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(InputError, match="weights do not match"):
        load_model(model_dir)
    model_dir = trained.save(tmp_path / "model2")
    meta = json.loads((model_dir / MODEL_FILE).read_text())
    meta["input_dim"] += 1
    (model_dir / MODEL_FILE).write_text(json.dumps(meta))
    with pytest.raises(InputError, match="inputs"):
        load_model(model_dir)
