"""The transformer model directory: safetensors and JSON only, and it scores the same after loading."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from aire.errors import InputError
from aire.model.text.directory import load_text_model
from aire.model.text.training import TextTrainResult, TextTrainSettings, fit_text
from tests.support.text_models import keyword_texts, tiny_base

SETTINGS = TextTrainSettings(epochs=3, learning_rate=3e-4, device="cpu", max_length=16)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TextTrainResult:
    base = tiny_base(tmp_path_factory.mktemp("base") / "tiny")
    return fit_text(keyword_texts(120, seed=1), keyword_texts(30, seed=2), text_column="description",
                    label="category", settings=SETTINGS, base_dir=base, base_digest="ab" * 32)


def test_saved_model_loads_and_scores_the_same(trained: TextTrainResult, tmp_path: Path) -> None:
    table = keyword_texts(50, seed=9)
    saved = trained.model.save(tmp_path / "model")
    loaded = load_text_model(saved)
    np.testing.assert_allclose(loaded.predict_proba(table), trained.model.predict_proba(table), atol=1e-6)
    assert (loaded.classes, loaded.label, loaded.text_column, loaded.max_length, loaded.base_digest) == (
        trained.model.classes, "category", "description", 16, "ab" * 32)


def test_the_directory_holds_no_pickle_and_the_tokenizer(trained: TextTrainResult, tmp_path: Path) -> None:
    saved = trained.model.save(tmp_path / "model")
    names = sorted(p.name for p in saved.iterdir())
    assert "model.safetensors" in names and "config.json" in names and "tokenizer.json" in names
    assert not [n for n in names if Path(n).suffix in {".bin", ".pt", ".pth", ".pkl", ".py"}]
    meta = json.loads((saved / "model.json").read_text())
    assert meta["recipe"] == "transformer" and meta["classes"] == ["food", "fuel", "travel"]


def test_a_saved_lora_model_needs_neither_peft_nor_the_base(tmp_path: Path) -> None:
    from aire.config import Lora

    base = tiny_base(tmp_path / "base")
    result = fit_text(keyword_texts(60, seed=1), keyword_texts(20, seed=2), text_column="description",
                      label="category", settings=replace(SETTINGS, epochs=1, lora=Lora(r=2, alpha=4)),
                      base_dir=base, base_digest="c" * 64)
    saved = result.model.save(tmp_path / "model")
    assert not list(saved.glob("adapter_*"))  # merged: no peft adapter files
    loaded = load_text_model(saved)
    table = keyword_texts(10, seed=3)
    np.testing.assert_allclose(loaded.predict_proba(table), result.model.predict_proba(table), atol=1e-6)


def test_scoring_refuses_null_text(trained: TextTrainResult) -> None:
    table = keyword_texts(5, seed=4)
    table.loc[2, "description"] = None
    with pytest.raises(InputError, match="column 'description' breaks rule 'text is a string'"):
        trained.model.predict_proba(table)


def test_a_directory_of_another_recipe_is_refused(trained: TextTrainResult, tmp_path: Path) -> None:
    saved = trained.model.save(tmp_path / "model")
    meta = json.loads((saved / "model.json").read_text())
    (saved / "model.json").write_text(json.dumps({**meta, "recipe": "tabular"}))
    with pytest.raises(InputError, match="is not 'transformer'"):
        load_text_model(saved)
    with pytest.raises(InputError, match="not a readable model directory"):
        load_text_model(tmp_path / "nowhere")
