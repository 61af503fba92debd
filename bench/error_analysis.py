"""AIRE's error analysis vs cleanlab.find_label_issues: label errors found, wall time, scale.

Quality, on German credit (1,000 real rows; labels flipped on purpose, so the truth is known):
- flips are uniform (any row, to the other class) or class-conditional (only "good" rows
  turned "bad"), at 5%, 10% and 20% of rows; --seeds draws per setting, means reported;
- protocol "cross-fit" (no champion): AIRE runs its whole stage (5-fold cross-fitting with
  aire.training.fit, confident learning, review, leakage check); cleanlab gets out-of-fold
  probabilities from the same cross-fitting (same model family, folds, epochs and seeds)
  and runs find_label_issues(filter_by="prune_by_noise_rate", ranked by self_confidence);
- protocol "champion": the batch is 500 rows; a champion trained on the other 500 (clean)
  rows scores it, as in the pipeline; cleanlab still needs its out-of-fold probabilities.
Figures: precision and recall of the flagged set; precision@k with k = number of flips
(AIRE's ranking is error_analysis.csv's order, highest loss first; cleanlab's is its ranked
list of issues, where a list shorter than k counts the missing places as misses); wall time
of each method end to end ("wall s": the cross-fitting, run once, is counted in both; with
a champion, AIRE's wall is scoring plus analysis) and of the work once probabilities exist
("after p s": AIRE's analysis with review and leakage check vs find_label_issues, best of 3).

Scale (--sizes, default 100k and 1M rows drawn with replacement, 10% uniform flips), each
size in a fresh process: a champion scores the batch and AIRE analyses it and writes its
files; cleanlab's find_label_issues runs on the same probabilities. Rows/s, the process'
peak RSS, and tracemalloc's peak over the analysis (numpy and Python allocations; torch's
own buffers are not traced, and are one scoring slice). --cross-fit-sizes also times the
whole stage without a champion (K fold models trained on the batch).

    .venv/bin/pip install -r requirements-bench.txt -c constraints.txt   # cleanlab
    .venv/bin/python bench/error_analysis.py                  # about 7 minutes on 2 cores
    .venv/bin/python bench/error_analysis.py --seeds 2 --sizes 100000 --cross-fit-sizes ''
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))

from aire.config import PipelineConfig, load_config
from aire.datasets import LABEL, german_credit, make_batch
from aire.error_analysis import analyze, out_of_sample, run_error_analysis
from aire.error_report import write_outputs
from aire.home import PROJECT_ROOT
from aire.training import fit

CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"
RATES = (0.05, 0.10, 0.20)
MODES = ("uniform", "class-conditional")
REPEAT = 3


def find_label_issues(labels: np.ndarray, proba: np.ndarray) -> np.ndarray:
    from cleanlab.filter import find_label_issues as cleanlab_find

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranked: np.ndarray = cleanlab_find(labels, proba, filter_by="prune_by_noise_rate",
                                           return_indices_ranked_by="self_confidence")
    return ranked


def flip(batch: pd.DataFrame, rate: float, mode: str, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Flip ``rate`` of the rows: any row (uniform) or only label-1 rows (class-conditional)."""
    rng = np.random.default_rng(seed)
    y = batch[LABEL].to_numpy().copy()
    pool = np.arange(len(y)) if mode == "uniform" else np.flatnonzero(y == 1)
    rows = rng.choice(pool, size=round(rate * len(y)), replace=False)
    y[rows] = 1 - y[rows]
    truth = np.zeros(len(y), dtype=bool)
    truth[rows] = True
    return batch.assign(**{LABEL: y}), truth


