"""validate + analyze (with a champion) + evaluate at 1M and 10M rows: wall, CPU, peak RSS.

Issue 16's target on this 2-core machine: 1M rows x 20 columns through the three stages in
<= 60 s with peak RSS <= 3 GB; 10M completes with peak RSS <= 4 GB, time about linear.

The library calls the stages make, without Airflow, MLflow or the object store (their costs
do not grow with rows; bench/profile_run.py times them): ``validate_batch`` against the
champion's reference profile, ``run_error_analysis`` with the champion (its scores averaged
with the capped 8-epoch blend), ``split_batch``, then ``evaluate_candidate`` (drift of the
batch against the champion's reference, quality and fairness of candidate and champion on
the holdout, the bootstrap errors). Fine-tuning is not in the target and not run: the
candidate is a second model trained on the reference.

Data: bench/drift_scale.py's 20 columns (10 numeric, 10 categorical with 2-30 levels, 2%
nulls), with a label that depends on two features (so the models learn something and
fairness has rates to compare) and ``c1`` (5 levels) as the sensitive attribute. The
reference is 50,000 rows, the champion and the candidate train on 20,000 of them (5
epochs). Each size runs in a fresh process, so ``ru_maxrss`` is that size's alone; building
the frames and training the two models are not timed, and the RSS after them is printed
apart ("before stages"), so the stages' own growth shows.

    .venv/bin/python bench/stages_scale.py                    # 1M rows
    .venv/bin/python bench/stages_scale.py --rows 100000,1000000,10000000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
sys.path.insert(0, str(ROOT / "bench"))

TARGET_S, TARGET_RSS_MB = 60.0, 3 * 1024  # 1M rows
TARGET_RSS_10M_MB = 4 * 1024
REFERENCE_ROWS, TRAIN_ROWS, EPOCHS = 50_000, 20_000, 5


def dataset(rows: int, seed: int) -> Any:
    """drift_scale's 20 columns, the label a noisy function of n1 and c2."""
    from drift_scale import frame  # bench/drift_scale.py

    data = frame(rows, seed, shift=False)
    rng = np.random.default_rng(seed + 1)
    score = data["n1"].to_numpy() + (data["c2"] == "v0").to_numpy() - 0.3
    data["label"] = (score + rng.normal(scale=1.0, size=rows) > 0).astype(np.int64)
    return data


def config() -> Any:
    from aire.config import PipelineConfig
    from drift_scale import CATEGORICAL, NUMERIC

    return PipelineConfig.model_validate({
        "name": "stages-bench",
        "dataset": {"label": "label", "features": {"numeric": NUMERIC, "categorical": CATEGORICAL},
                    "sensitive": ["c1"],
                    "rules": {c: {"nullable": True} for c in CATEGORICAL}},
        "model": {"recipe": "tabular", "hidden": [32, 16]},
        "training": {"epochs": EPOCHS, "device": "cpu"},
    })


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(rows: int) -> dict[str, Any]:
    from aire.analysis.error_analysis import run_error_analysis
    from aire.data.reference_profile import learn_profile
    from aire.data.split import split_batch
    from aire.data.validation import validate_batch
    from aire.evaluation.candidate import evaluate_candidate
    from aire.model.training import fit

    cfg = config()
    reference = dataset(REFERENCE_ROWS, seed=0)
    champion = fit(reference.head(TRAIN_ROWS), cfg, seed=0).model
    candidate = fit(reference.tail(TRAIN_ROWS), cfg, seed=1).model
    profile = learn_profile(reference, cfg)
    batch = dataset(rows, seed=2)
    figures: dict[str, Any] = {"rows": rows, "before_stages_rss_mb": rss_mb(),
                               "batch_mb": batch.memory_usage(deep=True).sum() / 2**20}
    cpu0 = time.process_time()
    times: dict[str, float] = {}

    def timed(name: str, call: Any) -> Any:
        start = time.perf_counter()
        value = call()
        times[name] = time.perf_counter() - start
        figures[f"{name}_rss_mb"] = rss_mb()
        return value

    report = timed("validate", lambda: validate_batch(batch, cfg, profile, source="bench"))
    analysis = timed("analyze", lambda: run_error_analysis(batch, cfg, champion=champion))
    train, holdout = timed("split", lambda: split_batch(batch, "label", holdout_fraction=0.25, seed=0))
    with tempfile.TemporaryDirectory() as out:
        timed("evaluate", lambda: evaluate_candidate(
            cfg, holdout, candidate, Path(out), champion=champion, reference=reference, batch=batch,
            train_labels=train["label"]))
        record = json.loads((Path(out) / "evaluation.json").read_text())
    figures.update(times=times, total_s=sum(times.values()), cpu_s=time.process_time() - cpu0,
                   peak_rss_mb=rss_mb(), validation_passed=report.success,
                   analysis_source=analysis.source, not_computed=record.get("not_computed"))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000", help="comma-separated batch sizes")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker), default=str))
        return
    print(f"{'rows':>10} {'validate s':>10} {'analyze s':>10} {'split s':>8} {'evaluate s':>10} "
          f"{'total s':>8} {'CPU s':>7} {'RSS before MB':>13} {'peak RSS MB':>11} {'batch MB':>9}  target")
    for rows in [int(r) for r in args.rows.split(",") if r.strip()]:
        done = subprocess.run([sys.executable, __file__, "--worker", str(rows)], capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            print(f"{rows:>10,} failed: {done.stderr.strip().splitlines()[-3:]}", flush=True)
            continue
        f = json.loads(done.stdout.strip().splitlines()[-1])
        t = f["times"]
        if rows == 1_000_000:
            target = (f"<= {TARGET_S:.0f} s, <= {TARGET_RSS_MB} MB: "
                      f"{'met' if f['total_s'] <= TARGET_S and f['peak_rss_mb'] <= TARGET_RSS_MB else 'NOT MET'}")
        elif rows == 10_000_000:
            target = f"<= {TARGET_RSS_10M_MB} MB: {'met' if f['peak_rss_mb'] <= TARGET_RSS_10M_MB else 'NOT MET'}"
        else:
            target = "-"
        print(f"{rows:>10,} {t['validate']:>10.1f} {t['analyze']:>10.1f} {t['split']:>8.1f} "
              f"{t['evaluate']:>10.1f} {f['total_s']:>8.1f} {f['cpu_s']:>7.1f} "
              f"{f['before_stages_rss_mb']:>13.0f} {f['peak_rss_mb']:>11.0f} {f['batch_mb']:>9.0f}  {target}"
              + (f"  (not computed: {f['not_computed']})" if f.get("not_computed") else ""), flush=True)


if __name__ == "__main__":
    main()
