"""Fine-tuning a transformer from a base (tiny, random weights, built here): it learns, it keeps the best
epoch, it stops early, a seed reproduces it on CPU, LoRA merges away, and a warm start starts ahead."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from aire.config import Lora
from aire.errors import InputError
from aire.model.text.training import TextTrainResult, TextTrainSettings, fit_text
from tests.support.text_models import keyword_texts, tiny_base

TEXT, LABEL = "description", "category"
# Step sizes at which the tiny random base learns the keywords in a few seconds (a pretrained
# base takes the smaller defaults, FULL_ and LORA_LEARNING_RATE).
# (At 3e-3 the holdout loss reaches ~0.003 and then jumps, so early stopping and keeping the best
# epoch both have something to do; at 3e-4 it learns too, more slowly.)
FULL = TextTrainSettings(epochs=40, batch_size=16, learning_rate=3e-3, patience=2, seed=0, device="cpu",
                         max_length=16)
LORA = replace(FULL, epochs=25, patience=5, learning_rate=1e-2, lora=Lora(r=4, alpha=8, dropout=0.0))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_base(tmp_path_factory.mktemp("base") / "tiny")


@pytest.fixture(scope="module")
def tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return keyword_texts(240, seed=1), keyword_texts(60, seed=2), keyword_texts(200, seed=3)


def _fit(base: Path, tables: tuple[pd.DataFrame, ...], settings: TextTrainSettings, **kwargs: object
         ) -> TextTrainResult:
    train, holdout, _ = tables
    if "init_from" not in kwargs:
        kwargs["base_dir"] = base
    return fit_text(train, holdout, text_column=TEXT, label=LABEL, settings=settings, base_digest="d" * 64,
                    **kwargs)  # type: ignore[arg-type]


def _accuracy(result: TextTrainResult, table: pd.DataFrame) -> float:
    predicted = result.model.predict_proba(table).argmax(axis=1)
    return float((predicted == result.model.encode_labels(table[LABEL])).mean())


@pytest.fixture(scope="module")
def full(base: Path, tables: tuple[pd.DataFrame, ...]) -> TextTrainResult:
    return _fit(base, tables, FULL)


def test_full_fine_tuning_learns_what_chance_cannot(full: TextTrainResult,
                                                    tables: tuple[pd.DataFrame, ...]) -> None:
    assert full.model.classes == ["food", "fuel", "travel"] and not full.lora and not full.warm_start
    assert _accuracy(full, tables[2]) >= 0.9  # three balanced classes: chance is 1/3
    assert full.history[0]["holdout_accuracy"] < 0.9  # it was learned, not there from the start


def test_the_best_epoch_is_what_is_returned(full: TextTrainResult, tables: tuple[pd.DataFrame, ...]) -> None:
    losses = [h["holdout_loss"] for h in full.history]
    assert full.best_epoch == int(np.argmin(losses)) + 1
    # It stopped early, so the last epoch's weights are not the best ones: restoring is checked.
    assert full.epochs - full.best_epoch == FULL.patience and full.epochs < FULL.epochs
    assert losses[-1] > losses[full.best_epoch - 1]
    holdout = tables[1]
    probabilities = full.model.predict_proba(holdout)
    y = full.model.encode_labels(holdout[LABEL])
    recomputed = float(-np.log(probabilities[np.arange(len(y)), y]).mean())
    assert recomputed == pytest.approx(losses[full.best_epoch - 1], rel=1e-4)


def test_training_stops_after_patience_epochs_without_a_better_holdout_loss(
        base: Path, tables: tuple[pd.DataFrame, ...]) -> None:
    # A zero step size leaves the weights as they are: the holdout loss never improves on epoch 1.
    result = _fit(base, tables, replace(FULL, epochs=10, patience=2, learning_rate=0.0))
    assert (result.epochs, result.best_epoch) == (3, 1)


def test_a_seed_reproduces_the_weights_on_cpu(base: Path, tables: tuple[pd.DataFrame, ...]) -> None:
    short = replace(FULL, epochs=2)
    first = _fit(base, tables, short)
    torch.manual_seed(12345)  # the caller's global RNG must not matter, only the seed
    again = _fit(base, tables, short)
    other = _fit(base, tables, replace(short, seed=1))
    a, b, c = (r.model.net.state_dict() for r in (first, again, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert first.history == again.history


def test_lora_learns_and_is_merged_into_plain_weights(base: Path, tables: tuple[pd.DataFrame, ...]) -> None:
    result = _fit(base, tables, LORA)
    assert result.lora and _accuracy(result, tables[2]) >= 0.9
    names = list(result.model.net.state_dict())
    assert not [n for n in names if "lora_" in n or "base_model.model" in n]
    assert type(result.model.net).__name__ == "BertForSequenceClassification"


def test_a_warm_start_begins_where_the_champion_is_and_leaves_it_untouched(
        full: TextTrainResult, base: Path, tables: tuple[pd.DataFrame, ...]) -> None:
    before = {k: v.clone() for k, v in full.model.net.state_dict().items()}
    warm = _fit(base, tables, replace(FULL, epochs=1), init_from=full.model)
    assert warm.warm_start and warm.model.classes == full.model.classes
    assert warm.history[0]["holdout_accuracy"] >= 0.9  # a cold start's first epoch is not
    after = full.model.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_warm_start_refuses_a_champion_of_other_columns(full: TextTrainResult,
                                                          tables: tuple[pd.DataFrame, ...]) -> None:
    train, holdout, _ = tables
    renamed = [t.rename(columns={TEXT: "memo"}) for t in (train, holdout)]
    with pytest.raises(InputError, match="the champion reads 'description'"):
        fit_text(*renamed, text_column="memo", label=LABEL, settings=FULL, init_from=full.model)


@pytest.mark.parametrize(("breakage", "message"), [
    ("null text", "rule 'text is a string': 1 row"),
    ("number", "rule 'text is a string': 1 row"),
    ("no column", "rule 'required text column'"),
    ("one class", "at least two classes"),
])
def test_bad_training_input_is_an_input_error_naming_column_and_rule(
        base: Path, tables: tuple[pd.DataFrame, ...], breakage: str, message: str) -> None:
    train = tables[0].copy()
    if breakage == "null text":
        train.loc[3, TEXT] = None
    elif breakage == "number":
        train[TEXT] = train[TEXT].astype(object)
        train.loc[3, TEXT] = 42
    elif breakage == "no column":
        train = train.drop(columns=[TEXT])
    else:
        train[LABEL] = "food"
    with pytest.raises(InputError, match=message):
        fit_text(train, tables[1], text_column=TEXT, label=LABEL, settings=FULL, base_dir=base)


def test_exactly_one_starting_point_and_an_existing_base(base: Path, full: TextTrainResult,
                                                        tables: tuple[pd.DataFrame, ...], tmp_path: Path) -> None:
    train, holdout, _ = tables
    with pytest.raises(InputError, match="exactly one of base_dir"):
        fit_text(train, holdout, text_column=TEXT, label=LABEL, settings=FULL)
    with pytest.raises(InputError, match="exactly one of base_dir"):
        fit_text(train, holdout, text_column=TEXT, label=LABEL, settings=FULL, base_dir=base,
                 init_from=full.model)
    with pytest.raises(InputError, match="no such directory"):
        fit_text(train, holdout, text_column=TEXT, label=LABEL, settings=FULL, base_dir=tmp_path / "gone")


def test_a_diverged_run_is_refused_not_returned(base: Path, tables: tuple[pd.DataFrame, ...]) -> None:
    with pytest.raises(InputError, match="diverged: holdout loss nan after epoch 1"):
        _fit(base, tables, replace(FULL, epochs=2, learning_rate=1e4))
