"""validate_batch and learn_profile against real Great Expectations suites."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aire.config import PipelineConfig, parse_config
from aire.data.tables import read_table, write_table
from aire.data.validation import (
    ColumnKind,
    ReferenceProfile,
    ValidationReport,
    learn_profile,
    validate_batch,
)
from aire.errors import DataValidationError, InputError


def _config(rules: dict[str, dict[str, object]] | None = None) -> PipelineConfig:
    return parse_config(
        {
            "name": "credit-risk",
            "dataset": {
                "label": "risk",
                "features": {"numeric": ["age", "credit_amount"], "categorical": ["housing"]},
                "sensitive": ["sex"],
                "rules": rules if rules is not None else {"age": {"min": 18, "max": 100}},
            },
        }
    )


def _sample(n: int, seed: int) -> pd.DataFrame:
    """A draw from one fixed population, so two seeds give two fresh samples of it."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(19, 76, n),
            "credit_amount": np.round(rng.lognormal(7.8, 0.7, n), 2),
            "housing": rng.choice(["own", "rent", "free"], n, p=[0.6, 0.3, 0.1]),
            "sex": rng.choice(["female", "male"], n),
            "risk": rng.choice(["good", "bad"], n, p=[0.7, 0.3]),
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return _sample(1000, seed=1)


@pytest.fixture(scope="module")
def profile(reference: pd.DataFrame) -> ReferenceProfile:
    return learn_profile(reference, _config())


def _failure(report: ValidationReport, column: str | None, rule: str) -> None:
    """Assert the report failed on exactly this column and rule, and says so when raised."""
    assert not report.success
    assert (column, rule) in {(c.column, c.rule) for c in report.failures}, report.failures
    with pytest.raises(DataValidationError) as caught:
        report.raise_for_failures()
    assert caught.value.file == report.source
    assert f"breaks {rule!r}" in str(caught.value)


# --- learn_profile ---------------------------------------------------------------------------


def test_profile_learns_ranges_sets_and_classes(
    profile: ReferenceProfile, reference: pd.DataFrame
) -> None:
    age = profile.column("age")
    assert age is not None and age.kind is ColumnKind.NUMERIC
    assert (age.minimum, age.maximum) == (
        float(reference["age"].min()),
        float(reference["age"].max()),
    )
    housing, sex = profile.column("housing"), profile.column("sex")
    assert housing is not None and housing.values == ("free", "own", "rent")
    assert (
        sex is not None and sex.kind is ColumnKind.CATEGORICAL and sex.values == ("female", "male")
    )
    assert profile.label_classes == ("bad", "good") and profile.row_count == 1000
    assert profile.column("risk") is None  # the label is profiled as classes, not as a feature


def test_profile_round_trips_through_json(profile: ReferenceProfile) -> None:
    text = json.dumps(profile.to_dict(), allow_nan=False)
    assert ReferenceProfile.from_dict(json.loads(text)) == profile


def test_profile_from_malformed_dict_is_an_input_error(profile: ReferenceProfile) -> None:
    broken = profile.to_dict()
    broken["columns"][0]["kind"] = "textual"
    with pytest.raises(InputError, match="malformed"):
        ReferenceProfile.from_dict(broken)
    with pytest.raises(InputError, match="malformed"):
        ReferenceProfile.from_dict({"label": "risk"})
    with pytest.raises(InputError, match="malformed"):
        ReferenceProfile.from_dict({**profile.to_dict(), "label_classes": "good"})


def test_learned_range_widens_non_negative_columns_on_a_log_scale(
    profile: ReferenceProfile,
) -> None:
    age = profile.column("age")
    assert age is not None and (age.minimum, age.maximum) == (19.0, 75.0)
    low, high = profile.learned_range("age") or (0.0, 0.0)
    # log1p(75) + 0.5 * (log1p(75) - log1p(19)), back on the linear scale
    assert high == pytest.approx(76 * (76 / 20) ** 0.5 - 1)
    assert low == pytest.approx(20 / (76 / 20) ** 0.5 - 1)
    assert 0 < low < 19 and 75 < high < 1000
    assert profile.learned_range("housing") is None


def test_learned_range_is_linear_for_columns_with_negative_values() -> None:
    frame = _sample(50, seed=10).astype({"age": float})
    frame["age"] = np.linspace(-10, 30, 50)
    learned = learn_profile(frame, _config(rules={}))
    assert learned.learned_range("age") == pytest.approx((-30.0, 50.0))


