"""Identical rows are scored once per model digest: a cache keyed by a hash of the row's features.

Within a batch, rows with the same feature values are scored once (``unique_rows``); across
batches in one process, ``RowCache`` keeps each digest's scored hashes as sorted arrays, so a
look-up is one vectorized ``searchsorted``, not a Python call per row. The hash is pandas'
``hash_pandas_object`` over the feature columns in the model's order (64 bits: at a billion
distinct rows the chance of a collision is ~3%, at ten million ~3e-6, which we accept).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


def row_hashes(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """uint64 per row over ``columns``; rows with equal values get equal hashes."""
    hashed: np.ndarray = pd.util.hash_pandas_object(df[columns], index=False).to_numpy(dtype=np.uint64)
    return hashed


def unique_rows(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the first row of each distinct hash, and each row's position among them."""
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    return first, inverse


@dataclass
class RowCache:
    """Class probabilities by row hash, per model digest, bounded to ``max_rows`` per digest."""

    max_rows: int = 2_000_000
    _keys: dict[str, np.ndarray] = field(default_factory=dict)
    _values: dict[str, np.ndarray] = field(default_factory=dict)

    def lookup(self, digest: str, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(found mask, probabilities of the found rows in order) for ``hashes``."""
        keys = self._keys.get(digest)
        if keys is None or len(keys) == 0:
            return np.zeros(len(hashes), dtype=bool), None
        at = np.minimum(np.searchsorted(keys, hashes), len(keys) - 1)
        found = keys[at] == hashes
        return found, self._values[digest][at[found]]

    def clear(self) -> None:
        self._keys.clear()
        self._values.clear()

    def add(self, digest: str, hashes: np.ndarray, probabilities: np.ndarray) -> None:
        keys = np.concatenate([self._keys.get(digest, np.zeros(0, np.uint64)), hashes])
        values = probabilities if digest not in self._values else np.concatenate([self._values[digest], probabilities])
        keys, first = np.unique(keys, return_index=True)
        keys, values = keys[-self.max_rows:], values[first][-self.max_rows:]
        self._keys[digest], self._values[digest] = keys, values


PROCESS_CACHE = RowCache()
