"""Sign and verify model directories with OpenSSF model-signing.

A model is a directory (safetensors weights plus small JSON files). Its signature is
a Sigstore bundle, normally beside the directory (``<run_dir>/model.sig``); a
signature inside the directory is excluded from what it signs. The bundle carries an
in-toto statement listing every file with its sha256; its subject digest (a sha256
over those file digests) is the model's identity in the ledger and the registry.

Verification fails closed: any doubt raises ``VerificationError`` with a reason that
names the file. Before model-signing is trusted with the bundle we check its
manifest ourselves (no ``..`` or absolute paths, only signature files excluded), and
after the signature holds we check that no file is a pickle, because a signature only
says who produced the bytes, not that loading them is safe.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import model_signing
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from model_signing import hashing

from aire.errors import AireError, InputError, VerificationError

PRIVATE_KEY_NAME = "signing.key"  # PEM (PKCS#8, unencrypted, mode 0600)
PUBLIC_KEY_NAME = "signing.pub"  # PEM; Home.public_key points here
_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
_SERIALIZATION = {"method": "files", "hash_type": "sha256", "allow_symlinks": False}
_PICKLE_PROTO = b"\x80"  # pickle protocols 2-5 start with PROTO (0x80)


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path

    def to_dict(self) -> dict[str, str]:
        return {"private": str(self.private), "public": str(self.public)}


@dataclass(frozen=True)
class SignResult:
    digest: str
    files: tuple[str, ...]
    signature_path: Path

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "files": list(self.files),
                "signature_path": str(self.signature_path)}


@dataclass(frozen=True)
class VerifyResult:
    digest: str
    files: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "files": list(self.files)}


@dataclass(frozen=True)
class SigstoreIdentity:
    """Who must have signed, for Sigstore keyless signing (needs Fulcio, Rekor, OIDC).

    ``trust_config`` is a ClientTrustConfig JSON file; without it the trust root is
    fetched over TUF, which needs network access.
    """

    identity: str
    oidc_issuer: str
    use_staging: bool = False
    trust_config: Path | None = None

    def __post_init__(self) -> None:
        if not self.identity.strip():
            raise InputError("SigstoreIdentity: identity must not be empty")
        local = self.oidc_issuer.startswith(("http://127.0.0.1", "http://localhost"))
        if not (self.oidc_issuer.startswith("https://") or local):
            raise InputError(f"SigstoreIdentity: oidc_issuer must be an https URL, "
                             f"got {self.oidc_issuer!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"identity": self.identity, "oidc_issuer": self.oidc_issuer,
                "use_staging": self.use_staging,
                "trust_config": str(self.trust_config) if self.trust_config else None}


@dataclass(frozen=True)
class _SignedManifest:
    model_name: str
    digest: str
    resources: dict[str, str]  # relative path -> sha256 hex


def _signing_config() -> model_signing.signing.Config:
    return model_signing.signing.Config()  # type: ignore[no-untyped-call]  # untyped upstream


def _verifying_config() -> model_signing.verifying.Config:
    return model_signing.verifying.Config()  # type: ignore[no-untyped-call]  # untyped upstream


# --- keys ------------------------------------------------------------------------------
def ensure_keypair(keys_dir: Path) -> KeyPair:
    """The EC P-256 key pair under ``keys_dir``, generated on first use.

    Two processes racing here both end up with the same pair: each writes a temporary
    file and hard-links it into place only if the name is still free.
    """
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    pair = KeyPair(keys_dir / PRIVATE_KEY_NAME, keys_dir / PUBLIC_KEY_NAME)
    if not pair.private.exists():
        fresh = ec.generate_private_key(ec.SECP256R1())
        _link_if_absent(pair.private, fresh.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()), mode=0o600)
    mode = pair.private.stat().st_mode & 0o777
    if mode & 0o077:
        raise InputError(f"{pair.private}: private key is readable by others "
                         f"(mode {mode:o}); run chmod 600")
    try:
        key = serialization.load_pem_private_key(pair.private.read_bytes(), password=None)
    except ValueError as exc:
        raise InputError(f"{pair.private}: not an unencrypted PEM private key: {exc}") from exc
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    # Derived from the private key, so whoever wins this link writes the same bytes.
    _link_if_absent(pair.public, public_pem, mode=0o644)
    if pair.public.read_bytes() != public_pem:
        raise InputError(f"{pair.public} is not the public half of {pair.private}")
    return pair


def _link_if_absent(dest: Path, data: bytes, *, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.tmp-")
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        try:
            os.link(tmp, dest)
        except FileExistsError:
            pass  # another process won the race; its file is complete (linked after fsync)
    finally:
        os.unlink(tmp)


def _write_atomic(dest: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.tmp-")
    try:
        os.fchmod(fd, 0o644)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- sigstore keyless ----------------------------------------------------------------
def sigstore_signing_config(identity: SigstoreIdentity, *,
                            identity_token: str | None = None) -> model_signing.signing.Config:
    """A model-signing signing Config for keyless signing; contacts the OIDC issuer.

    Without ``identity_token`` an ambient credential (CI workload identity) must exist:
    model-signing would otherwise start an interactive browser login inside a worker.
    """
    from sigstore.errors import Error as SigstoreError
    from sigstore.oidc import IssuerError, detect_credential

    try:
        token = identity_token or detect_credential()
        if not token:
            raise InputError(f"no OIDC token for Sigstore signing as {identity.identity}: "
                             "pass identity_token or run where ambient credentials exist")
        return _signing_config().use_sigstore_signer(
            oidc_issuer=identity.oidc_issuer, use_staging=identity.use_staging,
            identity_token=token, trust_config=identity.trust_config)
    except (SigstoreError, IssuerError) as exc:  # network or issuer trouble: retryable
        raise AireError(f"cannot set up Sigstore signing with {identity.oidc_issuer}: "
                        f"{type(exc).__name__}: {exc}") from exc


def sigstore_verifying_config(identity: SigstoreIdentity) -> model_signing.verifying.Config:
    """A model-signing verifying Config that accepts only ``identity`` from its issuer."""
    from sigstore.errors import Error as SigstoreError

    try:
        return _verifying_config().use_sigstore_verifier(
            identity=identity.identity, oidc_issuer=identity.oidc_issuer,
            use_staging=identity.use_staging, trust_config=identity.trust_config)
    except SigstoreError as exc:
        raise AireError(f"cannot load the Sigstore trust root ({exc}); offline, set "
                        "SigstoreIdentity.trust_config (see write_offline_trust_config)") from exc


def write_offline_trust_config(dest: Path, *, staging: bool = False) -> Path:
    """Write the Sigstore trust root that sigstore-python has cached or embedded.

    For air-gapped verification. It is a snapshot: refresh it where network exists.
    """
    from sigstore.models import ClientTrustConfig

    config = (ClientTrustConfig.staging if staging else ClientTrustConfig.production)(
        offline=True)
    _write_atomic(dest, config._inner.to_json().encode())  # no public serializer in 4.5
    return dest


# --- signing ---------------------------------------------------------------------------
def sign_model(model_dir: Path, signature_path: Path, *, private_key: Path | None = None,
               certificate: Path | None = None, chain: Sequence[Path] = (),
               sigstore: SigstoreIdentity | None = None,
               identity_token: str | None = None) -> SignResult:
    """Sign every file of ``model_dir``; write the bundle atomically to ``signature_path``.

    Signs with ``private_key`` (plus ``certificate`` and its ``chain``, if given) or
    keyless with ``sigstore``. A directory holding pickled weights is not signed.
    """
    model_dir = _model_dir(model_dir)
    if sigstore is not None and private_key is None:
        config = sigstore_signing_config(sigstore, identity_token=identity_token)
    elif private_key is not None and sigstore is None:
        base = _signing_config()
        try:
            config = (base.use_certificate_signer(private_key=private_key,
                                                  signing_certificate=certificate,
                                                  certificate_chain=chain)
                      if certificate is not None else base.use_elliptic_key_signer(
                          private_key=private_key))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot use signing key {private_key}: {exc}") from exc
    else:
        raise InputError("sign_model needs exactly one of private_key or sigstore")
    config.set_hashing_config(_hashing_config(model_dir, signature_path))
    with tempfile.TemporaryDirectory() as scratch:
        staged = Path(scratch) / "model.sig"  # not inside model_dir while it is hashed
        try:
            config.sign(model_dir, staged)
        except ValueError as exc:
            raise InputError(f"{model_dir}: cannot sign: {exc}") from exc
        bundle = staged.read_bytes()
    signed = _parse_bundle(bundle, signature_path)
    _refuse_unsafe_files(model_dir, signed.resources)
    _write_atomic(signature_path, bundle)
    return SignResult(signed.digest, tuple(sorted(signed.resources)), signature_path)


def signature_digest(signature_path: Path) -> str:
    """The subject digest a bundle claims, read WITHOUT verifying it: for display only."""
    return _parse_bundle(_read_signature(signature_path), signature_path).digest


# --- verification ----------------------------------------------------------------------
def verify_model(model_dir: Path, signature_path: Path, *, public_key: Path | None = None,
                 certificate_chain: Sequence[Path] | None = None,
                 sigstore: SigstoreIdentity | None = None,
                 expected_digest: str | None = None) -> VerifyResult:
    """Check ``model_dir`` against its signature under exactly one trust anchor.

    ``expected_digest`` is the digest recorded when the model was signed (the ledger):
    a different, validly signed model is then refused as replayed or swapped.
    """
    anchors = [a for a in (public_key, certificate_chain, sigstore) if a is not None]
    if len(anchors) != 1:
        raise InputError("verify_model needs exactly one of public_key, certificate_chain, "
                         "sigstore")
    if certificate_chain is not None and not certificate_chain:
        # model-signing would fall back to certifi's web CAs: never what we mean.
        raise InputError("verify_model: certificate_chain must name the trusted CA files")
    model_dir = _model_dir(model_dir)
    bundle = _read_signature(signature_path)
    signed = _parse_bundle(bundle, signature_path)
    if sigstore is not None:
        config = sigstore_verifying_config(sigstore)
    else:
        try:
            base = _verifying_config()
            config = (base.use_elliptic_key_verifier(public_key=public_key) if public_key
                      else base.use_certificate_verifier(certificate_chain=certificate_chain or ()))
        except (OSError, ValueError) as exc:
            raise VerificationError(f"cannot load the trusted key or CA "
                                    f"({public_key or certificate_chain}): {exc}") from exc
    hashing_config = _hashing_config(model_dir, signature_path)
    config.set_hashing_config(hashing_config)
    with tempfile.TemporaryDirectory() as scratch:
        staged = Path(scratch) / "model.sig"  # verify exactly the bytes checked above
        staged.write_bytes(bundle)
        try:
            config.verify(model_dir, staged)
        except Exception as exc:
            reason = _explain(exc, model_dir, signed, hashing_config, public_key, sigstore)
            raise VerificationError(f"{model_dir} vs {signature_path}: {reason}") from exc
    if expected_digest is not None and signed.digest != expected_digest.lower():
        raise VerificationError(f"{model_dir}: replayed or swapped model: digest "
                                f"{signed.digest}, recorded {expected_digest}")
    _refuse_unsafe_files(model_dir, signed.resources)
    return VerifyResult(signed.digest, tuple(sorted(signed.resources)))


def _explain(exc: Exception, model_dir: Path, signed: _SignedManifest,
             hashing_config: hashing.Config, public_key: Path | None,
             sigstore: SigstoreIdentity | None) -> str:
    """Turn model-signing's exceptions into a reason that names what changed."""
    from OpenSSL.crypto import X509StoreContextError

    message = str(exc)
    if isinstance(exc, ValueError) and message.startswith("Signature mismatch"):
        return _describe_mismatch(model_dir, signed, hashing_config)
    if message.startswith("Key mismatch"):
        return f"signed with another key, not the trusted public key {public_key}"
    if isinstance(exc, InvalidSignature):
        return "signature does not verify with the trusted key (payload altered or other key)"
    if isinstance(exc, X509StoreContextError):
        return f"signing certificate does not chain to the trusted CA: {message}"
    if "symlink" in message:
        return f"model directory contains a symlink: {message}"
    if sigstore is not None:
        return (f"not a Sigstore signature by {sigstore.identity} from {sigstore.oidc_issuer}: "
                f"{type(exc).__name__}: {message}")
    return f"signature does not verify: {type(exc).__name__}: {message}"