def test_profile_refuses_a_dirty_reference(reference: pd.DataFrame) -> None:
    with_inf = reference.astype({"age": float})
    with_inf.loc[3, "age"] = np.inf
    with pytest.raises(DataValidationError) as caught:
        learn_profile(with_inf, _config(), source="ref.parquet")
    assert (caught.value.file, caught.value.column, caught.value.rule) == (
        "ref.parquet",
        "age",
        "finite",
    )
    with pytest.raises(DataValidationError, match="column 'housing'"):
        learn_profile(reference.drop(columns=["housing"]), _config())
    with pytest.raises(DataValidationError, match="numeric dtype"):
        learn_profile(reference.astype({"credit_amount": str}), _config())


# --- clean batches pass ----------------------------------------------------------------------


def test_clean_batch_passes_first_run_and_with_profile(profile: ReferenceProfile) -> None:
    fresh = _sample(300, seed=2)  # a new sample of the reference's population
    for used in (None, profile):
        report = validate_batch(fresh, _config(), used, source="batch.csv")
        assert report.success, report.failures
        report.raise_for_failures()
    rules = {c.rule for c in report.checks}
    assert {
        "row count >= 1",
        "column exists",
        "no unexpected columns",
        "not null",
        "numeric dtype",
        "finite",
        "range (config)",
        "range (learned)",
        "known categories",
        "label in known classes",
    } <= rules
    assert report.used_profile and report.statistics["failed_checks"] == 0
    json.dumps(report.to_dict(), allow_nan=False)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_fresh_samples_of_the_same_population_pass_the_learned_rules(
    profile: ReferenceProfile, seed: int
) -> None:
    report = validate_batch(_sample(1000, seed=seed), _config(), profile, source="fresh.parquet")
    assert report.success, report.failures


def test_learned_rules_do_not_apply_on_a_first_run(profile: ReferenceProfile) -> None:
    batch = _sample(50, seed=3)
    batch.loc[0, "housing"] = "castle"
    assert validate_batch(batch, _config(), None, source="b").success
    _failure(validate_batch(batch, _config(), profile, source="b"), "housing", "known categories")


# --- each bad input fails, naming file, column and rule ----------------------------------------


def _bad(mutate: str) -> pd.DataFrame:
    batch = _sample(100, seed=4).astype({"age": float})
    if mutate == "nan":
        batch.loc[5, "credit_amount"] = np.nan
    elif mutate == "inf":
        batch.loc[5, "credit_amount"] = np.inf
    elif mutate == "-inf":
        batch.loc[5, "credit_amount"] = -np.inf
    elif mutate == "config range":
        batch.loc[5, "age"] = 120
    elif mutate == "learned range":
        batch.loc[5, "credit_amount"] = 10_000_000
    elif mutate == "negative":
        batch.loc[5, "credit_amount"] = -5
    elif mutate == "unseen category":
        batch.loc[5, "housing"] = "castle"
    elif mutate == "unseen sex":
        batch.loc[5, "sex"] = "unknown"
    elif mutate == "unseen label":
        batch.loc[5, "risk"] = "excellent"
    elif mutate == "missing label":
        batch.loc[5, "risk"] = None
    return batch


@pytest.mark.parametrize(
    ("mutate", "column", "rule"),
    [
        ("nan", "credit_amount", "not null"),
        ("inf", "credit_amount", "finite"),
        ("-inf", "credit_amount", "finite"),
        ("config range", "age", "range (config)"),
        ("learned range", "credit_amount", "range (learned)"),
        ("negative", "credit_amount", "range (learned)"),
        ("unseen category", "housing", "known categories"),
        ("unseen sex", "sex", "known categories"),
        ("unseen label", "risk", "label in known classes"),
        ("missing label", "risk", "not null"),
    ],
)
def test_bad_values_fail(profile: ReferenceProfile, mutate: str, column: str, rule: str) -> None:
    report = validate_batch(_bad(mutate), _config(), profile, source=f"{mutate}.csv")
    _failure(report, column, rule)
    assert len(report.failures) <= 2  # the broken rule, not a cascade of unrelated ones


def test_inf_is_caught_without_any_range_rule() -> None:
    batch = _sample(20, seed=5).astype({"age": float})
    batch.loc[0, "age"] = -np.inf
    report = validate_batch(batch, _config(rules={}), None, source="b.csv")
    assert [(c.column, c.rule) for c in report.failures] == [("age", "finite")]


def test_missing_and_unexpected_columns_are_named(profile: ReferenceProfile) -> None:
    batch = _sample(20, seed=6).drop(columns=["sex"]).assign(notes="x")
    report = validate_batch(batch, _config(), profile, source="cols.csv")
    assert [(c.column, c.rule) for c in report.failures] == [
        ("sex", "column exists"),
        ("notes", "no unexpected columns"),
    ]
    with pytest.raises(DataValidationError) as caught:
        report.raise_for_failures()
    assert (caught.value.file, caught.value.column, caught.value.rule) == (
        "cols.csv",
        "sex",
        "column exists",
    )
    assert "'notes'" in str(caught.value)  # every failure is listed, not just the first


