"""The tabular recipe: the network and the model directory format.

A model directory holds three files and nothing executable:

- ``weights.safetensors``  the network's tensors (safetensors: no pickle, no code)
- ``model.json``           recipe, classes, architecture, encoded feature order, torch version
- ``preprocessing.json``   standardization statistics and the categories seen in fit

Loading reads only those files, so a model can be verified (signed as a directory) and then
loaded without ever unpickling bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from aire import atomic
from aire.errors import InputError
from aire.model.preprocessing import (  # noqa: F401  (re-exported)
    MISSING,
    PREPROCESSING_FILE,
    UNKNOWN,
    TabularPreprocessor,
)

FORMAT_VERSION = 1
RECIPE = "tabular"
WEIGHTS_FILE = "weights.safetensors"
MODEL_FILE = "model.json"
DEFAULT_DROPOUT = 0.1

ClassLabel = int | str


class TabularNet(nn.Module):
    """A plain MLP: Linear -> ReLU -> Dropout per hidden layer, then a linear head."""

    def __init__(self, input_dim: int, hidden: Sequence[int], n_classes: int,
                 dropout: float = DEFAULT_DROPOUT) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = input_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, n_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # type: ignore[no-any-return]


def label_classes(labels: pd.Series, label_column: str) -> list[ClassLabel]:
    """The sorted distinct label values as JSON-able ints or strings."""
    if labels.isna().any():
        raise InputError(f"column '{label_column}' breaks rule 'label not missing': "
                         f"{int(labels.isna().sum())} missing label(s)")
    values: set[ClassLabel] = set()
    for value in labels.unique():
        if isinstance(value, (bool, np.bool_, int, np.integer)):
            values.add(int(value))
        elif isinstance(value, (float, np.floating)) and float(value).is_integer():
            values.add(int(value))  # ints read back as floats (e.g. 1.0) are still ints
        elif isinstance(value, str):
            values.add(value)
        else:
            raise InputError(f"column '{label_column}' breaks rule 'label is an int or a string': "
                             f"got {value!r}")
    if len({type(v) for v in values}) > 1:
        raise InputError(f"column '{label_column}' breaks rule 'labels of one type': "
                         f"mixes ints and strings {sorted(map(str, values))}")
    return sorted(values)


def encode_labels(labels: pd.Series, classes: Sequence[ClassLabel],
                  label_column: str) -> np.ndarray:
    """Index of each label in ``classes``; a value not among them is an input error."""
    index_of: dict[object, int] = {value: i for i, value in enumerate(classes)}
    # Each distinct value is looked up once (a Python call per row costs a second at 1M
    # rows); the fancy index copies, so torch.from_numpy never sees a read-only view.
    inverse, uniques = pd.factorize(labels, use_na_sentinel=False)
    lookup = np.array([index_of.get(_label_key(v), -1) for v in uniques], dtype=np.int64)
    codes = lookup[inverse] if len(lookup) else np.zeros(0, dtype=np.int64)
    unknown = codes < 0
    if unknown.any():
        values = sorted({str(v) for v in labels[unknown]})[:5]
        raise InputError(f"column '{label_column}' breaks rule 'label in classes {list(classes)}': "
                         f"{int(unknown.sum())} row(s) with {values}")
    return codes


def resolve_device(preference: str | torch.device) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without a GPU is an input error."""
    text = str(preference).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(f"device '{preference}' was requested but this worker has no CUDA GPU "
                             "(torch.cuda.is_available() is False); use 'auto' or 'cpu'")
        device = torch.device(text)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"device '{preference}': this worker has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
        return device
    raise InputError(f"device '{preference}' is not one of 'auto', 'cpu', 'cuda', 'cuda:N'")


