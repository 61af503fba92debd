"""aire.trust.base: a pretrained base is pinned by digest and refused when changed or unsafe to load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aire.errors import InputError, VerificationError
from aire.trust.base import directory_digest, resolve_base, verify_base
from aire.trust.keys import ensure_keypair
from aire.trust.signing import sign_model
from tests.support.text_models import files_of_a_base


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return files_of_a_base(tmp_path / "base")


def test_digest_is_the_one_model_signing_gives_the_directory(base: Path, tmp_path: Path) -> None:
    digest, files = directory_digest(base)
    signed = sign_model(base, tmp_path / "base.sig", private_key=ensure_keypair(tmp_path / "keys").private)
    assert digest == signed.digest
    assert sorted(files) == sorted(signed.files) == ["config.json", "model.safetensors", "tokenizer.json",
                                                    "vocab.txt"]


def test_the_pinned_base_verifies(base: Path) -> None:
    digest, _ = directory_digest(base)
    verified = verify_base(base, digest)
    assert verified.digest == digest and verified.path == base.resolve()
    assert set(verified.files) == {"config.json", "model.safetensors", "tokenizer.json", "vocab.txt"}


@pytest.mark.parametrize("change", ["tokenizer byte", "added file", "removed file"])
def test_a_changed_base_is_refused(base: Path, change: str) -> None:
    pinned, _ = directory_digest(base)
    if change == "tokenizer byte":
        (base / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n")
    elif change == "added file":
        (base / "special_tokens_map.json").write_text("{}")
    else:
        (base / "tokenizer.json").unlink()
    with pytest.raises(VerificationError, match="is not the pinned model.base_digest"):
        verify_base(base, pinned)


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("pytorch_model.bin", b"\x80\x04pickled", "pickle-format checkpoint"),
    ("modeling_evil.py", b"import os\n", "code inside a base"),
])
def test_a_base_that_would_run_code_is_refused_even_when_pinned(base: Path, name: str, content: bytes,
                                                                 reason: str) -> None:
    (base / name).write_bytes(content)
    pinned, _ = directory_digest(base)  # pinned as it is: the digest alone does not make it safe
    with pytest.raises(VerificationError, match=reason):
        verify_base(base, pinned)


def test_auto_map_is_refused(base: Path) -> None:
    (base / "config.json").write_text(json.dumps({"model_type": "bert",
                                                  "auto_map": {"AutoModel": "evil.Model"}}))
    pinned, _ = directory_digest(base)
    with pytest.raises(VerificationError, match="auto_map"):
        verify_base(base, pinned)


def test_pickle_inside_safetensors_is_refused(base: Path) -> None:
    (base / "model.safetensors").write_bytes(b"\x80\x04\x95pickled")
    pinned, _ = directory_digest(base)
    with pytest.raises(VerificationError, match="pickle data where safetensors weights belong"):
        verify_base(base, pinned)


@pytest.mark.parametrize("missing", ["model.safetensors", "config.json"])
def test_a_base_without_weights_or_config_is_refused(base: Path, missing: str) -> None:
    (base / missing).unlink()
    pinned, _ = directory_digest(base)
    with pytest.raises(VerificationError, match=f"no {'.safetensors weights' if 'safe' in missing else 'config.json'}"):
        verify_base(base, pinned)


def test_a_missing_base_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VerificationError, match="not found"):
        verify_base(tmp_path / "nowhere", "0" * 64)


def test_resolve_base_verifies_a_local_directory_and_refuses_other_schemes(base: Path, tmp_path: Path) -> None:
    pinned, _ = directory_digest(base)
    assert resolve_base(str(base), pinned, tmp_path / "cache").digest == pinned
    with pytest.raises(InputError, match="a local directory or an s3:// prefix"):
        resolve_base("hf://sentence-transformers/all-MiniLM-L6-v2", pinned, tmp_path / "cache")
