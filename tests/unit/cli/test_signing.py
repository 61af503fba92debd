"""`aire sign` / `aire verify` as a user runs them: exit status and reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

AIRE = str(Path(sys.executable).with_name("aire"))


def aire(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if k not in ("AIRE_INCIDENTS_DB", "AIRE_LOCK_URL")},
           "AIRE_HOME": str(home), **(env or {})}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([AIRE, *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    save_file({"w": torch.arange(64, dtype=torch.float32)}, str(model / "weights.safetensors"))
    (model / "model.json").write_text(json.dumps({"recipe": "tabular", "classes": [0, 1]}))
    return model


def test_sign_then_verify_with_the_homes_key(tmp_path: Path, model_dir: Path) -> None:
    signed = aire(tmp_path / "home", "sign", "--model", str(model_dir))
    assert signed.returncode == 0, signed.stderr
    digest = json.loads(signed.stdout)["digest"]
    assert (tmp_path / "model.sig").is_file()
    verified = aire(tmp_path / "home", "verify", "--model", str(model_dir))
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["digest"] == digest


def test_verify_fails_naming_the_changed_file(tmp_path: Path, model_dir: Path) -> None:
    assert aire(tmp_path / "home", "sign", "--model", str(model_dir)).returncode == 0
    (model_dir / "model.json").write_text(json.dumps({"recipe": "tabular", "classes": [1, 0]}))
    verified = aire(tmp_path / "home", "verify", "--model", str(model_dir))
    assert verified.returncode == 2
    assert "changed bytes in model.json" in verified.stderr and verified.stdout == ""


def test_verify_with_another_public_key_fails(tmp_path: Path, model_dir: Path) -> None:
    assert aire(tmp_path / "home", "sign", "--model", str(model_dir)).returncode == 0
    other = tmp_path / "other-home"
    assert aire(other, "sign", "--model", str(model_dir), "--signature", str(tmp_path / "x.sig")).returncode == 0
    verified = aire(tmp_path / "home", "verify", "--model", str(model_dir),
                    "--public-key", str(other / "keys" / "signing.pub"))
    assert verified.returncode == 2 and "key" in verified.stderr


def test_sign_with_an_explicit_key_and_signature_path(tmp_path: Path, model_dir: Path) -> None:
    from aire.trust.keys import ensure_keypair

    pair = ensure_keypair(tmp_path / "keys")
    signature = tmp_path / "elsewhere.sig"
    assert aire(tmp_path / "home", "sign", "--model", str(model_dir), "--key", str(pair.private),
                "--signature", str(signature)).returncode == 0
    ok = aire(tmp_path / "home", "verify", "--model", str(model_dir), "--signature", str(signature),
              "--public-key", str(pair.public))
    assert ok.returncode == 0, ok.stderr


def test_verify_without_a_public_key_or_target_explains(tmp_path: Path, model_dir: Path) -> None:
    missing = aire(tmp_path / "empty-home", "verify", "--model", str(model_dir))
    assert missing.returncode == 2 and "no public key" in missing.stderr
    assert aire(tmp_path / "home", "sign", "--model", str(model_dir)).returncode == 0
    nothing = aire(tmp_path / "home", "verify")
    assert nothing.returncode == 2 and "--model" in nothing.stderr


def test_a_home_on_services_signs_and_verifies_only_with_a_key_given(tmp_path: Path, model_dir: Path) -> None:
    from aire.trust.keys import ensure_keypair

    services = {"AIRE_INCIDENTS_DB": "postgresql+psycopg://aire@db.invalid:5432/aire"}  # never connected to
    home = tmp_path / "worker-home"
    refused = aire(home, "sign", "--model", str(model_dir), env=services)
    assert refused.returncode == 2 and "no shared signing key to sign with" in refused.stderr
    assert "signing.conn_id" in refused.stderr and not (home / "keys" / "signing.key").exists()
    pair = ensure_keypair(tmp_path / "shared-keys")  # the deployment's key, as a secret hands it over
    assert aire(home, "sign", "--model", str(model_dir), "--key", str(pair.private), env=services).returncode == 0
    refused = aire(home, "verify", "--model", str(model_dir), env=services)
    assert refused.returncode == 2 and "no shared signing key to verify with" in refused.stderr
    verified = aire(home, "verify", "--model", str(model_dir), "--public-key", str(pair.public), env=services)
    assert verified.returncode == 0, verified.stderr


def test_base_digest_prints_what_model_base_digest_pins(tmp_path: Path) -> None:
    from aire.trust.base import verify_base
    from tests.support.text_models import files_of_a_base

    base = files_of_a_base(tmp_path / "base")
    printed = aire(tmp_path / "home", "base-digest", str(base))
    assert printed.returncode == 0, printed.stderr
    out = json.loads(printed.stdout)
    assert verify_base(base, out["digest"]).digest == out["digest"]
    assert sorted(out["files"]) == ["config.json", "model.safetensors", "tokenizer.json", "vocab.txt"]

    (base / "pytorch_model.bin").write_bytes(b"\x80\x04pickled")  # never pinned: it would be refused
    refused = aire(tmp_path / "home", "base-digest", str(base))
    assert refused.returncode == 2 and "pickle-format checkpoint" in refused.stderr
