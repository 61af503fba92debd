"""Fine-tuning of the transformer recipe: from the pinned base or warm from the champion.

Full fine-tuning or LoRA (``model.lora``; the adapters are merged into the weights before
the model is returned, so what is saved and signed is one plain directory). After every
epoch the holdout loss decides: the best epoch's weights are kept, and training stops
after ``patience`` epochs without improvement. On CPU a seed makes a run reproducible to
the bit (seeded classifier head, dropout and shuffling); on CUDA matmuls run under bf16
autocast and kernels may differ slightly. With ``checkpoint_dir`` set, a checkpoint is
kept every ``checkpoint_every`` steps (``checkpoints``), and a run killed mid-training and
started again on the same inputs (an Airflow retry) resumes from it.

The base must have been verified (``aire.trust.base.verify_base``) by the caller: this
layer sits below the trust layer and only loads what it is given, safetensors only.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

from aire.config import Lora
from aire.errors import InputError
from aire.model.tabular import ClassLabel, label_classes, resolve_device
from aire.model.text.checkpoints import Progress, fingerprint, load_checkpoint, save_checkpoint
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
    # Where to keep a checkpoint, replaced every ``checkpoint_every`` optimizer steps; a run
    # started again with the same inputs resumes from it (None: no checkpoints).
    checkpoint_dir: Path | None = None
    checkpoint_every: int = 50


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
    resumed_from_step: int = 0  # 0: not resumed from a checkpoint

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "epochs": self.epochs, "best_epoch": self.best_epoch,
                "history": [dict(h) for h in self.history], "seconds": self.seconds,
                "n_rows": self.n_rows, "warm_start": self.warm_start, "lora": self.lora,
                "resumed_from_step": self.resumed_from_step}


def fit_text(train_df: pd.DataFrame, holdout_df: pd.DataFrame, *, text_column: str, label: str,
             settings: TextTrainSettings, base_dir: Path | None = None, base_digest: str = "",
             init_from: TextModel | None = None, classes: Sequence[ClassLabel] | None = None,
             on_epoch: EpochCallback | None = None) -> TextTrainResult:
    """Fine-tune on ``train_df``, early-stopped on ``holdout_df``; give a base or a champion."""
    if min(settings.epochs, settings.batch_size, settings.patience, settings.checkpoint_every) < 1:
        raise InputError("transformer training needs epochs, batch_size, patience and checkpoint_every >= 1")
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
    with torch.random.fork_rng(devices=[target] if target.type == "cuda" else []):
        torch.manual_seed(settings.seed)
        run = (_fingerprint(model, settings, init_from is not None, train_texts + holdout_texts,
                            torch.cat([y_train, y_holdout]))
               if settings.checkpoint_dir is not None else "")
        if lora is not None:
            model.net = _with_adapters(model.net, lora)
        trainable = [p for p in model.net.parameters() if p.requires_grad]
        rate = settings.learning_rate
        if rate is None:
            rate = LORA_LEARNING_RATE if lora else FULL_LEARNING_RATE
        optimizer = torch.optim.AdamW(trainable, lr=rate)
        loop = _Loop(model, optimizer, settings, torch.Generator().manual_seed(settings.seed), run)
        resumed_from = loop.resume()
        loop.train(train_texts, y_train, holdout_texts, y_holdout, on_epoch)
        model.net.load_state_dict(loop.best_state)
        if lora is not None:
            model.net = model.net.merge_and_unload()
    model.net.eval()
    progress = loop.progress
    return TextTrainResult(model, str(target), len(progress.history), progress.best_epoch,
                           progress.history, time.perf_counter() - started, len(train_texts),
                           warm_start=init_from is not None, lora=lora is not None,
                           resumed_from_step=resumed_from)


def _fingerprint(model: TextModel, settings: TextTrainSettings, warm: bool, texts: list[str],
                 labels: torch.Tensor) -> str:
    parts = {**asdict(settings), "checkpoint_dir": None, "device": None, "warm_start": warm,
             "classes": model.classes, "max_length": model.max_length, "base_digest": model.base_digest}
    return fingerprint(parts, texts, labels, model.net.state_dict())


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


class _Loop:
    """The epochs and steps of one fine-tuning, with what a checkpoint saves and restores."""

    def __init__(self, model: TextModel, optimizer: torch.optim.Optimizer, settings: TextTrainSettings,
                 shuffler: torch.Generator, run: str) -> None:
        self.model, self.optimizer, self.settings, self.shuffler, self.run = (
            model, optimizer, settings, shuffler, run)
        self.progress = Progress()
        self.best_state: dict[str, torch.Tensor] = {}
        self.epoch_shuffle_state = shuffler.get_state()

    def resume(self) -> int:
        """The step a checkpoint of this run resumed from, or 0."""
        if self.settings.checkpoint_dir is None:
            return 0
        restored = load_checkpoint(self.settings.checkpoint_dir, run=self.run, net=self.model.net,
                                   optimizer=self.optimizer)
        if restored is None:
            return 0
        self.progress, self.best_state = restored.progress, restored.best_state
        # Rewound to the epoch's start, so the epoch's shuffle is drawn again, identically.
        self.shuffler.set_state(restored.epoch_shuffle_state)
        return self.progress.step

    def train(self, texts: list[str], y: torch.Tensor, holdout_texts: list[str], y_holdout: torch.Tensor,
              on_epoch: EpochCallback | None) -> None:
        settings, progress, model = self.settings, self.progress, self.model
        while progress.epoch <= settings.epochs:
            self.epoch_shuffle_state = self.shuffler.get_state()
            order = torch.randperm(len(texts), generator=self.shuffler)
            batches = [order[s:s + settings.batch_size] for s in range(0, len(texts), settings.batch_size)]
            model.net.train()
            for index in batches[progress.batches_done:]:
                progress.epoch_loss_sum += self._step([texts[i] for i in index], y[index]) * len(index)
                progress.batches_done += 1
                progress.step += 1
                if settings.checkpoint_dir is not None and progress.step % settings.checkpoint_every == 0:
                    save_checkpoint(settings.checkpoint_dir, run=self.run, progress=progress, net=model.net,
                                    optimizer=self.optimizer, best_state=self.best_state,
                                    epoch_shuffle_state=self.epoch_shuffle_state)
            if self._end_epoch(len(texts), holdout_texts, y_holdout, on_epoch):
                break

    def _step(self, texts: list[str], y: torch.Tensor) -> float:
        with _autocast(self.model.device):
            logits = self.model.net(**self.model.tokenize(texts)).logits
        loss = F.cross_entropy(logits.float(), y.to(self.model.device))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()
        return float(loss.detach())

    def _end_epoch(self, rows: int, holdout_texts: list[str], y_holdout: torch.Tensor,
                   on_epoch: EpochCallback | None) -> bool:
        """Record the epoch; True when training stops (patience used up)."""
        progress = self.progress
        holdout_loss, holdout_accuracy = _holdout_metrics(self.model, holdout_texts, y_holdout,
                                                          self.settings.batch_size)
        if not math.isfinite(holdout_loss):
            # Same inputs, same divergence: not worth a retry, the step size is the fix.
            raise InputError(f"transformer training diverged: holdout loss {holdout_loss} after epoch "
                             f"{progress.epoch}; lower the learning rate")
        metrics = {"train_loss": progress.epoch_loss_sum / rows, "holdout_loss": holdout_loss,
                   "holdout_accuracy": holdout_accuracy}
        progress.history.append(metrics)
        epoch = progress.epoch
        if on_epoch is not None:
            on_epoch(epoch, dict(metrics))
        progress.epoch, progress.batches_done, progress.epoch_loss_sum = epoch + 1, 0, 0.0
        if holdout_loss < progress.best_loss:
            progress.best_loss, progress.best_epoch = holdout_loss, epoch
            self.best_state = {k: v.detach().clone() for k, v in self.model.net.state_dict().items()}
            return False
        return epoch - progress.best_epoch >= self.settings.patience


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
