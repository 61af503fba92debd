"""A tiny transformer base with random weights and a keyword-labelled text table, built in the test.

Seconds on CPU, nothing downloaded: every code path of the transformer recipe runs on it.
The texts are merchant-style descriptions whose category is given by one keyword among
filler words, so a fine-tuned model can reach near-perfect accuracy and an untrained one
cannot beat chance.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
KEYWORDS = {
    "food": ["coffee", "cafe", "bakery", "pizza"],
    "travel": ["taxi", "airline", "hotel", "railway"],
    "fuel": ["fuel", "petrol", "diesel", "charging"],
}
FILLER = ["the", "a", "and", "of", "shop", "store", "city", "north", "service", "ltd", "co", "main"]


def tiny_base(directory: Path, seed: int = 0) -> Path:
    """Save a 2-layer, 32-wide BERT with random weights and its word-piece tokenizer."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    words = SPECIAL + sorted({w for ws in KEYWORDS.values() for w in ws} | set(FILLER))
    # transformers 5 takes the vocabulary itself (vocab_file= is silently ignored: all [UNK]).
    vocab = {word: i for i, word in enumerate(words)}
    BertTokenizerFast(vocab=vocab, do_lower_case=True).save_pretrained(directory)
    config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(seed)
    BertForMaskedLM(config).save_pretrained(directory, safe_serialization=True)
    return directory


def keyword_texts(rows: int, seed: int, text: str = "description", label: str = "category") -> pd.DataFrame:
    """``rows`` texts: one category keyword among 3-6 filler words, labelled by the keyword."""
    rng = np.random.default_rng(seed)
    categories = sorted(KEYWORDS)
    records = []
    for _ in range(rows):
        category = categories[rng.integers(len(categories))]
        words = list(rng.choice(FILLER, size=rng.integers(3, 7)))
        words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(KEYWORDS[category])))
        records.append({text: " ".join(words), label: category})
    return pd.DataFrame(records)


def files_of_a_base(directory: Path) -> Path:
    """What the trust checks read of a base, in milliseconds: a valid safetensors file, config and
    tokenizer files. Not loadable as a model (``tiny_base`` is)."""
    from safetensors.numpy import save_file

    directory.mkdir(parents=True)
    save_file({"embeddings.weight": np.arange(12, dtype=np.float32).reshape(3, 4)},
              str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 4}))
    (directory / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {"[UNK]": 0}}}))
    (directory / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    return directory
