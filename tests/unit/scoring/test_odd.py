"""ODD verdicts on crafted rows: each rule, its column, and the order rules are judged in."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aire.scoring.encoding import encode
from aire.scoring.loader import LoadedModel
from aire.scoring.odd import (
    RULE_CATEGORY,
    RULE_CONFIDENCE,
    RULE_DISTANCE,
    RULE_FINITE,
    RULE_NOT_NULL,
    RULE_RANGE,
    OddProfile,
    judge_confidence,
    judge_inputs,
)


def verdicts_of(loaded: LoadedModel, rows: pd.DataFrame) -> list[tuple[str, str | None, str | None]]:
    encoded = encode(loaded.model.preprocessor, rows)
    verdicts = judge_inputs(loaded.odd, loaded.model, encoded)
    proba = loaded.model.predict_proba_encoded(encoded.matrix)
    judge_confidence(loaded.odd, verdicts, np.where(verdicts.scorable, proba.max(axis=1), 0.0))
    odd, rule, column = verdicts.labels()
    return list(zip(odd.tolist(), rule.tolist(), column.tolist(), strict=True))


def typical_row(german: pd.DataFrame, loaded: LoadedModel) -> pd.DataFrame:
    """A training row the model is confident about and that sits near the centre."""
    encoded = encode(loaded.model.preprocessor, german)
    confidence = loaded.model.predict_proba_encoded(encoded.matrix).max(axis=1)
    assert loaded.odd.confidence_threshold is not None
    centre = np.abs(encoded.matrix[:, :4]).max(axis=1)
    pick = int(np.argmin(np.where(confidence > loaded.odd.confidence_threshold + 0.02, centre, np.inf)))
    return german.iloc[[pick]].reset_index(drop=True)


@pytest.mark.parametrize(("change", "rule", "column"), [
    ({"age": np.nan}, RULE_FINITE, "age"),
    ({"age": np.inf}, RULE_FINITE, "age"),
    ({"age": "forty"}, RULE_FINITE, "age"),
    ({"housing": None}, RULE_NOT_NULL, "housing"),
    ({"purpose": "spaceship"}, RULE_CATEGORY, "purpose"),
    ({"credit_amount": 10_000_000}, RULE_RANGE, "credit_amount"),
    ({"duration": -5}, RULE_RANGE, "duration"),
])
def test_a_row_breaking_one_rule_is_out_with_that_rule_and_column(german: pd.DataFrame, loaded: LoadedModel,
                                                                   change: dict[str, object], rule: str,
                                                                   column: str) -> None:
    row = typical_row(german, loaded).astype(object)
    for key, value in change.items():
        row.loc[0, key] = value
    assert verdicts_of(loaded, row) == [("out", rule, column)]


def test_a_typical_row_is_in(german: pd.DataFrame, loaded: LoadedModel) -> None:
    assert verdicts_of(loaded, typical_row(german, loaded)) == [("in", None, None)]


def test_the_first_rule_broken_is_the_one_reported(german: pd.DataFrame, loaded: LoadedModel) -> None:
    row = typical_row(german, loaded).astype(object)
    row.loc[0, "age"] = np.nan  # finite number is judged before known category
    row.loc[0, "purpose"] = "spaceship"
    assert verdicts_of(loaded, row) == [("out", RULE_FINITE, "age")]


def test_a_row_inside_every_range_but_far_from_the_data_is_out_on_distance(german: pd.DataFrame,
                                                                           loaded: LoadedModel) -> None:
    """Each value seen in training, the combination never: young, huge loan, shortest duration."""
    row = typical_row(german, loaded)
    row.loc[0, ["age", "credit_amount", "duration"]] = [german.age.min(), german.credit_amount.max(),
                                                        german.duration.min()]
    assert verdicts_of(loaded, row) == [("out", RULE_DISTANCE, None)]


def test_a_low_confidence_row_is_uncertain(german: pd.DataFrame, loaded: LoadedModel) -> None:
    encoded = encode(loaded.model.preprocessor, german)
    confidence = loaded.model.predict_proba_encoded(encoded.matrix).max(axis=1)
    verdicts = judge_inputs(loaded.odd, loaded.model, encoded)
    inside = np.flatnonzero((verdicts.code == 0) & (confidence < loaded.odd.confidence_threshold))  # type: ignore[operator]
    assert len(inside), "the learned threshold leaves some training rows below it"
    row = german.iloc[[int(inside[0])]].reset_index(drop=True)
    assert verdicts_of(loaded, row) == [("uncertain", RULE_CONFIDENCE, None)]


def test_the_training_data_is_mostly_in_domain(german: pd.DataFrame, loaded: LoadedModel) -> None:
    odd = [v for v, _, _ in verdicts_of(loaded, german)]
    assert odd.count("out") / len(odd) < 0.02  # the distance threshold sits beyond the 99th percentile
    assert 0.01 < odd.count("uncertain") / len(odd) < 0.1  # the 5% confidence quantile


def test_the_profile_round_trips_through_json(loaded: LoadedModel) -> None:
    import json

    again = OddProfile.from_dict(json.loads(json.dumps(loaded.odd.to_dict())))
    assert again == loaded.odd
