from __future__ import annotations

import numpy as np
import pytest

from aire.data.datasets import german_credit, make_batch


@pytest.fixture(scope="module")
def base():
    return german_credit()


def test_bundled_data_is_the_german_credit_set(base) -> None:
    assert base.shape == (1000, 11)
    assert set(base["risk"]) == {0, 1} and set(base["sex"]) == {"female", "male"}
    assert base["row_id"].is_unique


def test_clean_batch_is_a_seeded_sample_without_defects(base) -> None:
    first, truth = make_batch(base, n_rows=300, seed=5)
    again, _ = make_batch(base, n_rows=300, seed=5)
    assert first.equals(again)
    assert truth.flipped_row_ids == [] and truth.biased_row_ids == []
    original = base.set_index("row_id").loc[first["row_id"], "risk"].to_numpy()
    assert (first["risk"].to_numpy() == original).all()


def test_label_noise_flips_exactly_the_reported_rows(base) -> None:
    batch, truth = make_batch(base, n_rows=500, seed=3, label_noise=0.1)
    original = base.set_index("row_id").loc[batch["row_id"], "risk"].to_numpy()
    changed = set(batch.loc[batch["risk"].to_numpy() != original, "row_id"])
    assert changed == set(truth.flipped_row_ids) and len(changed) == 50


def test_drift_shifts_loan_size_inside_the_observed_range(base) -> None:
    batch, _ = make_batch(base, n_rows=400, seed=3, drift=1.0)
    assert batch["credit_amount"].mean() > base["credit_amount"].mean() + 0.5 * base["credit_amount"].std()
    assert batch["credit_amount"].between(base["credit_amount"].min(), base["credit_amount"].max()).all()


def test_group_bias_only_turns_the_groups_good_risks_bad(base) -> None:
    batch, truth = make_batch(base, n_rows=600, seed=4, group_bias=1.0)
    biased = batch[batch["row_id"].isin(truth.biased_row_ids)]
    assert len(biased) > 0 and (biased["sex"] == "female").all() and (biased["risk"] == 0).all()
    assert not ((batch["sex"] == "female") & (batch["risk"] == 1)).any()


@pytest.mark.parametrize("kwargs", [{"label_noise": 1.5}, {"drift": -0.1}, {"n_rows": 5000}])
def test_generator_refuses_impossible_requests(base, kwargs) -> None:
    args = {"n_rows": 100, "seed": 0, **kwargs}
    with pytest.raises(ValueError):
        make_batch(base, **args)


def test_sampling_with_replacement_gives_fresh_ids(base) -> None:
    batch, _ = make_batch(base, n_rows=2500, seed=1, replace=True)
    assert len(batch) == 2500 and batch["row_id"].is_unique and np.isin(batch["sex"], ["female", "male"]).all()
