"""Generated German Credit batches written as CSV into a home, for tests that run the pipeline."""

from __future__ import annotations

from aire.data.datasets import german_credit, make_batch
from aire.home import Home


def generated_batch(home: Home, seed: int, rows: int = 700, *, label_noise: float = 0.0, drift: float = 0.0,
                    group_bias: float = 0.0) -> str:
    """The generator's batch for ``seed``, with those defects, as ``<home>/batch-<seed>.csv``;
    returns its path."""
    frame, _ = make_batch(german_credit(), n_rows=rows, seed=seed, label_noise=label_noise, drift=drift,
                          group_bias=group_bias)
    path = home.root / f"batch-{seed}.csv"
    frame.to_csv(path, index=False)
    return str(path)
