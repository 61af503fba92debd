"""Evaluation figures: report cost at scale, and the spread the gate's defaults are sized from.

``report``: drift (Evidently + null rates + new categories) plus fairness (fairlearn)
plus the report files, on synthetic frames of N rows x 20 columns (12 numeric, 6
categorical features, a sensitive attribute, the label) with a mild shift between
reference and current. Each size runs in a fresh process, so the peak RSS
(``ru_maxrss``) is that size's alone; "after imports" is the same process's RSS before
the data is built, and the Python-level peak comes from tracemalloc.

``spread``: the pipeline's stages in-process (`aire run`'s path, up to the gate, no
promotion) on a fresh home with ``gates: {}``, for --seeds batches of each kind drawn by
``aire.data.datasets.make_batch`` after one champion: clean, drift=1.0, label_noise=0.3,
group_bias=0.6. Scenario ``overlap`` is the demo's: every batch is 700 of the same 1,000
German Credit rows (400 for the defective kinds, as in the demo), so each batch repeats
~70% of the champion's training rows. Scenario ``disjoint`` trains the champion on 500
rows and draws the batches (450 rows) from the other 500, as fresh production data would
be (with ``min_group_count: 10``, as its 125-row holdouts are too small for the default
20). Per check: min / median / max of the value, the median limit, and how many batches
passed. ``--gate KEY=VALUE`` overrides one default of ``gates:`` (repeatable), e.g.
``--gate regression_z=1.645`` for the z the defaults used before.

``spread --panel calibration|verification|all``: the same on the real data sets of
bench/panel.py instead of German Credit (bench/panel_spread.py says what each kind does),
one process-pool task per (data set, seed) over ``--jobs`` processes; ``--out`` writes
every run's record (decision, each check's value and limit) as JSON, ``--replay`` prints the
tables of such a file again, ``--sets`` keeps only the named sets.

``compare``: ``aire.evaluation.quality.compare_quality`` (both models' quality on the same rows and
the paired standard errors the gate's regression checks allow for) on N synthetic holdout
rows of two correlated binary models: wall time and the standard errors.

    .venv/bin/python bench/evaluation.py report --rows 100000,1000000
    .venv/bin/python bench/evaluation.py spread --seeds 10 --scenario overlap,disjoint
    .venv/bin/python bench/evaluation.py spread --panel calibration --jobs 2 --out panel.json
    .venv/bin/python bench/evaluation.py compare --rows 1000,100000,1000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "include" / "config" / "credit_risk.yaml"
KINDS = {"clean": {}, "drift": {"drift": 1.0}, "noise": {"label_noise": 0.3}, "bias": {"group_bias": 0.6}}


# --- report cost -------------------------------------------------------------------------
def synthetic(rows: int, seed: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = {f"n{i}": rng.normal(shift * (i % 3 == 0), 1.0, rows) for i in range(12)}
    for i in range(6):
        frame[f"c{i}"] = rng.choice([f"v{j}" for j in range(8)], rows)
    frame["group"] = rng.choice(["a", "b", "c"], rows, p=[0.5, 0.35, 0.15])
    frame["label"] = (rng.random(rows) < 0.3 + 0.1 * (frame["group"] == "a")).astype(np.int64)
    return pd.DataFrame(frame)


def report_worker(rows: int) -> dict[str, Any]:
    import evidently.presets  # noqa: F401 - imported up front: "after imports" includes them
    import fairlearn.metrics  # noqa: F401

    from aire.config import parse_config
    from aire.evaluation.drift import drift
    from aire.evaluation.fairness import fairness
    from aire.evaluation.quality import quality
    from aire.evaluation.report import write_report

    after_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    config = parse_config({"name": "bench", "dataset": {
        "label": "label", "sensitive": ["group"],
        "features": {"numeric": [f"n{i}" for i in range(12)], "categorical": [f"c{i}" for i in range(6)]}}})
    reference, current = synthetic(rows, 1, 0.0), synthetic(rows, 2, 0.05)
    rng = np.random.default_rng(3)
    proba1 = np.clip(0.3 + 0.4 * current["label"].to_numpy() + rng.normal(0, 0.2, rows), 0.01, 0.99)
    proba = np.column_stack([1 - proba1, proba1])
    predicted = (proba1 > 0.5).astype(np.int64)
    tracemalloc.start()
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        drifted = drift(reference, current, config, Path(out))
        drift_s = time.perf_counter() - start
        start = time.perf_counter()
        fair = fairness(current, current["label"].to_numpy(), predicted, config, 1)
        fairness_s = time.perf_counter() - start
        start = time.perf_counter()
        write_report(Path(out), drifted, quality(current["label"].to_numpy(), proba, [0, 1]), None, fair, None)
        report_s = time.perf_counter() - start
        html_mb = (Path(out) / "drift.html").stat().st_size / 1e6
    _, traced_peak = tracemalloc.get_traced_memory()
    return {"rows": rows, "drift_s": drift_s, "fairness_s": fairness_s, "report_s": report_s,
            "rss_after_imports_mb": after_imports,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "traced_peak_mb": traced_peak / 1e6, "drift_html_mb": html_mb, "drift_share": drifted.drift_share}


def report(sizes: list[int]) -> None:
    print(f"{'rows':>9} {'drift s':>8} {'fairness s':>10} {'report s':>8} {'total s':>8} "
          f"{'RSS imports MB':>14} {'peak RSS MB':>11} {'py peak MB':>10} {'drift.html MB':>13}")
    for rows in sizes:
        done = subprocess.run([sys.executable, __file__, "report-worker", str(rows)], capture_output=True,
                              text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        total = r["drift_s"] + r["fairness_s"] + r["report_s"]
        print(f"{rows:>9} {r['drift_s']:>8.1f} {r['fairness_s']:>10.2f} {r['report_s']:>8.2f} {total:>8.1f} "
              f"{r['rss_after_imports_mb']:>14.0f} {r['peak_rss_mb']:>11.0f} {r['traced_peak_mb']:>10.0f} "
              f"{r['drift_html_mb']:>13.1f}", flush=True)


# --- cost of the candidate-vs-champion comparison -------------------------------------------
def compare(sizes: list[int]) -> None:
    from aire.evaluation.quality import compare_quality

    print(f"{'rows':>9} {'wall s':>7} {'acc SE':>8} {'F1 SE':>8} {'AUC SE':>8} {'ECE SE':>8}")
    rng = np.random.default_rng(0)
    for n in sizes:
        y = rng.integers(0, 2, n)
        p = np.clip(0.5 + (y - 0.5) * 0.3 + rng.normal(0, 0.2, n), 0.01, 0.99)
        q = np.clip(p + rng.normal(0, 0.05, n), 0.01, 0.99)  # the champion: close, not equal
        start = time.perf_counter()
        c = compare_quality(y, (np.column_stack([1 - p, p]), [0, 1]), (np.column_stack([1 - q, q]), [0, 1]))
        wall = time.perf_counter() - start
        print(f"{n:>9} {wall:>7.2f} {c.accuracy_drop_se:>8.5f} {c.macro_f1_drop_se:>8.5f} "
              f"{c.roc_auc_drop_se or float('nan'):>8.5f} {c.ece_increase_se:>8.5f}", flush=True)


# --- spread of the gate's evidence ---------------------------------------------------------
def spread(seeds: int, scenarios: list[str], kinds: list[str], overrides: dict[str, Any]) -> None:
    import yaml

    from aire.data.datasets import german_credit, make_batch
    from aire.home import Home
    from aire.pipeline import stages
    from aire.pipeline.home_setup import prepare_home
    from aire.pipeline.run_context import RunSpec
    from aire.pipeline.runner import run_all

    for scenario in scenarios:
        with tempfile.TemporaryDirectory(prefix="aire-bench-") as tmp:
            os.environ["AIRE_HOME"] = str(Path(tmp) / "home")
            for variable in ("MLFLOW_TRACKING_URI", "AIRE_INCIDENTS_DB"):
                os.environ.pop(variable, None)
            home = Home.from_env()
            prepare_home(home, migrate_airflow=False)
            config = Path(tmp) / "config.yaml"
            # 500-row disjoint halves leave 125-row holdouts, where the minority group rarely has
            # 20 actual negatives: the default min_group_count would reject every batch there.
            gates = {"min_group_count": 10} if scenario == "disjoint" else {}
            gates.update(overrides)
            settings = yaml.safe_load(CONFIG.read_text())
            config.write_text(yaml.safe_dump({**settings, "gates": gates}))
            # The champion is the yardstick, not under test: its own gate must not stop the bench.
            yardstick = Path(tmp) / "champion.yaml"
            yardstick.write_text(yaml.safe_dump({**settings, "gates": {**gates, "max_fairness_gap": 1.0}}))
            base = german_credit()
            order = np.random.default_rng(0).permutation(len(base))
            if scenario == "disjoint":
                champion_rows, pool = base.iloc[order[:500]], base.iloc[order[500:]].reset_index(drop=True)
                sizes = {"clean": 450, "other": 400}
            else:
                champion_rows, pool = make_batch(base, n_rows=700, seed=1)[0], base
                sizes = {"clean": 700, "other": 400}
            first = Path(tmp) / "champion.csv"
            champion_rows.to_csv(first, index=False)
            outcome = run_all(RunSpec(str(yardstick), str(first), "champion"))
            print(f"\n## scenario {scenario}: champion {outcome['outcome']}, its noise estimate "
                  f"{outcome['analyze_errors']['estimated_noise_rate']:.3f}", flush=True)
            for kind in kinds:
                decisions = []
                for seed in range(11, 11 + seeds):
                    batch, _ = make_batch(pool, n_rows=sizes["clean" if kind == "clean" else "other"], seed=seed,
                                          **KINDS[kind])  # type: ignore[arg-type]
                    path = Path(tmp) / f"{kind}-{seed}.csv"
                    batch.to_csv(path, index=False)
                    spec = RunSpec(str(config), str(path), f"{kind}-{seed}")
                    version = stages.validate_data(spec)["champion_version"]
                    for stage in (stages.analyze_errors, stages.fine_tune):
                        stage(spec, version)
                    stages.sign_model(spec)
                    stages.evaluate(spec, version)
                    decisions.append(stages.gate(spec, version))
                _print_spread(scenario, kind, decisions)


def _print_spread(scenario: str, kind: str, decisions: list[dict[str, Any]]) -> None:
    promoted = sum(d["promote"] for d in decisions)
    print(f"\n{scenario} / {kind}: promoted {promoted}/{len(decisions)}")
    print(f"  {'check':<36} {'min':>7} {'median':>7} {'max':>7} {'limit':>7} {'passed':>7}")
    for index, check in enumerate(decisions[0]["checks"]):
        values = [d["checks"][index]["value"] for d in decisions]
        numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        limits = [d["checks"][index]["threshold"] for d in decisions]
        limit_numbers = [float(v) for v in limits if isinstance(v, (int, float)) and not isinstance(v, bool)]
        passed = sum(d["checks"][index]["passed"] for d in decisions)
        shown = [f"{x:>7.3f}" for x in (min(numbers), statistics.median(numbers), max(numbers))] if numbers \
            else [f"{'-':>7}"] * 3
        limit = f"{statistics.median(limit_numbers):>7.3f}" if limit_numbers else f"{limits[0]!s:>7}"
        print(f"  {check['name']:<36} {' '.join(shown)} {limit} {passed:>4}/{len(decisions)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    cmd = sub.add_parser("report")
    cmd.add_argument("--rows", default="100000,1000000")
    cmd = sub.add_parser("report-worker")
    cmd.add_argument("rows", type=int)
    cmd = sub.add_parser("spread")
    cmd.add_argument("--seeds", type=int, default=10)
    cmd.add_argument("--scenario", default="overlap,disjoint")
    cmd.add_argument("--kinds", default=None, help="default: all kinds of the scenario or the panel")
    cmd.add_argument("--panel", choices=["calibration", "verification", "all"], default=None,
                     help="run on the real data panel (bench/panel.py) instead of German Credit")
    cmd.add_argument("--jobs", type=int, default=2, help="--panel: worker processes")
    cmd.add_argument("--out", type=Path, default=None, help="--panel: write the per-run records here (JSON)")
    cmd.add_argument("--sets", default="", help="--panel: only these sets, by name (comma-separated)")
    cmd.add_argument("--replay", type=Path, default=None, help="--panel: print the tables of a saved --out file")
    cmd.add_argument("--gate", action="append", default=[], metavar="KEY=VALUE",
                     help="override a gates: default, e.g. regression_z=1.645")
    cmd = sub.add_parser("compare")
    cmd.add_argument("--rows", default="1000,100000,1000000")
    args = parser.parse_args()
    if args.what == "report":
        report([int(r) for r in args.rows.split(",")])
    elif args.what == "report-worker":
        print(json.dumps(report_worker(args.rows)))
    elif args.what == "compare":
        compare([int(r) for r in args.rows.split(",")])
    else:
        os.environ.setdefault("MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK", "true")
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        overrides = {key: yaml_value(value) for key, value in (g.split("=", 1) for g in args.gate)}
        if args.panel is not None:
            import panel
            import panel_spread

            kinds = tuple(args.kinds.split(",")) if args.kinds else panel.KINDS
            only = tuple(s for s in args.sets.split(",") if s)
            if args.replay is not None:
                panel_spread.replay(args.replay, kinds, only)
            else:
                panel_spread.spread_panel(args.panel, args.seeds, kinds, overrides, args.jobs, args.out, only)
        else:
            spread(args.seeds, args.scenario.split(","), (args.kinds or ",".join(KINDS)).split(","), overrides)


def yaml_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


if __name__ == "__main__":
    main()
