"""AIRE's error analysis vs cleanlab.find_label_issues: label errors found, wall time, scale.

Quality, on German credit (1,000 real rows; labels flipped on purpose, so the truth is known):
- flips are uniform (any row, to the other class) or class-conditional (only "good" rows
  turned "bad"), at 5%, 10% and 20% of rows; --seeds draws per setting from --first-seed
  (seeds 0-39 were used to choose analysis.champion_blend_epochs: the default run is on
  seeds that played no part in that choice); mean±sd over seeds;
- protocol "cross-fit" (no champion): AIRE runs its whole stage (5-fold cross-fitting with
  aire.model.training.fit, i.e. --cross-fit-model mlp, this bench's default since the figures
  were measured so; the shipped default is boosted_trees, compared on real data by
  bench/error_analysis_panel.py; confident learning, review, leakage check); cleanlab gets the same
  out-of-fold probabilities (same model family, folds, epochs and seeds) and runs
  find_label_issues(filter_by="prune_by_noise_rate", ranked by self_confidence);
- protocol "champion": the batch is 500 rows; a champion trained on the other 500 (clean)
  rows scores it, as in the pipeline, blended with AIRE's short cross-fit; cleanlab needs
  out-of-fold probabilities, so it gets the stage's full cross-fit (20 epochs) on the batch.
Figures: precision and recall of the flagged set; precision@k with k = number of flips
(AIRE's ranking is error_analysis.csv's order, highest loss first; cleanlab's is its ranked
list of issues, where a list shorter than k counts the missing places as misses); wall time
end to end, the median over seeds of each seed's median over alternated runs. Cross-fit
protocol: the cross-fitting runs once and counts in both walls, then AIRE's analysis and
find_label_issues alternate 3 times ("after p s"). Champion protocol: AIRE's whole stage
(scoring, blend cross-fit, analysis) and cleanlab's (cross-fit, find_label_issues)
alternate twice. "paired" gives AIRE's p@k minus cleanlab's (mean ± standard error), the
seeds where AIRE's wall was not longer, and whether the target (p@k at least cleanlab's,
median wall at most cleanlab's) holds.

Scale (--sizes, default 100k and 1M rows drawn with replacement, 10% uniform flips), each
size in a fresh process: a champion scores the batch and AIRE analyses it (with the blend)
and writes its files; "alone" is the stage without the blend; cleanlab's find_label_issues
runs on the champion's probabilities. Rows/s, the process' peak RSS, and tracemalloc's
peak over the analysis (numpy and Python allocations; torch's own buffers are not traced).
--cross-fit-sizes also times the whole stage without a champion (K fold models trained).

    .venv/bin/pip install -r requirements-bench.txt -c constraints.txt   # cleanlab
    .venv/bin/python bench/error_analysis.py                  # quality and both sizes
    .venv/bin/python bench/error_analysis.py --sizes ''       # the quality table only
    .venv/bin/python bench/error_analysis.py --skip-quality --sizes 100000 --cross-fit-sizes ''

How the champion blend was chosen (seeds 0-39, champion protocol; AIRE's column with
--blend-epochs 0 is the champion alone, cleanlab's with --cross-fit-epochs 8 is an 8-epoch
cross-fit on the batch):
    .venv/bin/python bench/error_analysis.py --first-seed 0 --seeds 40 --protocols champion --sizes '' --blend-epochs 0
    .venv/bin/python bench/error_analysis.py --first-seed 0 --seeds 40 --protocols champion --sizes '' --blend-epochs 4
    .venv/bin/python bench/error_analysis.py --first-seed 0 --seeds 40 --protocols champion --sizes '' \
        --cross-fit-epochs 8
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

from aire.analysis.error_analysis import analyze, out_of_sample, run_error_analysis
from aire.analysis.report import write_outputs
from aire.config import PipelineConfig, load_config
from aire.data.datasets import LABEL, german_credit, make_batch
from aire.home import PROJECT_ROOT
from aire.model.training import fit

CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"
RATES = (0.05, 0.10, 0.20)
MODES = ("uniform", "class-conditional")
REPEAT = 3  # cross-fit protocol: analysis and find_label_issues, alternated
REPEAT_CHAMPION = 2  # champion protocol: both whole stages, alternated


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


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = call()
    return value, time.perf_counter() - start


def cleanlab_stage(batch: pd.DataFrame, config: PipelineConfig,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """What cleanlab needs end to end: out-of-fold probabilities, then find_label_issues."""
    oof = out_of_sample(batch, config, champion=None, seed=seed, device="cpu")
    return oof.proba, find_label_issues(batch[LABEL].to_numpy(), oof.proba)


def compare(batch: pd.DataFrame, truth: np.ndarray, config: PipelineConfig, seed: int,
            champion: Any) -> dict[str, dict[str, float]]:
    """One batch: AIRE's stage and cleanlab end to end, timed interleaved, medians kept.

    Without a champion both need the same cross-fitting (AIRE's stage is ``out_of_sample``
    then ``analyze``): it runs once, and its time is added to both walls; the steps after
    it alternate ``REPEAT`` times. With a champion, AIRE's whole stage (scoring, the short
    blend cross-fit, analysis) and cleanlab's (a full cross-fit, find_label_issues)
    alternate ``REPEAT_CHAMPION`` times. Alternating exposes both to the same load.
    """
    labels = batch[LABEL].to_numpy()
    aire_t: list[float] = []
    clean_t: list[float] = []
    if champion is None:
        oof, cross_fit_s = timed(lambda: out_of_sample(batch, config, champion=None, seed=seed,
                                                       device="cpu"))
        for _ in range(REPEAT):
            aire, t = timed(lambda: analyze(batch, oof.proba, oof.classes, config, scored=oof))
            aire_t.append(t)
            ranked, t = timed(lambda: find_label_issues(labels, oof.proba))
            clean_t.append(t)
        after = {"AIRE": float(np.median(aire_t)), "cleanlab": float(np.median(clean_t))}
        walls = {method: cross_fit_s + t for method, t in after.items()}
    else:
        for _ in range(REPEAT_CHAMPION):
            aire, t = timed(lambda: run_error_analysis(batch, config, champion=champion,
                                                       seed=seed, device="cpu"))
            aire_t.append(t)
            (_, ranked), t = timed(lambda: cleanlab_stage(batch, config, seed))
            clean_t.append(t)
        after = {"AIRE": float("nan"), "cleanlab": float("nan")}
        walls = {"AIRE": float(np.median(aire_t)), "cleanlab": float(np.median(clean_t))}
    flagged = np.zeros(len(batch), dtype=bool)
    flagged[ranked] = True
    aire_flags = aire.suspected_mask()
    out = {"AIRE": {**scores(aire.samples["position"].to_numpy(), aire_flags, truth),
                    "wall_s": walls["AIRE"], "after_s": after["AIRE"]},
           "cleanlab": {**scores(ranked, flagged, truth), "wall_s": walls["cleanlab"],
                        "after_s": after["cleanlab"]}}
    overlap = (aire_flags & flagged).sum() / max((aire_flags | flagged).sum(), 1)
    out["AIRE"]["jaccard"] = float(overlap)
    return out


def _ms(values: list[float]) -> str:
    return f"{np.mean(values):.3f}±{np.std(values, ddof=1) if len(values) > 1 else 0.0:.3f}"


def quality(config: PipelineConfig, seeds: range, protocols: list[str]) -> None:
    base = german_credit()
    # warm-up: the first torch training and cleanlab call pay one-off start-up costs
    run_error_analysis(base.head(200), config, champion=None, epochs=1, device="cpu")
    find_label_issues(base.head(200)[LABEL].to_numpy(), np.full((200, 2), 0.5))
    print(f"\nlabel-error detection on German credit (mean±sd over {len(seeds)} seeds "
          f"{seeds.start}-{seeds.stop - 1}; k = number of flips; wall = median over seeds; "
          f"cpus={os.cpu_count()})")
    print(f"{'protocol':<9} {'noise':<17} {'rate':>4} {'k':>3} | {'method':<8} {'flagged':>7} "
          f"{'precision':>11} {'recall':>11} {'p@k':>11} {'wall s':>7} {'after p s':>9} | "
          f"paired: d p@k ±se, wall AIRE<=CL seeds, verdict")
    champions: dict[int, Any] = {}
    for protocol in protocols:
        for mode in MODES:
            for rate in RATES:
                rows: dict[str, list[dict[str, float]]] = {"AIRE": [], "cleanlab": []}
                for seed in seeds:
                    champion, batch = None, base
                    if protocol == "champion":
                        order = np.random.default_rng(1000 + seed).permutation(len(base))
                        if seed not in champions:  # trained on the other 500 (clean) rows
                            champions[seed] = fit(base.iloc[order[:500]], config, seed=seed,
                                                  device="cpu").model
                        champion = champions[seed]
                        batch = base.iloc[order[500:]].reset_index(drop=True)
                    noisy, truth = flip(batch, rate, mode, seed)
                    for method, figures in compare(noisy, truth, config, seed, champion).items():
                        rows[method].append(figures)
                k = round(rate * len(batch))
                a, c = rows["AIRE"], rows["cleanlab"]
                diff = np.array([x["p@k"] - y["p@k"] for x, y in zip(a, c, strict=True)])
                se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
                faster = sum(x["wall_s"] <= y["wall_s"] for x, y in zip(a, c, strict=True))
                wall = {m: float(np.median([r["wall_s"] for r in rows[m]])) for m in rows}
                holds = diff.mean() >= -1e-9 and wall["AIRE"] <= wall["cleanlab"]
                paired = (f"{diff.mean():+.4f}±{se:.4f}, {faster}/{len(diff)}, "
                          f"{'holds' if holds else 'DOES NOT HOLD'}; jaccard "
                          f"{np.mean([x['jaccard'] for x in a]):.2f}")
                for method, runs in rows.items():
                    after = np.median([r["after_s"] for r in runs])
                    print(f"{protocol:<9} {mode:<17} {rate:>4.0%} {k:>3} | {method:<8} "
                          f"{np.mean([r['flagged'] for r in runs]):>7.1f} "
                          f"{_ms([r['precision'] for r in runs]):>11} "
                          f"{_ms([r['recall'] for r in runs]):>11} "
                          f"{_ms([r['p@k'] for r in runs]):>11} {wall[method]:>7.3f} "
                          + (f"{after:>9.4f}" if np.isfinite(after) else f"{'-':>9}")
                          + (f" | {paired}" if method == "AIRE" else ""), flush=True)


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
    alone = config.model_copy(update={
        "analysis": config.analysis.model_copy(update={"champion_blend_epochs": 0})})
    _, alone_s = timed(lambda: run_error_analysis(batch, alone, champion=champion))
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        write_outputs(result, out)
        write_s = time.perf_counter() - start
    _, find_s = timed(lambda: find_label_issues(labels, proba))
    figures: dict[str, Any] = {
        "rows": n_rows, "score_s": score_s, "aire_s": analyse_s, "write_s": write_s,
        "alone_s": alone_s,
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
    print("\nthroughput with a champion (AIRE = score + blend cross-fit + analyse incl. review "
          "and leakage; alone = the same with champion_blend_epochs 0; cleanlab = score with "
          "the champion + find_label_issues, i.e. given probabilities it did not have to "
          "cross-fit); MB = MiB")
    print(f"{'rows':>9} {'AIRE rows/s':>12} {'+write rows/s':>14} {'alone rows/s':>13} "
          f"{'cleanlab rows/s':>16} "
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
              f"{n / f['alone_s']:>13,.0f} "
              f"{n / f['cleanlab_s']:>16,.0f} {n / f['cleanlab_find_s']:>10,.0f} "
              f"{f['batch_mb']:>9.0f} {f['slice_mb']:>9.1f} {f['traced_peak_mb']:>15.0f} "
              f"{f['peak_rss_mb']:>12.0f} {cross}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="draws per noise setting")
    parser.add_argument("--first-seed", type=int, default=100,
                        help="seeds run from here (0-39 were used to choose the blend)")
    parser.add_argument("--protocols", default="cross-fit,champion",
                        help="comma-separated: cross-fit, champion")
    parser.add_argument("--blend-epochs", type=int, default=None,
                        help="quality runs: override analysis.champion_blend_epochs (0: champion alone)")
    parser.add_argument("--cross-fit-epochs", type=int, default=None,
                        help="quality runs: override analysis.cross_fit_epochs (both methods' cross-fit)")
    parser.add_argument("--cross-fit-model", default="mlp", choices=("mlp", "boosted_trees"),
                        help="quality runs: analysis.cross_fit_model (mlp: the protocol the "
                             "figures above were measured with; bench/error_analysis_panel.py "
                             "compares the two)")
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
    overrides = {key: value for key, value in (("champion_blend_epochs", args.blend_epochs),
                                               ("cross_fit_epochs", args.cross_fit_epochs),
                                               ("cross_fit_model", args.cross_fit_model))
                 if value is not None}
    if overrides:
        config = config.model_copy(update={"analysis": config.analysis.model_copy(update=overrides)})
    if not args.skip_quality:
        quality(config, range(args.first_seed, args.first_seed + args.seeds),
                [p.strip() for p in args.protocols.split(",") if p.strip()])
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    scale(sizes, {int(s) for s in args.cross_fit_sizes.split(",") if s.strip()})


if __name__ == "__main__":
    main()
