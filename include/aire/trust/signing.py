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

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import model_signing
from cryptography.exceptions import InvalidSignature
from model_signing import hashing

from aire import atomic
from aire.errors import AireError, InputError, VerificationError
from aire.trust.keys import PRIVATE_KEY_NAME, PUBLIC_KEY_NAME, KeyPair, ensure_keypair  # noqa: F401  (re-exported)
from aire.trust.manifest_checks import (
    SignedManifest,
    checked_model_dir,
    describe_mismatch,
    hashing_config_for,
    parse_bundle,
    read_signature,
    refuse_unsafe_files,
)


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


def _signing_config() -> model_signing.signing.Config:
    return model_signing.signing.Config()  # type: ignore[no-untyped-call]  # untyped upstream


def _verifying_config() -> model_signing.verifying.Config:
    return model_signing.verifying.Config()  # type: ignore[no-untyped-call]  # untyped upstream




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
    atomic.write_bytes(dest, config._inner.to_json().encode())  # no public serializer in 4.5
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
    model_dir = checked_model_dir(model_dir)
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
    config.set_hashing_config(hashing_config_for(model_dir, signature_path))
    with tempfile.TemporaryDirectory() as scratch:
        staged = Path(scratch) / "model.sig"  # not inside model_dir while it is hashed
        try:
            config.sign(model_dir, staged)
        except ValueError as exc:
            raise InputError(f"{model_dir}: cannot sign: {exc}") from exc
        bundle = staged.read_bytes()
    signed = parse_bundle(bundle, signature_path)
    refuse_unsafe_files(model_dir, signed.resources)
    atomic.write_bytes(signature_path, bundle)
    return SignResult(signed.digest, tuple(sorted(signed.resources)), signature_path)


def signature_digest(signature_path: Path) -> str:
    """The subject digest a bundle claims, read WITHOUT verifying it: for display only."""
    return parse_bundle(read_signature(signature_path), signature_path).digest


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
    model_dir = checked_model_dir(model_dir)
    bundle = read_signature(signature_path)
    signed = parse_bundle(bundle, signature_path)
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
    hashing_config = hashing_config_for(model_dir, signature_path)
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
    refuse_unsafe_files(model_dir, signed.resources)
    return VerifyResult(signed.digest, tuple(sorted(signed.resources)))


def _explain(exc: Exception, model_dir: Path, signed: SignedManifest,
             hashing_config: hashing.Config, public_key: Path | None,
             sigstore: SigstoreIdentity | None) -> str:
    """Turn model-signing's exceptions into a reason that names what changed."""
    from OpenSSL.crypto import X509StoreContextError

    message = str(exc)
    if isinstance(exc, ValueError) and message.startswith("Signature mismatch"):
        return describe_mismatch(model_dir, signed, hashing_config)
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