def test_config_value_sets_and_nullable_columns() -> None:
    config = _config(
        rules={"housing": {"values": ["own", "rent"]}, "credit_amount": {"nullable": True}}
    )
    batch = _sample(40, seed=7)
    batch["housing"] = "own"
    batch.loc[1, "credit_amount"] = np.nan
    assert validate_batch(batch, config, None, source="b").success  # NaN allowed where nullable
    batch.loc[2, "housing"] = "free"
    _failure(validate_batch(batch, config, None, source="b"), "housing", "values in set (config)")


def test_empty_frame_fails_row_count() -> None:
    report = validate_batch(_sample(5, seed=8).iloc[0:0], _config(), None, source="empty.parquet")
    _failure(report, None, "row count >= 1")


# --- end to end from files: read_table, then validate --------------------------------------------


def test_stray_string_in_a_numeric_csv_column_fails_the_dtype_rule(
    tmp_path: Path, profile: ReferenceProfile
) -> None:
    batch = _sample(30, seed=9).astype({"age": object})
    batch.loc[7, "age"] = "forty"
    path = str(write_table(batch, tmp_path / "typo.csv"))
    frame = read_table(path)
    assert frame["age"].dtype == object  # pandas could not make it numeric
    report = validate_batch(frame, _config(), profile, source=path)
    assert [(c.column, c.rule) for c in report.failures] == [("age", "numeric dtype")]
    assert "'forty'" in report.failures[0].detail
    with pytest.raises(DataValidationError) as caught:
        report.raise_for_failures()
    assert (caught.value.file, caught.value.column, caught.value.rule) == (
        path,
        "age",
        "numeric dtype",
    )


def test_inf_and_nan_survive_a_csv_round_trip_and_fail(
    tmp_path: Path, profile: ReferenceProfile
) -> None:
    path = tmp_path / "bad.csv"
    text = "age,credit_amount,housing,sex,risk\n30,inf,own,male,good\n40,,rent,female,bad\n"
    path.write_text(text)
    report = validate_batch(read_table(str(path)), _config(), profile, source=str(path))
    failed = {(c.column, c.rule) for c in report.failures}
    assert {("credit_amount", "finite"), ("credit_amount", "not null")} <= failed


# --- unseen categories: a Good-Turing allowance for open-ended columns ----------------------
def test_unseen_allowance_is_zero_for_a_closed_set_and_grows_with_the_singleton_share() -> None:
    from aire.data.validation import unseen_allowance

    assert unseen_allowance(0.0, 1000) == 0 and unseen_allowance(None, 1000) == 0
    assert unseen_allowance(0.003, 0) == 0
    # 0.3% singletons over 705 values: 2.1 expected, the 99% Poisson bound is 6
    assert unseen_allowance(0.003, 705) == 6
    assert unseen_allowance(0.05, 1000) > unseen_allowance(0.05, 100)


def test_an_open_ended_column_allows_a_few_unseen_values_and_a_closed_one_none() -> None:
    """housing here is open-ended: 20 of the reference's 1000 values are one-off categories
    (singleton share 0.02), so a 500-row batch expects 10 unseen values and may hold up to
    their 99% Poisson bound, 18: 12 pass, 40 are a jump and fail. sex stays a closed set."""
    reference = _sample(1000, seed=1)
    reference.loc[:19, "housing"] = [f"street-{i}" for i in range(20)]
    profile = learn_profile(reference, _config())
    assert profile.column("housing").singleton_share == pytest.approx(0.02)  # type: ignore[union-attr]
    assert profile.column("sex").singleton_share == 0.0  # type: ignore[union-attr]
    assert ReferenceProfile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile

    few = _sample(500, seed=5)
    few.loc[:11, "housing"] = [f"lane-{i}" for i in range(12)]
    report = validate_batch(few, _config(), profile, source="few.csv")
    assert report.success, report.failures
    many = _sample(500, seed=5)
    many.loc[:39, "housing"] = [f"lane-{i}" for i in range(40)]
    _failure(validate_batch(many, _config(), profile, source="many.csv"), "housing", "known categories")
    one_sex = _sample(500, seed=5)
    one_sex.loc[0, "sex"] = "unknown"
    _failure(validate_batch(one_sex, _config(), profile, source="sex.csv"), "sex", "known categories")


def test_a_profile_written_before_the_allowance_stays_exact(profile: ReferenceProfile) -> None:
    old = profile.to_dict()
    for column in old["columns"]:
        column.pop("singleton_share")
    restored = ReferenceProfile.from_dict(old)
    assert restored.column("housing").singleton_share is None  # type: ignore[union-attr]
    batch = _sample(500, seed=6)
    batch.loc[0, "housing"] = "castle"
    _failure(validate_batch(batch, _config(), restored, source="b"), "housing", "known categories")