@dataclass
class TrainedModel:
    """A network with everything needed to score raw rows and to save it without pickle."""

    preprocessor: TabularPreprocessor
    net: TabularNet
    classes: list[ClassLabel]
    label: str
    hidden: tuple[int, ...]
    dropout: float = DEFAULT_DROPOUT
    recipe: str = field(default=RECIPE)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def encode_labels(self, labels: pd.Series) -> np.ndarray:
        """Class indices of ``labels``; a value the model has no output for is an input error."""
        return encode_labels(labels, self.classes, self.label)

    def predict_proba(self, df: pd.DataFrame, batch_size: int = 65536) -> np.ndarray:
        """Class probabilities, one row per input row, columns in ``classes`` order.

        Encodes and scores one slice at a time, so memory stays bounded by ``batch_size``
        whatever the size of ``df``.
        """
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        out = np.empty((len(df), len(self.classes)), dtype=np.float64)
        for start in range(0, len(df), batch_size):
            chunk = self.preprocessor.transform(df.iloc[start:start + batch_size])
            out[start:start + len(chunk)] = self.predict_proba_encoded(chunk)
        return out

    def predict_proba_encoded(self, encoded: np.ndarray) -> np.ndarray:
        """Class probabilities of rows already encoded by ``preprocessor.transform``.

        One CPU thread: this MLP's forward pass gains nothing from more, and on a busy
        worker spinning OpenMP threads made scoring many times slower.
        """
        self.net.eval()
        with torch.inference_mode(), cpu_threads_capped(1 if self.device.type == "cpu" else None):
            logits = self.net(torch.from_numpy(np.ascontiguousarray(encoded, dtype=np.float32))
                              .to(self.device))
            proba: np.ndarray = torch.softmax(logits, dim=1).double().cpu().numpy()
        return proba

    def save(self, model_dir: str | Path) -> Path:
        """Write the model directory atomically: a killed save leaves the old one intact."""
        target = Path(model_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic.replacing_directory(target) as staging:
            tensors = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
            save_file(tensors, str(staging / WEIGHTS_FILE), metadata={"format": "pt"})
            _write_json(staging / MODEL_FILE, self._model_json())
            _write_json(staging / PREPROCESSING_FILE, self.preprocessor.to_dict())
        return target

    def _model_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "recipe": self.recipe,
            "label": self.label,
            "classes": list(self.classes),
            "hidden": list(self.hidden),
            "dropout": self.dropout,
            "input_dim": self.preprocessor.input_dim,
            "feature_order": self.preprocessor.feature_names,
            "features": {"numeric": list(self.preprocessor.numeric),
                         "categorical": list(self.preprocessor.categorical)},
            "torch_version": torch.__version__,
        }


@contextmanager
def cpu_threads_capped(limit: int | None) -> Iterator[None]:
    """Cap torch's intra-op threads (``None``: leave them), restored after."""
    # Process-wide setting: fine for one training per worker process (Airflow tasks are).
    before = torch.get_num_threads()
    if limit is not None and limit >= 1:
        torch.set_num_threads(min(limit, before))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _label_key(value: object) -> object:
    # Labels read back from CSV as floats (1.0) or numpy scalars must match int classes.
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")




def read_model_json(root: Path, recipe: str, format_version: int) -> dict[str, Any]:
    """``model.json`` of a model directory, refused unless it is of this recipe and format."""
    try:
        meta: dict[str, Any] = json.loads((root / MODEL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{root}: not a readable model directory: {exc}") from None
    if meta.get("recipe") != recipe or meta.get("format_version") != format_version:
        raise InputError(f"{root / MODEL_FILE}: recipe/format {meta.get('recipe')!r}/"
                         f"{meta.get('format_version')!r} is not {recipe!r}/{format_version}")
    return meta


def load_model(model_dir: str | Path, device: str | torch.device = "cpu") -> TrainedModel:
    """Load a model directory written by ``TrainedModel.save``; reads safetensors and JSON only."""
    root = Path(model_dir)
    meta = read_model_json(root, RECIPE, FORMAT_VERSION)
    try:
        prep_data = json.loads((root / PREPROCESSING_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{root}: not a readable model directory: {exc}") from None
    preprocessor = TabularPreprocessor.from_dict(prep_data)
    if preprocessor.input_dim != meta.get("input_dim"):
        raise InputError(f"{root}: preprocessing gives {preprocessor.input_dim} inputs, "
                         f"model.json says {meta.get('input_dim')}")
    target = resolve_device(device)
    try:
        hidden = tuple(int(h) for h in meta["hidden"])
        classes: list[ClassLabel] = list(meta["classes"])
        net = TabularNet(preprocessor.input_dim, hidden, len(classes), float(meta["dropout"]))
        net.load_state_dict(load_file(str(root / WEIGHTS_FILE), device=str(target)))
        label = str(meta["label"])
    except (KeyError, TypeError, ValueError, RuntimeError, OSError, SafetensorError) as exc:
        raise InputError(f"{root}: weights do not match model.json: {exc}") from None
    net.to(target).eval()
    return TrainedModel(preprocessor, net, classes, label, hidden, float(meta["dropout"]))
