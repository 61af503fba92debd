"""The transformer recipe's model directory: what ``transformers`` saves, plus ``model.json``.

- ``model.safetensors`` and ``config.json``  the fine-tuned network (LoRA adapters merged
  in, so a reader needs neither peft nor the base)
- tokenizer files (``tokenizer.json``, ``tokenizer_config.json``, ``vocab.txt`` ...)
- ``model.json``  recipe, classes, label and text columns, max_length, the base's digest

Loading reads safetensors and JSON only: ``use_safetensors`` refuses a pickle checkpoint
and ``trust_remote_code`` stays off, so nothing in the directory runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from aire import atomic
from aire.errors import InputError
from aire.model.tabular import ClassLabel, encode_labels, read_model_json, resolve_device

FORMAT_VERSION = 1
RECIPE = "transformer"
MODEL_FILE = "model.json"


@dataclass
class TextModel:
    """A sequence classifier and its tokenizer, with what scoring raw rows needs."""

    net: Any  # a transformers PreTrainedModel for sequence classification
    tokenizer: Any  # its PreTrainedTokenizerFast
    classes: list[ClassLabel]
    label: str
    text_column: str
    max_length: int
    base_digest: str

    @property
    def device(self) -> torch.device:
        device: torch.device = next(self.net.parameters()).device
        return device

    def encode_labels(self, labels: pd.Series) -> np.ndarray:
        return encode_labels(labels, self.classes, self.label)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """One padded batch on the model's device."""
        batch = self.tokenizer(list(texts), padding=True, truncation=True,
                               max_length=self.max_length, return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items()}

    def predict_proba(self, df: pd.DataFrame, batch_size: int = 64) -> np.ndarray:
        """Class probabilities, one row per input row, columns in ``classes`` order."""
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        texts = checked_texts(df, self.text_column)
        out = np.empty((len(texts), len(self.classes)), dtype=np.float64)
        self.net.eval()
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                logits = self.net(**self.tokenize(texts[start:start + batch_size])).logits
                out[start:start + len(logits)] = torch.softmax(logits.float(), dim=1).double().cpu().numpy()
        return out

    def save(self, model_dir: str | Path) -> Path:
        """Write the model directory atomically: a killed save leaves the old one intact."""
        target = Path(model_dir)
        with atomic.replacing_directory(target) as staging, quiet_transformers():
            self.net.save_pretrained(staging, safe_serialization=True)
            self.tokenizer.save_pretrained(staging)
            (staging / MODEL_FILE).write_text(json.dumps(self._model_json(), indent=2, sort_keys=True)
                                              + "\n", encoding="utf-8")
        return target

    def _model_json(self) -> dict[str, Any]:
        import transformers

        return {"format_version": FORMAT_VERSION, "recipe": RECIPE, "label": self.label,
                "classes": list(self.classes), "text_column": self.text_column,
                "max_length": self.max_length, "base_digest": self.base_digest,
                "transformers_version": transformers.__version__,
                "torch_version": torch.__version__}


def checked_texts(df: pd.DataFrame, column: str) -> list[str]:
    """The column's values as strings; a missing column or a null/non-text cell is an input error."""
    if column not in df.columns:
        raise InputError(f"column '{column}' breaks rule 'required text column': not in the data")
    values = df[column]
    bad = values.isna() | ~values.map(lambda v: isinstance(v, str))
    if bad.any():
        rows = [str(i) for i in values.index[bad][:5]]
        raise InputError(f"column '{column}' breaks rule 'text is a string': {int(bad.sum())} "
                         f"row(s) null or not text (rows {', '.join(rows)})")
    texts: list[str] = values.tolist()
    return texts


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No load reports or progress bars on stderr (a task log is not a terminal); restored after."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def load_pretrained(directory: Path, num_labels: int | None = None) -> tuple[Any, Any]:
    """(sequence classifier, tokenizer) from a local directory: safetensors, no remote code."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    # A missing directory would otherwise be taken for a hub repo id ("Repo id must be ...").
    if not directory.is_dir():
        raise InputError(f"{directory}: no such directory (a base or model directory is local)")
    extra = {} if num_labels is None else {"num_labels": num_labels}
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True,
                                                      trust_remote_code=False)
            net = AutoModelForSequenceClassification.from_pretrained(
                directory, local_files_only=True, use_safetensors=True, trust_remote_code=False,
                **extra)
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{directory}: not a loadable transformers directory: {exc}") from None
    return net, tokenizer


def load_text_model(model_dir: str | Path, device: str | torch.device = "cpu") -> TextModel:
    """Load a directory written by ``TextModel.save`` (verify its signature first)."""
    root = Path(model_dir)
    meta = read_model_json(root, RECIPE, FORMAT_VERSION)
    net, tokenizer = load_pretrained(root)
    classes: list[ClassLabel] = list(meta["classes"])
    if net.config.num_labels != len(classes):
        raise InputError(f"{root}: config.json has {net.config.num_labels} labels, model.json "
                         f"{len(classes)} classes")
    net.to(resolve_device(device)).eval()
    return TextModel(net, tokenizer, classes, str(meta["label"]), str(meta["text_column"]),
                     int(meta["max_length"]), str(meta["base_digest"]))
