"""Drift at scale: wall time, CPU time and peak RSS of ``aire.evaluation.drift.drift`` on
synthetic batches of 20 columns (10 numeric, 10 categorical with 2-30 levels and 2% nulls),
reference and current the same size, the current one shifted on two columns.

Each size runs in a fresh process, so ``ru_maxrss`` is that size's alone (frames included;
building them is not timed, nor is importing Evidently: that column is a cost per worker
process, issue 16's item 2, printed apart). The figure printed beside each is the target of issue 16 at
1M rows (drift <= 15 s); ``--evidently-rows 0`` runs Evidently on every row, as before
Evidently's sample cap, for the before figure.

Run: ``.venv/bin/python bench/drift_scale.py`` (100k and 1M rows) or ``--rows 1000000``.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))

NUMERIC = [f"n{i}" for i in range(10)]
CATEGORICAL = [f"c{i}" for i in range(10)]
TARGET_S = 15.0  # issue 16: drift alone at 1M rows x 20 columns


def frame(rows: int, seed: int, shift: bool) -> object:
    import pandas as pd

    rng = np.random.default_rng(seed)
    data: dict[str, object] = {}
    for i, name in enumerate(NUMERIC):
        values = rng.normal(loc=(0.5 if shift and i < 1 else 0.0), scale=1.0 + i / 10, size=rows)
        data[name] = values
    for i, name in enumerate(CATEGORICAL):
        levels = 2 + 3 * i
        weights = np.linspace(1.0, 2.0, levels) if not (shift and i == 0) else np.linspace(2.0, 1.0, levels)
        codes = rng.choice(levels, size=rows, p=weights / weights.sum())
        column = pd.Series(pd.Categorical.from_codes(codes, [f"v{j}" for j in range(levels)])).astype(object)
        column[rng.random(rows) < 0.02] = None
        data[name] = column
    data["label"] = rng.integers(0, 2, size=rows)
    return pd.DataFrame(data)


def config(evidently_rows: int | None) -> object:
    from aire.config import PipelineConfig

    return PipelineConfig.model_validate({
        "name": "drift-bench",
        "dataset": {"label": "label", "features": {"numeric": NUMERIC, "categorical": CATEGORICAL}},
        **({"evaluation": {"drift_report_rows": evidently_rows}} if evidently_rows is not None else {}),
    })


def one(rows: int, evidently_rows: int | None) -> dict[str, float]:
    from aire.evaluation.drift import drift

    reference, current = frame(rows, 0, False), frame(rows, 1, True)
    cfg = config(evidently_rows)
    # Evidently's import (~7 s here) is a cost per process, not per row: timed apart.
    started = time.perf_counter()
    import evidently.presets  # noqa: F401

    imports = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as out:
        wall, cpu = time.perf_counter(), time.process_time()
        result = drift(reference, current, cfg, Path(out))  # type: ignore[arg-type]
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    shifted = sorted(c for c, t in result.feature_tests.items() if t.effect >= 0.1)
    return {"rows": rows, "import_s": round(imports, 2), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "drift_share": round(result.drift_share, 3), "drifted": list(result.drifted_columns),
            "effect_ge_0.1": shifted, "report_rows": result.report_rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="rows per side (repeatable)")
    parser.add_argument("--evidently-rows", type=int, default=None,
                        help="evaluation.drift_report_rows (0: every row); default: the config's")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = args.rows or [100_000, 1_000_000]
    if args.child:
        print(json.dumps(one(sizes[0], args.evidently_rows)))
        return
    print(f"{'rows':>10} {'import s':>9} {'wall s':>8} {'cpu s':>8} {'peak RSS MB':>12}  target   "
          "drift_share  drifted")
    for rows in sizes:
        command = [sys.executable, __file__, "--child", "--rows", str(rows)]
        if args.evidently_rows is not None:
            command += ["--evidently-rows", str(args.evidently_rows)]
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        figure = json.loads(out.stdout.strip().splitlines()[-1])
        target = f"<= {TARGET_S:.0f} s" if rows == 1_000_000 else "-"
        print(f"{figure['rows']:>10,} {figure['import_s']:>9} {figure['wall_s']:>8} {figure['cpu_s']:>8} "
              f"{figure['peak_rss_mb']:>12}  "
              f"{target:<8} {figure['drift_share']:>11}  {','.join(figure['drifted'])} "
              f"(Evidently on {figure['report_rows']})")


if __name__ == "__main__":
    main()
