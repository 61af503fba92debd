"""What the noise estimate reads when the labels say nothing about the features.

The gate's noise cap is ``max_noise_vs_no_signal`` x (1 - 1/K) (``aire.promotion.gate._noise``).
This prints the figure behind it: confident learning (``aire.analysis.confident_learning``)
on labels drawn from given class shares, independent of out-of-sample probabilities that
are the shares plus a little noise (a cross-fit that found no signal), 1,500 rows, 5 seeds
per line, beside 1 - 1/K and 1 - sum(p^2).

    .venv/bin/python bench/noise_no_signal.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))

SHARES = ((0.5, 0.5), (0.7, 0.3), (0.94, 0.06), (0.4, 0.35, 0.25), (0.3, 0.2, 0.2, 0.15, 0.15))


def main(rows: int = 1500, seeds: int = 5) -> None:
    from aire.analysis.confident_learning import confident_learning

    rng = np.random.default_rng(0)
    print(f"{'class shares':<32} {'1-1/K':>6} {'1-sum p^2':>9} {'estimate min-max':>17}")
    for shares in SHARES:
        p = np.array(shares)
        estimates = []
        for _ in range(seeds):
            labels = rng.choice(len(p), size=rows, p=p)
            proba = np.clip(p + rng.normal(0, 0.03, size=(rows, len(p))), 1e-3, None)
            proba /= proba.sum(axis=1, keepdims=True)
            estimates.append(confident_learning(labels, proba).noise_rate)
        print(f"{shares!s:<32} {1 - 1 / len(p):>6.3f} {1 - float((p ** 2).sum()):>9.3f} "
              f"{min(estimates):>8.3f}-{max(estimates):.3f}")


if __name__ == "__main__":
    main()