def scores(ranked: np.ndarray, flagged: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    k = int(truth.sum())
    hits = int(truth[flagged].sum())
    return {"precision": hits / max(int(flagged.sum()), 1), "recall": hits / k,
            "p@k": float(truth[ranked[:k]].sum()) / k, "flagged": float(flagged.sum())}


def timed(call: Callable[[], Any], repeat: int = 1) -> tuple[Any, float]:
    """The value and the best of ``repeat`` wall times (the least disturbed by other work)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        value = call()
        best = min(best, time.perf_counter() - start)
    return value, best


def compare(batch: pd.DataFrame, truth: np.ndarray, config: PipelineConfig, seed: int,
            champion: Any) -> dict[str, dict[str, float]]:
    """One batch: AIRE's stage and cleanlab on out-of-fold probabilities, both timed.

    Without a champion both need the same cross-fitting (AIRE's stage is ``out_of_sample``
    then ``analyze``): it runs once, and its time is added to both walls. The cheap steps
    after it are timed best of ``REPEAT``, so that a busy machine blurs them less.
    """
    labels = batch[LABEL].to_numpy()
    oof, cross_fit_s = timed(lambda: out_of_sample(batch, config, champion=None, seed=seed,
                                                   device="cpu"))
    if champion is None:
        aire, after_s = timed(lambda: analyze(batch, oof.proba, oof.classes, config, scored=oof),
                              REPEAT)
        aire_s = cross_fit_s + after_s
    else:
        aire, aire_s = timed(lambda: run_error_analysis(batch, config, champion=champion), REPEAT)
        after_s = aire_s
    ranked, find_s = timed(lambda: find_label_issues(labels, oof.proba), REPEAT)
    flagged = np.zeros(len(batch), dtype=bool)
    flagged[ranked] = True
    aire_flags = aire.suspected_mask()
    out = {"AIRE": {**scores(aire.samples["position"].to_numpy(), aire_flags, truth),
                    "wall_s": aire_s, "after_s": after_s},
           "cleanlab": {**scores(ranked, flagged, truth), "wall_s": cross_fit_s + find_s,
                        "after_s": find_s}}
    if champion is None:  # same probabilities: the flagged sets should coincide
        overlap = (aire_flags & flagged).sum() / max((aire_flags | flagged).sum(), 1)
        out["AIRE"]["jaccard"] = float(overlap)
    return out


def quality(config: PipelineConfig, seeds: int) -> None:
    base = german_credit()
    # warm-up: the first torch training and cleanlab call pay one-off start-up costs
    run_error_analysis(base.head(200), config, champion=None, epochs=1, device="cpu")
    find_label_issues(base.head(200)[LABEL].to_numpy(), np.full((200, 2), 0.5))
    print(f"\nlabel-error detection on German credit (means over {seeds} seeds; "
          f"k = number of flips; cpus={os.cpu_count()})")
    print(f"{'protocol':<10} {'noise':<18} {'rate':>5} {'k':>4} | "
          f"{'method':<9} {'flagged':>7} {'prec':>6} {'recall':>6} {'p@k':>6} {'wall s':>7} "
          f"{'after p s':>9}")
    for protocol in ("cross-fit", "champion"):
        for mode in MODES:
            for rate in RATES:
                rows: dict[str, list[dict[str, float]]] = {"AIRE": [], "cleanlab": []}
                for seed in range(seeds):
                    champion, batch = None, base
                    if protocol == "champion":
                        order = np.random.default_rng(1000 + seed).permutation(len(base))
                        champion = fit(base.iloc[order[:500]], config, seed=seed,
                                       device="cpu").model
                        batch = base.iloc[order[500:]].reset_index(drop=True)
                    noisy, truth = flip(batch, rate, mode, seed)
                    for method, figures in compare(noisy, truth, config, seed, champion).items():
                        rows[method].append(figures)
                for method, runs in rows.items():
                    mean = {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}
                    k = round(rate * len(batch))
                    extra = (f"  jaccard(AIRE, cleanlab flags) {mean['jaccard']:.3f}"
                             if "jaccard" in mean else "")
                    print(f"{protocol:<10} {mode:<18} {rate:>5.0%} {k:>4} | {method:<9} "
                          f"{mean['flagged']:>7.0f} {mean['precision']:>6.3f} "
                          f"{mean['recall']:>6.3f} {mean['p@k']:>6.3f} {mean['wall_s']:>7.3f} "
                          f"{mean['after_s']:>9.3f}{extra}", flush=True)


def scale_worker(n_rows: int, cross_fit: bool) -> dict[str, Any]:
    """One size in this (fresh) process: timings, then a traced run for memory."""
    config = load_config(CONFIG)
    base = german_credit()
    champion = fit(base, config, seed=0, device="cpu").model
    batch, _ = make_batch(base, n_rows=n_rows, seed=1, label_noise=0.1, replace=True)
    labels = batch[LABEL].to_numpy()
    proba, score_s = timed(lambda: champion.predict_proba(
        batch, batch_size=config.analysis.scoring_batch_size))
    result, analyse_s = timed(lambda: run_error_analysis(batch, config, champion=champion))
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        write_outputs(result, out)
        write_s = time.perf_counter() - start
    _, find_s = timed(lambda: find_label_issues(labels, proba))
    figures: dict[str, Any] = {
        "rows": n_rows, "score_s": score_s, "aire_s": analyse_s, "write_s": write_s,
        "cleanlab_find_s": find_s, "cleanlab_s": score_s + find_s,
        "batch_mb": batch.memory_usage(deep=True).sum() / 2**20,
        "slice_mb": (config.analysis.scoring_batch_size * champion.preprocessor.input_dim
                     * 4 / 2**20),  # float32 encoding of one scoring slice
    }
    del result
    tracemalloc.start()
    run_error_analysis(batch, config, champion=champion)
    figures["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    if cross_fit:
        _, figures["cross_fit_s"] = timed(lambda: run_error_analysis(batch, config, champion=None))
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def scale(sizes: list[int], cross_fit_sizes: set[int]) -> None:
    print("\nthroughput with a champion (AIRE = score + analyse incl. review and leakage; "
          "cleanlab = score + find_label_issues); MB = MiB")
    print(f"{'rows':>9} {'AIRE rows/s':>12} {'+write rows/s':>14} {'cleanlab rows/s':>16} "
          f"{'find only':>10} {'batch MB':>9} {'slice MB':>9} {'traced peak MB':>15} "
          f"{'peak RSS MB':>12} {'cross-fit rows/s':>17}")
    for n in sizes:
        done = subprocess.run([sys.executable, __file__, "--worker", str(n),
                               *(["--worker-cross-fit"] if n in cross_fit_sizes else [])],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{n:>9} failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        f = json.loads(done.stdout.strip().splitlines()[-1])
        aire_s = f["aire_s"]  # run_error_analysis scores the batch itself
        cross = f"{n / f['cross_fit_s']:>17,.0f}" if "cross_fit_s" in f else f"{'-':>17}"
        print(f"{n:>9,} {n / aire_s:>12,.0f} {n / (aire_s + f['write_s']):>14,.0f} "
              f"{n / f['cleanlab_s']:>16,.0f} {n / f['cleanlab_find_s']:>10,.0f} "
              f"{f['batch_mb']:>9.0f} {f['slice_mb']:>9.1f} {f['traced_peak_mb']:>15.0f} "
              f"{f['peak_rss_mb']:>12.0f} {cross}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="draws per noise setting")
    parser.add_argument("--sizes", default="100000,1000000", help="rows for the scale runs")
    parser.add_argument("--cross-fit-sizes", default="100000",
                        help="sizes also timed without a champion (K models trained)")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-cross-fit", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(scale_worker(args.worker, args.worker_cross_fit)))
        return
    config = load_config(CONFIG)
    if not args.skip_quality:
        quality(config, args.seeds)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    scale(sizes, {int(s) for s in args.cross_fit_sizes.split(",") if s.strip()})


if __name__ == "__main__":
    main()
