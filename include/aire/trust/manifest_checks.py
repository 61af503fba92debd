"""The checks around model-signing: what a bundle may say, and what a file may hold.

model-signing verifies that the listed files hash to what was signed. These checks add
what it leaves to the caller: a manifest that stays inside the model directory and skips
nothing but signature files (model-signing honours a signed ignore-list, so a bundle
could otherwise leave the weights out), no pickles where weights belong, and a reason
that names the file when the directory no longer matches.
"""

from __future__ import annotations

import base64
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from model_signing import hashing

from aire.errors import VerificationError

_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
_SERIALIZATION = {"method": "files", "hash_type": "sha256", "allow_symlinks": False}
_PICKLE_PROTO = b"\x80"  # pickle protocols 2-5 start with PROTO (0x80)


@dataclass(frozen=True)
class SignedManifest:
    model_name: str
    digest: str
    resources: dict[str, str]  # relative path -> sha256 hex


def describe_mismatch(model_dir: Path, signed: SignedManifest,
                       hashing_config: hashing.Config) -> str:
    # The signature itself held (model-signing compares files only after that), so
    # the signed digests are trustworthy: re-hash to say exactly which file differs.
    actual = {rd.identifier: rd.digest.digest_hex
              for rd in hashing_config.hash(model_dir).resource_descriptors()}
    expected = signed.resources
    changed = sorted(n for n in expected.keys() & actual.keys() if expected[n] != actual[n])
    missing = sorted(expected.keys() - actual.keys())
    added = sorted(actual.keys() - expected.keys())
    if len(changed) + len(missing) > len(expected) / 2:
        differing = ", ".join(changed + missing)
        return (f"signature belongs to another model (signed as '{signed.model_name}', digest "
                f"{signed.digest}): {len(changed) + len(missing)} of {len(expected)} signed "
                f"files differ: {differing}")
    reasons = [f"changed bytes in {name}" for name in changed]
    for old in list(missing):
        new = next((n for n in added if actual[n] == expected[old]), None)
        if new is not None:
            reasons.append(f"file renamed after signing: {old} -> {new}")
            missing.remove(old)
            added.remove(new)
    reasons += [f"file removed after signing: {name}" for name in missing]
    reasons += [f"file added after signing: {name}" for name in added]
    return "; ".join(reasons) or "model changed while it was being verified"



def checked_model_dir(model_dir: Path) -> Path:
    if not model_dir.is_dir():
        raise VerificationError(f"{model_dir}: model directory not found")
    return model_dir.resolve()


def hashing_config_for(model_dir: Path, signature_path: Path) -> hashing.Config:
    # Git paths are not skipped: everything in a model directory is signed (pitfall 9:
    # model-signing's API does not skip a signature inside the directory by itself).
    signature = signature_path.resolve()
    ignored = [signature.relative_to(model_dir)] if signature.is_relative_to(model_dir) else []
    config = hashing.Config()  # type: ignore[no-untyped-call]  # untyped upstream
    return config.set_ignored_paths(paths=ignored, ignore_git_paths=False)


def read_signature(signature_path: Path) -> bytes:
    try:
        return signature_path.read_bytes()
    except OSError as exc:
        raise VerificationError(f"{signature_path}: cannot read signature: {exc}") from exc


def parse_bundle(bundle: bytes, signature_path: Path) -> SignedManifest:
    """Read the statement of a bundle and refuse manifests we would never sign."""
    try:
        envelope = json.loads(bundle)["dsseEnvelope"]
        statement = json.loads(base64.b64decode(envelope["payload"], validate=True))
        predicate_type = statement["predicateType"]
        (subject,) = statement["subject"]
        serialization_args = dict(statement["predicate"]["serialization"])
        entries = [(r["name"], r["algorithm"], r["digest"])
                   for r in statement["predicate"]["resources"]]
        name, digest = str(subject["name"]), str(subject["digest"]["sha256"])
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise VerificationError(f"{signature_path}: not a model-signing bundle "
                                f"({type(exc).__name__}: {exc})") from exc
    if predicate_type != _PREDICATE_TYPE:
        raise VerificationError(f"{signature_path}: predicate type {predicate_type!r} is not "
                                f"{_PREDICATE_TYPE}")
    excluded = serialization_args.pop("ignore_paths", [])
    if serialization_args != _SERIALIZATION:
        raise VerificationError(f"{signature_path}: serialization {serialization_args} is not "
                                f"the one AIRE signs with ({_SERIALIZATION})")
    for path in excluded:
        _check_relative(path, signature_path)
        if not str(path).endswith(".sig"):
            raise VerificationError(f"{signature_path}: manifest excludes '{path}' from "
                                    "signing; only signature files may be excluded")
    resources: dict[str, str] = {}
    for entry, algorithm, entry_digest in entries:
        _check_relative(entry, signature_path)
        if algorithm != "sha256" or entry in resources:
            raise VerificationError(f"{signature_path}: manifest entry '{entry}' is duplicated "
                                    f"or not sha256 ({algorithm})")
        resources[str(entry)] = str(entry_digest)
    return SignedManifest(name, digest, resources)


def _check_relative(entry: object, signature_path: Path) -> None:
    path = PurePosixPath(str(entry))
    if (not isinstance(entry, str) or not entry or path.is_absolute() or ".." in path.parts
            or "\\" in entry or "\x00" in entry):
        raise VerificationError(f"{signature_path}: manifest entry '{entry}' escapes the model "
                                "directory (absolute path or '..')")


def refuse_unsafe_files(model_dir: Path, names: dict[str, str]) -> None:
    for name in sorted(names):
        problem = _unsafe_content(model_dir / name)
        if problem:
            raise VerificationError(f"{model_dir / name}: {problem}; refusing to load it")


def _unsafe_content(path: Path) -> str | None:
    """Why loading ``path`` could run code or misread weights; None when it is safe."""
    from safetensors import SafetensorError, safe_open

    with path.open("rb") as handle:  # one open per file: models may hold thousands
        head = handle.read(1)
        if path.suffix == ".safetensors":
            try:
                with safe_open(str(path), framework="numpy"):
                    return None  # the header parsed and covers the file exactly
            except SafetensorError as exc:
                if head == _PICKLE_PROTO:
                    return "pickle data where safetensors weights belong"
                return f"not a valid safetensors file ({exc})"
        if head == _PICKLE_PROTO:
            return "pickle data (starts with the pickle protocol byte 0x80)"
        try:
            with zipfile.ZipFile(handle) as archive:
                pickled = [n for n in archive.namelist() if n.endswith(".pkl")]
        except zipfile.BadZipFile:
            return None  # not a zip; random bytes can end in a stray zip signature
    return f"torch zip checkpoint with pickled {pickled[0]}" if pickled else None