def _describe_mismatch(model_dir: Path, signed: _SignedManifest,
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


# --- bundle and file checks ------------------------------------------------------------
def _model_dir(model_dir: Path) -> Path:
    if not model_dir.is_dir():
        raise VerificationError(f"{model_dir}: model directory not found")
    return model_dir.resolve()


def _hashing_config(model_dir: Path, signature_path: Path) -> hashing.Config:
    # Git paths are not skipped: everything in a model directory is signed (pitfall 9:
    # model-signing's API does not skip a signature inside the directory by itself).
    signature = signature_path.resolve()
    ignored = [signature.relative_to(model_dir)] if signature.is_relative_to(model_dir) else []
    config = hashing.Config()  # type: ignore[no-untyped-call]  # untyped upstream
    return config.set_ignored_paths(paths=ignored, ignore_git_paths=False)


def _read_signature(signature_path: Path) -> bytes:
    try:
        return signature_path.read_bytes()
    except OSError as exc:
        raise VerificationError(f"{signature_path}: cannot read signature: {exc}") from exc


def _parse_bundle(bundle: bytes, signature_path: Path) -> _SignedManifest:
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
    return _SignedManifest(name, digest, resources)


def _check_relative(entry: object, signature_path: Path) -> None:
    path = PurePosixPath(str(entry))
    if (not isinstance(entry, str) or not entry or path.is_absolute() or ".." in path.parts
            or "\\" in entry or "\x00" in entry):
        raise VerificationError(f"{signature_path}: manifest entry '{entry}' escapes the model "
                                "directory (absolute path or '..')")


def _refuse_unsafe_files(model_dir: Path, names: dict[str, str]) -> None:
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
