"""Training checkpoints of the transformer recipe: resume a killed fine-tuning where it stopped.

A checkpoint is one directory, replaced whole (``aire.atomic``) so a kill while writing
leaves the previous one intact:

- ``weights.safetensors``  the network now; ``best.safetensors`` the best epoch's weights
- ``optimizer.safetensors``  every tensor of the optimizer's state (``state.<param>.<key>``)
- ``rng.safetensors``  the dropout RNG, and the shuffling RNG as it was when the epoch began
- ``checkpoint.json``  position (epoch, batches done, step), history, best loss, the
  optimizer's param groups and scalar state, and the run's fingerprint

Nothing is pickled, so loading a checkpoint runs nothing. The fingerprint (settings,
starting weights, data) ties a checkpoint to one run: a checkpoint of another run is
not resumed but replaced. Restoring the RNGs as well makes a resumed run on CPU give
the same weights, to the bit, as one that was never interrupted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from aire import atomic

FORMAT_VERSION = 1
STATE_FILE = "checkpoint.json"


@dataclass
class Progress:
    """Where training stands; what a checkpoint restores besides tensors."""

    epoch: int = 1  # the epoch in progress (1-based)
    batches_done: int = 0  # of that epoch
    step: int = 0  # optimizer steps so far
    epoch_loss_sum: float = 0.0  # train loss x rows over the batches done this epoch
    history: list[dict[str, float]] = field(default_factory=list)
    best_loss: float = float("inf")
    best_epoch: int = 0


@dataclass
class Restored:
    progress: Progress
    best_state: dict[str, torch.Tensor]
    epoch_shuffle_state: torch.Tensor


def fingerprint(parts: dict[str, Any], texts: list[str], labels: Any,
                start_state: dict[str, torch.Tensor]) -> str:
    """sha256 over the run's settings, data and starting weights."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
    digest.update(torch.as_tensor(labels).numpy().tobytes())
    for name in sorted(start_state):
        digest.update(name.encode())
        digest.update(start_state[name].detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(directory: Path, *, run: str, progress: Progress, net: Any,
                    optimizer: torch.optim.Optimizer, best_state: dict[str, torch.Tensor],
                    epoch_shuffle_state: torch.Tensor) -> None:
    from safetensors.torch import save_file

    tensors, scalars = _optimizer_state(optimizer)
    rng = {"dropout": torch.get_rng_state(), "shuffle_epoch_start": epoch_shuffle_state}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        rng["cuda"] = torch.cuda.get_rng_state()
    meta = {"format_version": FORMAT_VERSION, "run": run, "progress": progress.__dict__,
            "param_groups": optimizer.state_dict()["param_groups"], "optimizer_scalars": scalars}
    with atomic.replacing_directory(directory) as staging:
        save_file(_plain(net.state_dict()), str(staging / "weights.safetensors"))
        save_file(_plain(best_state), str(staging / "best.safetensors"))
        save_file(tensors, str(staging / "optimizer.safetensors"))
        save_file(_plain(rng), str(staging / "rng.safetensors"))
        (staging / STATE_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")


def load_checkpoint(directory: Path, *, run: str, net: Any,
                    optimizer: torch.optim.Optimizer) -> Restored | None:
    """Restore ``net``, ``optimizer`` and the dropout RNG; None when there is no checkpoint of this run."""
    from safetensors.torch import load_file

    try:
        meta = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # none yet: the directory appears whole or not at all
    if meta.get("format_version") != FORMAT_VERSION or meta.get("run") != run:
        return None
    device = next(net.parameters()).device
    net.load_state_dict({k: v.to(device) for k, v in load_file(str(directory / "weights.safetensors")).items()})
    optimizer.load_state_dict(_optimizer_dict(load_file(str(directory / "optimizer.safetensors")),
                                              meta["optimizer_scalars"], meta["param_groups"]))
    rng = load_file(str(directory / "rng.safetensors"))
    torch.set_rng_state(rng["dropout"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    best = {k: v.to(device) for k, v in load_file(str(directory / "best.safetensors")).items()}
    return Restored(Progress(**meta["progress"]), best, rng["shuffle_epoch_start"])


def _plain(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors that share storage (tied weights) and non-contiguous views.
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def _optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, values in optimizer.state_dict()["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{key}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, scalars


def _optimizer_dict(tensors: dict[str, torch.Tensor], scalars: dict[str, Any],
                    param_groups: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for name, value in scalars.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in param_groups]
    return {"state": state, "param_groups": groups}
