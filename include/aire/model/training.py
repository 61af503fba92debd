"""Fine-tuning of the tabular recipe: cold start or warm start from a champion.

A warm start keeps the champion's preprocessor and classes, so the network's input and
output layout stay identical and the champion's weights can be copied in; categories the
champion never saw land in the unknown slot. On CPU a seed makes a run reproducible to
the bit (seeded init, dropout and shuffling); on CUDA kernels may still differ slightly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from aire.config import PipelineConfig
from aire.errors import InputError
from aire.model.preprocessing import TabularPreprocessor
from aire.model.tabular import (
    ClassLabel,
    TabularNet,
    TrainedModel,
    cpu_threads_capped,
    label_classes,
    resolve_device,
)

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainResult:
    model: TrainedModel = field(repr=False)
    device: str
    epochs: int
    history: list[dict[str, float]]
    seconds: float
    n_rows: int
    warm_start: bool

    def to_dict(self) -> dict[str, Any]:
        """Everything but the model: small enough for XCom and MLflow params."""
        return {
            "device": self.device,
            "epochs": self.epochs,
            "history": [dict(h) for h in self.history],
            "seconds": self.seconds,
            "n_rows": self.n_rows,
            "warm_start": self.warm_start,
            "final_train_loss": self.history[-1]["train_loss"] if self.history else None,
        }


def fit(
    train_df: pd.DataFrame,
    config: PipelineConfig,
    *,
    init_from: TrainedModel | None = None,
    epochs: int | None = None,
    learning_rate: float | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    device: str | None = None,
    sample_weight: np.ndarray | None = None,
    classes: Sequence[ClassLabel] | None = None,
    on_epoch: EpochCallback | None = None,
    cpu_threads: int = 1,
) -> TrainResult:
    """Train a model on ``train_df``; knobs left as ``None`` come from ``config.training``.

    ``classes`` fixes the output layer of a cold start (cross-fitting passes the batch's
    classes so that a fold missing a rare class still scores every class).
    ``sample_weight`` turns the loss into a weighted mean (the "downweight" action).
    ``cpu_threads`` caps torch's intra-op threads while training on CPU (restored after):
    batches of this small MLP gain nothing from more, and on a busy 2-core worker two
    spinning OpenMP threads once stretched a 1-second cross-fit to 100 seconds.
    """
    knobs = config.training
    epochs = knobs.epochs if epochs is None else epochs
    learning_rate = knobs.learning_rate if learning_rate is None else learning_rate
    batch_size = knobs.batch_size if batch_size is None else batch_size
    seed = knobs.seed if seed is None else seed
    if epochs < 1 or batch_size < 1 or not learning_rate > 0:
        raise InputError(f"training needs epochs >= 1, batch_size >= 1 and learning_rate > 0; "
                         f"got {epochs}, {batch_size}, {learning_rate}")
    target = resolve_device(knobs.device if device is None else device)
    label = config.dataset.label
    if len(train_df) == 0:
        raise InputError("the training table has no rows")
    if label not in train_df.columns:
        raise InputError(f"column '{label}' breaks rule 'required label column': not in the data")

    if init_from is not None:
        _check_warm_start_compatible(init_from, config)
        model = TrainedModel(init_from.preprocessor, _copy_net(init_from), list(init_from.classes),
                             label, init_from.hidden, init_from.dropout)
    else:
        preprocessor = TabularPreprocessor.fit(train_df, config.dataset.features)
        layout = list(classes) if classes is not None else label_classes(train_df[label], label)
        if len(layout) < 2:
            raise InputError(f"column '{label}' breaks rule 'at least two classes to train': "
                             f"only {layout}")
        hidden = tuple(config.model.hidden)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # the initial weights depend on the seed only
            net = TabularNet(preprocessor.input_dim, hidden, len(layout))
        model = TrainedModel(preprocessor, net, layout, label, hidden)

    x = torch.from_numpy(model.preprocessor.transform(train_df)).to(target)
    y = torch.from_numpy(model.encode_labels(train_df[label])).to(target)
    weights = _weights_tensor(sample_weight, len(train_df), target)
    model.net.to(target)

    started = time.perf_counter()
    history: list[dict[str, float]] = []
    # fork_rng keeps dropout's draws from leaking into (or depending on) the caller's RNG.
    with torch.random.fork_rng(devices=[target] if target.type == "cuda" else []), \
            cpu_threads_capped(cpu_threads if target.type == "cpu" else None):
        torch.manual_seed(seed)
        shuffler = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(model.net.parameters(), lr=learning_rate)
        for epoch in range(1, epochs + 1):
            metrics = _train_one_epoch(model.net, optimizer, x, y, weights, batch_size, shuffler)
            history.append(metrics)
            if on_epoch is not None:
                on_epoch(epoch, dict(metrics))
    model.net.eval()
    seconds = time.perf_counter() - started
    return TrainResult(model, str(target), epochs, history, seconds, len(train_df),
                       warm_start=init_from is not None)


def _train_one_epoch(net: TabularNet, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                     y: torch.Tensor, weights: torch.Tensor | None, batch_size: int,
                     shuffler: torch.Generator) -> dict[str, float]:
    net.train()
    order = torch.randperm(len(x), generator=shuffler).to(x.device)
    loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
    weight_sum = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.float64)
    for start in range(0, len(x), batch_size):
        rows = order[start:start + batch_size]
        logits = net(x[rows])
        per_row = F.cross_entropy(logits, y[rows], reduction="none")
        w = weights[rows] if weights is not None else torch.ones_like(per_row)
        # clamp: a batch of weight-0 rows gives loss 0 instead of 0/0 (and needs no GPU sync)
        loss = (per_row * w).sum() / w.sum().clamp_min(1e-12)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        # accumulate on the device: a .item() per step would sync the GPU every batch
        loss_sum += (per_row.detach() * w).sum().double()
        weight_sum += w.sum().double()
        correct += ((logits.detach().argmax(dim=1) == y[rows]).float() * w).sum().double()
    total = max(weight_sum.item(), 1e-12)
    return {"train_loss": loss_sum.item() / total, "train_accuracy": correct.item() / total}


def _weights_tensor(sample_weight: np.ndarray | None, n_rows: int,
                    device: torch.device) -> torch.Tensor | None:
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n_rows,):
        raise InputError(f"sample_weight has shape {w.shape}, expected ({n_rows},)")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise InputError("sample_weight must be finite, >= 0 and not all zero")
    return torch.from_numpy(w.astype(np.float32)).to(device)


def _check_warm_start_compatible(champion: TrainedModel, config: PipelineConfig) -> None:
    features = config.dataset.features
    prep = champion.preprocessor
    if list(prep.numeric) != features.numeric or list(prep.categorical) != features.categorical:
        raise InputError(
            "cannot warm start: config.dataset.features "
            f"(numeric {features.numeric}, categorical {features.categorical}) differ from the "
            f"champion's (numeric {list(prep.numeric)}, categorical {list(prep.categorical)})")
    if champion.label != config.dataset.label:
        raise InputError(f"cannot warm start: config.dataset.label '{config.dataset.label}' "
                         f"differs from the champion's '{champion.label}'")
    if list(champion.hidden) != list(config.model.hidden):
        raise InputError(f"cannot warm start: config.model.hidden {list(config.model.hidden)} "
                         f"differs from the champion's {list(champion.hidden)}")


def _copy_net(champion: TrainedModel) -> TabularNet:
    # A fresh module with copied tensors: fine-tuning must never modify the champion itself.
    net = TabularNet(champion.preprocessor.input_dim, champion.hidden, len(champion.classes),
                     champion.dropout)
    net.load_state_dict({k: v.detach().cpu().clone() for k, v in champion.net.state_dict().items()})
    return net
