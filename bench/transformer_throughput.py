"""Fine-tuning throughput of the transformer recipe: tokens/s, step time and MFU, CPU and CUDA.

Runs aire.model.text.training.fit_text (the product's loop: tokenisation, bf16 autocast on
CUDA, AdamW) for a fixed number of optimizer steps on texts that tokenise to exactly
``--seq`` tokens, from bases with random weights in three shapes:

- ``tiny``: 2 layers, 32 wide (the tests' base)
- ``minilm``: the all-MiniLM-L6-v2 shape (6 layers, 384 wide, 12 heads, 30,522-word vocabulary);
  weights do not change the arithmetic, so a random base times the real one
- ``bert100m``: 12 layers, 768 wide (BERT-base, ~110M parameters)

    python bench/fine_tune_devices.py --recipe transformer [--models tiny,minilm,bert100m]
        [--batch 256] [--seq 128] [--steps 20] [--cpu-batch 16] [--cpu-steps 3] [--peak-tflops N]

MFU is model FLOPs per second over the device's peak: 6 x (non-embedding parameters) x tokens
plus the attention term 12 x layers x seq x width x tokens (the PaLM paper's accounting),
against the bf16 dense peak of a known GPU (H100/H200 989 TFLOP/s, A100 312) or
``--peak-tflops`` for any other device (a CPU's peak is not knowable from here, so without
it the CPU's MFU is not printed). The first steps of each run are timed apart (CUDA context,
kernel selection) and are not in the figure.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from aire.model.text.training import TextTrainSettings, fit_text

SHAPES: dict[str, dict[str, int]] = {
    "tiny": {"layers": 2, "hidden": 32, "heads": 2, "intermediate": 64, "vocab": 64},
    "minilm": {"layers": 6, "hidden": 384, "heads": 12, "intermediate": 1536, "vocab": 30522},
    "bert100m": {"layers": 12, "hidden": 768, "heads": 12, "intermediate": 3072, "vocab": 30522},
}
# bf16 dense tensor-core peaks, FLOP/s (vendor data sheets, without sparsity)
GPU_PEAKS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}
CLASSES = 4


def random_base(directory: Path, shape: dict[str, int], seq: int) -> tuple[Path, int, int]:
    """A base of this shape with random weights; (dir, all parameters, non-embedding parameters)."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(shape["vocab"] - 5)]
    BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True).save_pretrained(directory)
    config = BertConfig(vocab_size=shape["vocab"], hidden_size=shape["hidden"],
                        num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
                        intermediate_size=shape["intermediate"], max_position_embeddings=max(512, seq),
                        num_labels=CLASSES)
    torch.manual_seed(0)
    net = BertForSequenceClassification(config)
    net.save_pretrained(directory, safe_serialization=True)
    total = sum(p.numel() for p in net.parameters())
    embedding = sum(p.numel() for n, p in net.named_parameters() if "embeddings" in n)
    return directory, total, total - embedding


def texts(rows: int, seq: int, vocab: int, seed: int = 0) -> pd.DataFrame:
    """Texts of seq - 2 words each ([CLS] and [SEP] make seq tokens), random labels."""
    rng = np.random.default_rng(seed)
    words = rng.integers(0, vocab - 5, size=(rows, seq - 2))
    return pd.DataFrame({"text": [" ".join(f"w{i}" for i in row) for row in words],
                         "label": rng.integers(0, CLASSES, size=rows)})


def train_flops_per_token(non_embedding: int, shape: dict[str, int], seq: int) -> float:
    return 6.0 * non_embedding + 12.0 * shape["layers"] * seq * shape["hidden"]


def timed_fit(base: Path, device: str, batch: int, seq: int, steps: int, vocab: int) -> float:
    """Seconds for ``steps`` optimizer steps (one epoch), the one-batch holdout pass included."""
    train, holdout = texts(batch * steps, seq, vocab), texts(batch, seq, vocab, seed=1)
    settings = TextTrainSettings(epochs=1, batch_size=batch, learning_rate=1e-5, patience=1,
                                 device=device, max_length=seq)
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    fit_text(train, holdout, text_column="text", label="label", settings=settings, base_dir=base,
             base_digest="0" * 64, classes=list(range(CLASSES)))
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def measure(name: str, device: str, batch: int, seq: int, steps: int, peak: float | None,
            folder: Path) -> dict[str, Any]:
    shape = SHAPES[name]
    base, total, non_embedding = random_base(folder / name, shape, seq)
    warm = timed_fit(base, device, batch, seq, 1, shape["vocab"])  # loading, first kernels
    # Two runs of different length: their difference is the steady-state cost of the extra
    # steps, without the load, the holdout pass and the first step's one-off costs.
    short = timed_fit(base, device, batch, seq, 1, shape["vocab"])
    long = timed_fit(base, device, batch, seq, 1 + steps, shape["vocab"])
    step = (long - short) / steps
    tokens_per_s = batch * seq / step
    flops = train_flops_per_token(non_embedding, shape, seq) * tokens_per_s
    return {"model": name, "device": device, "parameters": total, "non_embedding": non_embedding,
            "batch": batch, "seq": seq, "steps": steps, "step_s": round(step, 4),
            "tokens_per_s": round(tokens_per_s), "model_tflops": round(flops / 1e12, 2),
            "mfu": None if peak is None else round(flops / peak, 3), "first_run_s": round(warm, 2)}


def device_peak(device: str, peak_tflops: float | None) -> float | None:
    if peak_tflops is not None:
        return peak_tflops * 1e12
    if device != "cuda":
        return None
    gpu = torch.cuda.get_device_name(0)
    return next((peak for key, peak in GPU_PEAKS.items() if key in gpu), None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="transformer")
    parser.add_argument("--models", default="tiny,minilm,bert100m")
    parser.add_argument("--batch", type=int, default=256, help="CUDA batch size")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="timed CUDA steps")
    parser.add_argument("--cpu-batch", type=int, default=16)
    parser.add_argument("--cpu-steps", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, for MFU")
    parser.add_argument("--devices", default=None, help="default: cpu, and cuda when there is one")
    args = parser.parse_args(argv)
    devices = (args.devices.split(",") if args.devices
               else ["cpu", *(["cuda"] if torch.cuda.is_available() else [])])
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"torch {torch.__version__}; GPU: {gpu}; CPU threads: {torch.get_num_threads()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for device in devices:
            batch, steps = (args.batch, args.steps) if device == "cuda" else (args.cpu_batch, args.cpu_steps)
            for name in args.models.split(","):
                rows.append(measure(name, device, batch, args.seq, steps,
                                    device_peak(device, args.peak_tflops), Path(folder)))
                print(json.dumps(rows[-1]), flush=True)
    print("\n| model | params | device | batch x seq | step s | tokens/s | model TFLOP/s | MFU |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        mfu = "n/a" if r["mfu"] is None else f"{r['mfu']:.1%}"
        print(f"| {r['model']} | {r['parameters'] / 1e6:.1f}M | {r['device']} | {r['batch']} x {r['seq']} | "
              f"{r['step_s']} | {r['tokens_per_s']:,} | {r['model_tflops']} | {mfu} |")


if __name__ == "__main__":
    main()
