"""Fine-tuning of the transformer recipe: from the pinned base or warm from the champion.

Full fine-tuning or LoRA (``model.lora``; the adapters are merged into the weights before
the model is returned, so what is saved and signed is one plain directory). After every
epoch the holdout loss decides: the best epoch's weights are kept, and training stops
after ``patience`` epochs without improvement. On CPU a seed makes a run reproducible to
the bit (seeded classifier head, dropout and shuffling); on CUDA matmuls run under bf16
autocast and kernels may differ slightly.

The base must have been verified (``aire.trust.base.verify_base``) by the caller: this
layer sits below the trust layer and only loads what it is given, safetensors only.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

from aire.config import Lora
from aire.errors import InputError
from aire.model.tabular import ClassLabel, cpu_threads_capped, label_classes, resolve_device
from aire.model.text.directory import TextModel, checked_texts, load_pretrained

EpochCallback = Callable[[int, dict[str, float]], None]
# AdamW step sizes that fine-tune without wrecking the pretrained weights: the usual range
# for BERT-sized models (full) and for low-rank adapters, which start from zero.
FULL_LEARNING_RATE = 5e-5
LORA_LEARNING_RATE = 5e-4


@dataclass(frozen=True)
class TextTrainSettings:
    epochs: int = 3
    batch_size: int = 16
    learning_rate: float | None = None  # None: FULL_ or LORA_LEARNING_RATE
    patience: int = 1  # epochs without a better holdout loss before stopping
    seed: int = 0
    device: str = "auto"
    max_length: int = 128
    lora: Lora | None = None


@dataclass(frozen=True)
class TextTrainResult:
    model: TextModel = field(repr=False)
    device: str
    epochs: int  # epochs run
    best_epoch: int
    history: list[dict[str, float]]
    seconds: float
    n_rows: int
    warm_start: bool
    lora: bool

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "epochs": self.epochs, "best_epoch": self.best_epoch,
                "history": [dict(h) for h in self.history], "seconds": self.seconds,
                "n_rows": self.n_rows, "warm_start": self.warm_start, "lora": self.lora}


def fit_text(train_df: pd.DataFrame, holdout_df: pd.DataFrame, *, text_column: str, label: str,
             settings: TextTrainSettings, base_dir: Path | None = None, base_digest: str = "",
             init_from: TextModel | None = None, classes: Sequence[ClassLabel] | None = None,
             on_epoch: EpochCallback | None = None) -> TextTrainResult:
    """Fine-tune on ``train_df``, early-stopped on ``holdout_df``; give a base or a champion."""
    if settings.epochs < 1 or settings.batch_size < 1 or settings.patience < 1:
        raise InputError("transformer training needs epochs, batch_size and patience >= 1")
    if (base_dir is None) == (init_from is None):
        raise InputError("fit_text needs exactly one of base_dir (cold start) or init_from (warm start)")
    target = resolve_device(settings.device)
    train_texts, holdout_texts = checked_texts(train_df, text_column), checked_texts(holdout_df, text_column)
    if not train_texts or not holdout_texts:
        raise InputError("transformer training needs rows in both the training and the holdout table")
    model = _starting_model(train_df, label, text_column, settings, base_dir, base_digest,
                            init_from, classes)
    y_train = torch.from_numpy(model.encode_labels(train_df[label]))
    y_holdout = torch.from_numpy(model.encode_labels(holdout_df[label]))
    model.net.to(target)

    lora = settings.lora
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[target] if target.type == "cuda" else []), \
            cpu_threads_capped(None):
        torch.manual_seed(settings.seed)
        if lora is not None:
            model.net = _with_adapters(model.net, lora)
        trainable = [p for p in model.net.parameters() if p.requires_grad]
        rate = settings.learning_rate or (LORA_LEARNING_RATE if lora else FULL_LEARNING_RATE)
        optimizer = torch.optim.AdamW(trainable, lr=rate)
        shuffler = torch.Generator().manual_seed(settings.seed)
        history, best_epoch, best_state = _train(model, optimizer, train_texts, y_train,
                                                 holdout_texts, y_holdout, settings, shuffler,
                                                 on_epoch)
        model.net.load_state_dict(best_state)
        if lora is not None:
            model.net = model.net.merge_and_unload()
    model.net.eval()
    return TextTrainResult(model, str(target), len(history), best_epoch, history,
                           time.perf_counter() - started, len(train_texts),
                           warm_start=init_from is not None, lora=lora is not None)


def _starting_model(train_df: pd.DataFrame, label: str, text_column: str,
                    settings: TextTrainSettings, base_dir: Path | None, base_digest: str,
                    init_from: TextModel | None, classes: Sequence[ClassLabel] | None) -> TextModel:
    if init_from is not None:
        if init_from.label != label or init_from.text_column != text_column:
            raise InputError(f"warm start: the champion reads '{init_from.text_column}' -> "
                             f"'{init_from.label}', this config '{text_column}' -> '{label}'")
        return TextModel(copy.deepcopy(init_from.net), init_from.tokenizer, list(init_from.classes),
                         label, text_column, init_from.max_length, init_from.base_digest)
    assert base_dir is not None
    layout = list(classes) if classes is not None else label_classes(train_df[label], label)
    if len(layout) < 2:
        raise InputError(f"column '{label}' breaks rule 'at least two classes to train': only {layout}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)  # the new classifier head depends on the seed only
        net, tokenizer = load_pretrained(base_dir, num_labels=len(layout))
    return TextModel(net, tokenizer, layout, label, text_column, settings.max_length, base_digest)


def _with_adapters(net: Any, lora: Lora) -> Any:
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=lora.r, lora_alpha=lora.alpha,
                        lora_dropout=lora.dropout)
    return get_peft_model(net, config)


def _train(model: TextModel, optimizer: torch.optim.Optimizer, texts: list[str], y: torch.Tensor,
           holdout_texts: list[str], y_holdout: torch.Tensor, settings: TextTrainSettings,
           shuffler: torch.Generator, on_epoch: EpochCallback | None,
           ) -> tuple[list[dict[str, float]], int, dict[str, torch.Tensor]]:
    history: list[dict[str, float]] = []
    best_loss, best_epoch = float("inf"), 0
    best_state: dict[str, torch.Tensor] = {}
    for epoch in range(1, settings.epochs + 1):
        model.net.train()
        order = torch.randperm(len(texts), generator=shuffler)
        total = 0.0
        for start in range(0, len(texts), settings.batch_size):
            index = order[start:start + settings.batch_size]
            with _autocast(model.device):
                logits = model.net(**model.tokenize([texts[i] for i in index])).logits
            loss = F.cross_entropy(logits.float(), y[index].to(model.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            total += float(loss.detach()) * len(index)
        holdout_loss, holdout_accuracy = _holdout_metrics(model, holdout_texts, y_holdout,
                                                          settings.batch_size)
        metrics = {"train_loss": total / len(texts), "holdout_loss": holdout_loss,
                   "holdout_accuracy": holdout_accuracy}
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(epoch, dict(metrics))
        if holdout_loss < best_loss:
            best_loss, best_epoch = holdout_loss, epoch
            best_state = {k: v.detach().clone() for k, v in model.net.state_dict().items()}
        elif epoch - best_epoch >= settings.patience:
            break
    return history, best_epoch, best_state


def _holdout_metrics(model: TextModel, texts: list[str], y: torch.Tensor,
                     batch_size: int) -> tuple[float, float]:
    model.net.eval()
    losses, hits = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            with _autocast(model.device):
                logits = model.net(**model.tokenize(texts[start:start + batch_size])).logits.float()
            target = y[start:start + batch_size].to(model.device)
            losses += float(F.cross_entropy(logits, target, reduction="sum"))
            hits += int((logits.argmax(dim=1) == target).sum())
    return losses / len(texts), hits / len(texts)


def _autocast(device: torch.device) -> Any:
    # bf16 on CUDA halves memory traffic; CPU stays in fp32, where bf16 is slower and inexact.
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
