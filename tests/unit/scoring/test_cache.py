from __future__ import annotations

import numpy as np
import pandas as pd

from aire.scoring.cache import RowCache, row_hashes, unique_rows


def test_equal_rows_hash_equal_and_different_rows_differ() -> None:
    df = pd.DataFrame({"a": [1, 2, 1, 1], "b": ["x", "y", "x", "z"]})
    hashes = row_hashes(df, ["a", "b"])
    assert hashes[0] == hashes[2] and len(set(hashes.tolist())) == 3
    first, inverse = unique_rows(hashes)
    assert len(first) == 3 and (hashes[first][inverse] == hashes).all()


def test_the_cache_returns_what_was_added_for_that_digest_only() -> None:
    cache = RowCache()
    keys = np.array([5, 1, 9], dtype=np.uint64)
    values = np.array([[0.1, 0.9], [0.2, 0.8], [0.3, 0.7]])
    cache.add("d1", keys, values)
    found, got = cache.lookup("d1", np.array([9, 2, 1], dtype=np.uint64))
    assert found.tolist() == [True, False, True]
    assert got is not None and got.tolist() == [[0.3, 0.7], [0.2, 0.8]]
    assert not cache.lookup("d2", keys)[0].any()


def test_the_cache_is_bounded() -> None:
    cache = RowCache(max_rows=2)
    cache.add("d", np.array([1, 2, 3], dtype=np.uint64), np.eye(3)[:, :2])
    found, _ = cache.lookup("d", np.array([1, 2, 3], dtype=np.uint64))
    assert found.sum() == 2
