"""A pretrained base is supply-chain input: pin its digest, verify it before any use.

The digest of a directory is the one model-signing gives it as a signing subject: sha256
over the sha256 of every file, in sorted path order, hashed by the same hashing config
that signs and verifies AIRE's models (so a signed base and a pinned base agree on its
identity). ``model.base_digest`` in the config pins it; ``aire base-digest DIR`` prints it.

Beyond the digest, a base must be loadable without running anything it ships: weights in
safetensors only (no pickle checkpoints beside them), no Python files, and no ``auto_map``
in ``config.json`` (it tells ``transformers`` to import code from the directory).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from aire import atomic
from aire.data.storage import S3Settings, clean_key, download_s3_object, parse_s3_uri, s3_client
from aire.errors import InputError, VerificationError
from aire.trust.manifest_checks import checked_model_dir, hashing_config_for, refuse_unsafe_files

# Weight formats that unpickle (or may) on load; a base ships safetensors instead.
_PICKLED_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib"})
_CODE_SUFFIXES = frozenset({".py", ".pyc", ".so"})


@dataclass(frozen=True)
class VerifiedBase:
    path: Path
    digest: str
    files: dict[str, str]  # relative path -> sha256 hex


def directory_digest(base_dir: Path) -> tuple[str, dict[str, str]]:
    """(digest, {relative path: sha256}) of every file under ``base_dir``."""
    root = checked_model_dir(base_dir)
    # No signature lies inside a base, so the ignore list is empty: the name is never there.
    config = hashing_config_for(root, root.parent / f"{root.name}.sig")
    files = {rd.identifier: rd.digest.digest_hex for rd in config.hash(root).resource_descriptors()}
    if not files:
        raise VerificationError(f"{root}: the base directory holds no files")
    overall = hashlib.sha256()
    for name in sorted(files):
        overall.update(bytes.fromhex(files[name]))
    return overall.hexdigest(), files


def verify_base(base_dir: Path, pinned_digest: str) -> VerifiedBase:
    """``base_dir`` as pinned and safe to load, or VerificationError naming what is wrong."""
    root = checked_model_dir(base_dir)
    digest, files = directory_digest(root)
    if digest != pinned_digest.lower():
        listing = ", ".join(f"{name} {files[name][:12]}" for name in sorted(files)[:8])
        raise VerificationError(f"{root}: base digest {digest} is not the pinned model.base_digest "
                                f"{pinned_digest} (files: {listing}); a changed or swapped base "
                                "is never fine-tuned")
    _refuse_unloadable(root, files)
    return VerifiedBase(root, digest, files)


def _refuse_unloadable(root: Path, files: dict[str, str]) -> None:
    pickled = sorted(n for n in files if Path(n).suffix.lower() in _PICKLED_SUFFIXES)
    if pickled:
        raise VerificationError(f"{root / pickled[0]}: a pickle-format checkpoint; a base "
                                "ships its weights as safetensors only")
    code = sorted(n for n in files if Path(n).suffix.lower() in _CODE_SUFFIXES)
    if code:
        raise VerificationError(f"{root / code[0]}: code inside a base; nothing in it may run")
    if not any(n.endswith(".safetensors") for n in files):
        raise VerificationError(f"{root}: no .safetensors weights in the base")
    if "config.json" not in files:
        raise VerificationError(f"{root}: no config.json in the base")
    try:
        config = json.loads((root / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VerificationError(f"{root / 'config.json'}: not readable JSON: {exc}") from None
    if isinstance(config, dict) and config.get("auto_map"):
        raise VerificationError(f"{root / 'config.json'}: 'auto_map' asks to import code from "
                                "the base; only built-in architectures are loaded")
    refuse_unsafe_files(root, files)


def resolve_base(base: str, pinned_digest: str, cache_root: Path,
                 settings: S3Settings | None = None) -> VerifiedBase:
    """A local base verified in place, or an ``s3://`` prefix fetched into the cache, then verified.

    A fetched base is kept under ``cache_root/<pinned digest>`` and re-verified on every use,
    so a cache someone edited is refused like any other changed base.
    """
    if not base.startswith("s3://"):
        if "://" in base:
            raise InputError(f"model.base '{base}': a local directory or an s3:// prefix")
        return verify_base(Path(base).expanduser(), pinned_digest)
    target = cache_root / pinned_digest.lower()
    if target.is_dir():
        return verify_base(target, pinned_digest)
    _fetch_prefix(base, target, settings)
    try:
        return verify_base(target, pinned_digest)
    except VerificationError:
        # Not kept: once the prefix holds the pinned base again, the next run fetches it.
        shutil.rmtree(target, ignore_errors=True)
        raise


def _fetch_prefix(uri: str, target: Path, settings: S3Settings | None) -> None:
    bucket, prefix = parse_s3_uri(uri, require_key=False)
    prefix = f"{clean_key(prefix)}/" if prefix.strip("/") else ""
    client = s3_client(settings)
    keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix) for item in page.get("Contents", [])]
    if not keys:
        raise InputError(f"model.base '{uri}': no objects under this prefix")
    # Downloaded into a staging folder that takes the cache's place whole: a killed fetch
    # leaves no half-filled directory that a later run would take for the base.
    with atomic.replacing_directory(target) as staging:
        for key in keys:
            download_s3_object(client, bucket, key, staging / clean_key(key[len(prefix):]))
