"""Scoring throughput: rows/s and peak RSS at 100k, 1M and 10M rows, ODD checks on.

What is timed, per size, in a fresh process (so ``ru_maxrss`` is that size's alone): read a
Parquet batch in chunks of ``--chunk`` rows (pyarrow ``iter_batches``), score each chunk with
``aire.scoring.batch.score_chunk`` (encoding, the ODD input rules, row hashing and the
row cache, the model, the confidence rule, the output frame) and append it to the output
Parquet file (``aire.scoring.writer.scored_output``: one atomic rename at the end). Not
timed: training the small German Credit model (3 epochs) and learning its ODD, and writing
the input file. The input rows are German Credit rows with jittered numbers, so nearly every
row is distinct (the cache gets no free hits); ``--repeat-share`` makes that share of rows
copies of earlier ones, to show the cache.

CPU seconds (``time.process_time``) are printed beside wall time: on a shared machine the
wall figure says as much about the neighbours as about the code.

Run: ``.venv/bin/python bench/scoring.py`` (all sizes) or ``--rows 1000000``.
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "include"))


def make_input(rows: int, path: Path, repeat_share: float, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.support.german import german_frame

    base = german_frame()
    rng = np.random.default_rng(seed)
    writer = None
    step = 1_000_000
    for start in range(0, rows, step):
        n = min(step, rows - start)
        frame = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
        frame["age"] = (frame["age"] + rng.integers(-3, 4, n)).clip(19, 75)
        frame["credit_amount"] = (frame["credit_amount"] * rng.uniform(0.9, 1.1, n)).round(2)
        frame["duration"] = (frame["duration"] + rng.integers(-2, 3, n)).clip(4, 72)
        if repeat_share > 0:
            copies = rng.random(n) < repeat_share
            frame.loc[copies] = frame.iloc[rng.integers(0, max(1, n // 10), int(copies.sum()))].to_numpy()
        frame.insert(0, "row_id", np.arange(start, start + n))
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(str(path), table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def one_size(rows: int, chunk: int, repeat_share: float) -> dict[str, float]:
    import pyarrow.parquet as pq

    from aire.config import OutOfDomain, Scoring
    from aire.data.reference_profile import learn_profile
    from aire.model.training import fit
    from aire.scoring.batch import score_chunk
    from aire.scoring.cache import RowCache
    from aire.scoring.loader import LoadedModel
    from aire.scoring.odd import learn_odd
    from aire.scoring.writer import scored_output
    from tests.support.german import german_config, german_frame

    german, config = german_frame(), german_config()
    model = fit(german, config, epochs=3, seed=0, device="cpu").model
    loaded = LoadedModel(1, "b" * 64, model, learn_odd(model, learn_profile(german, config), german, "b" * 64,
                                                         Scoring()))
    with tempfile.TemporaryDirectory(prefix="aire-bench-score-") as tmp:
        source, target = Path(tmp) / "batch.parquet", Path(tmp) / "scores.parquet"
        make_input(rows, source, repeat_share)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        cache = RowCache()
        out_rows = scored = 0
        counts = {"in": 0, "out": 0, "uncertain": 0}
        started, cpu_started = time.perf_counter(), time.process_time()
        with scored_output(str(target)) as writer:
            for offset, batch in enumerate(pq.ParquetFile(source).iter_batches(batch_size=chunk)):
                frame = batch.to_pandas()
                result = score_chunk(frame, loaded, None, policy=OutOfDomain.FLAG, fallback=None, id_column="row_id",
                                     row_offset=offset * chunk, cache=cache, primary_label="champion")
                writer.write(result.frame)
                out_rows += len(result.frame)
                scored += result.scored_rows
                for verdict, n in result.frame["odd"].value_counts().items():
                    counts[str(verdict)] += int(n)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        assert out_rows == rows
        size_mb = target.stat().st_size / 1024**2
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds),
            "cpu_seconds": round(cpu, 2), "rows_per_cpu_s": round(rows / cpu),
            "peak_rss_mb": round(peak), "rss_before_mb": round(before), "through_model": scored,
            "output_mb": round(size_mb, 1), **{f"odd_{k}": v for k, v in counts.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--chunk", type=int, default=250_000)
    parser.add_argument("--repeat-share", type=float, default=0.0)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(args.rows[0], args.chunk, args.repeat_share)))
        return
    print(f"{'rows':>11} {'seconds':>8} {'rows/s':>10} {'CPU s':>7} {'rows/CPU s':>11} {'peak RSS MB':>12} "
          f"{'model rows':>11} {'in':>9} {'out':>7} {'uncertain':>9}")
    for rows in args.rows:
        done = subprocess.run([sys.executable, __file__, "--one", "--rows", str(rows), "--chunk", str(args.chunk),
                               "--repeat-share", str(args.repeat_share)],
                              capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{r['rows']:>11,} {r['seconds']:>8} {r['rows_per_s']:>10,} {r['cpu_seconds']:>7} "
              f"{r['rows_per_cpu_s']:>11,} {r['peak_rss_mb']:>12,} "
              f"{r['through_model']:>11,} {r['odd_in']:>9,} {r['odd_out']:>7,} {r['odd_uncertain']:>9,}", flush=True)


if __name__ == "__main__":
    main()
