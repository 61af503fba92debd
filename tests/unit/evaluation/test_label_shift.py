"""Per-group label shares against the champion's batch: still on a clean redraw, moved by
labels rewritten for one group, with honest errors for small groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aire.evaluation.label_shift import group_label_shift


def _population(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b", "c", "tiny"], n, p=[0.6, 0.3, 0.095, 0.005])
    base = {"a": 0.5, "b": 0.3, "c": 0.2, "tiny": 0.5}  # groups differ in their base rates
    y = (rng.random(n) < np.vectorize(base.get)(group)).astype(int)
    return pd.DataFrame({"g": group, "y": y})


def test_a_clean_redraw_barely_moves_and_small_groups_are_listed() -> None:
    result = group_label_shift(_population(3000, 0), _population(1500, 1), "y", ["g"], 1)
    assert {s.group for s in result.shifts} == {"a", "b", "c"}
    assert all(abs(s.shift) < 3 * s.se for s in result.shifts)
    assert any(g.startswith("g=tiny") for g in result.small_groups)


def test_one_groups_positives_turned_negative_is_a_large_shift() -> None:
    batch = _population(1500, 1)
    rng = np.random.default_rng(2)
    positives = np.flatnonzero((batch["g"] == "b").to_numpy() & (batch["y"] == 1).to_numpy())
    batch.loc[rng.choice(positives, size=round(0.6 * len(positives)), replace=False), "y"] = 0
    shifts = {s.group: s for s in group_label_shift(_population(3000, 0), batch, "y", ["g"], 1).shifts}
    assert shifts["b"].shift < -0.12 and abs(shifts["b"].shift) > 5 * shifts["b"].se
    assert shifts["b"].share == pytest.approx(float(batch.loc[batch["g"] == "b", "y"].mean()))


def test_multiclass_judges_every_label_and_bad_attributes_are_named() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"g": rng.choice(["a", "b"], 900), "y": rng.integers(0, 3, 900),
                          "zip": [f"z{i}" for i in range(900)]})
    result = group_label_shift(frame, frame.sample(frac=1.0, random_state=1), "y", ["g", "zip", "absent"], 2)
    assert {s.label for s in result.shifts} == {"0", "1", "2"}
    assert all(s.shift == pytest.approx(0.0) for s in result.shifts)  # the same rows, reordered
    assert any("'zip': 900 distinct values" in n for n in result.not_measured)
    assert any("'absent': not in both batches" in n for n in result.not_measured)
