"""The signing key pair: generated under the embedded home, or handed over by a secret.

In the embedded home the pair is an EC P-256 key generated on first use. In production
the private key comes from an Airflow connection or a secrets backend: the Airflow
adapter reads it there and calls ``keypair_from_pem``, which writes it, for the life of
one task, to a private folder; it never lives in the repository.

A home that uses services (``Home.uses_services``) has one trust root, the key in the
secret: ``run_keys`` and ``verify_key`` refuse, with the setting to provide, instead of
generating or reading a pair of the worker's own, which would sign models no other host
can verify (or verify with a key nobody else signs with).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from aire import atomic
from aire.errors import InputError, VerificationError

if TYPE_CHECKING:
    from aire.home import Home

PRIVATE_KEY_NAME = "signing.key"  # PEM (PKCS#8, unencrypted, mode 0600)
PUBLIC_KEY_NAME = "signing.pub"  # PEM; Home.public_key points here
# The deployment's signing connection when a pipeline config names none (signing.conn_id wins).
SIGNING_CONN_ENV = "AIRE_SIGNING_CONN_ID"


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path

    def to_dict(self) -> dict[str, str]:
        return {"private": str(self.private), "public": str(self.public)}


def ensure_keypair(keys_dir: Path) -> KeyPair:
    """The EC P-256 key pair under ``keys_dir``, generated on first use.

    Two processes racing here both end up with the same pair: each writes a temporary
    file and hard-links it into place only if the name is still free.
    """
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    pair = KeyPair(keys_dir / PRIVATE_KEY_NAME, keys_dir / PUBLIC_KEY_NAME)
    if not pair.private.exists():
        fresh = ec.generate_private_key(ec.SECP256R1())
        atomic.link_if_absent(pair.private, fresh.private_bytes(
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
    atomic.link_if_absent(pair.public, public_pem, mode=0o644)
    if pair.public.read_bytes() != public_pem:
        raise InputError(f"{pair.public} is not the public half of {pair.private}")
    return pair





def keypair_from_pem(private_pem: str | None, public_pem: str | None, directory: Path) -> KeyPair:
    """Write key material from a secret into ``directory`` (0700; the private key 0600).

    With only a private key, the public half is derived from it. With only a public key
    the pair can verify but not sign: its private path does not exist.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    pair = KeyPair(directory / PRIVATE_KEY_NAME, directory / PUBLIC_KEY_NAME)
    if private_pem:
        try:
            key = serialization.load_pem_private_key(private_pem.encode(), password=None)
        except ValueError as exc:
            raise InputError(f"signing key from the secret store is not an unencrypted PEM key: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise InputError("signing key from the secret store is not an EC key (P-256/384/521)")
        atomic.write_bytes(pair.private, private_pem.encode(), mode=0o600)
        derived = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        if public_pem and public_pem.strip() != derived.strip():
            raise InputError("the secret's public key is not the public half of its private key")
        public_pem = derived
    if not public_pem:
        raise InputError("the signing secret holds neither a private nor a public key")
    atomic.write_bytes(pair.public, public_pem.encode(), mode=0o644)
    return pair


def signing_conn_id(configured: str | None) -> str | None:
    """The Airflow connection that holds the signing key: the config's ``signing.conn_id``,
    else the deployment's ``AIRE_SIGNING_CONN_ID``, else None (the embedded home's pair)."""
    return configured or os.environ.get(SIGNING_CONN_ENV) or None


def _no_shared_key(home: Home, need: str) -> VerificationError:
    return VerificationError(
        f"no shared signing key to {need} with: home {home.root} uses services (AIRE_INCIDENTS_DB is "
        "PostgreSQL), so a worker never signs or verifies with a key pair of its own. Provide the "
        f"deployment's key: in a DAG task, set signing.conn_id in the pipeline config (or {SIGNING_CONN_ENV} "
        "for the whole deployment) to the Airflow connection (or secrets-backend entry) whose password is "
        "the private key PEM; on the command line, pass --key (signing) or --public-key (verification)")


def run_keys(given: KeyPair | None, home: Home) -> KeyPair:
    """The pair a run signs and verifies with: ``given`` (from the secret) if set; otherwise the
    embedded home's own pair (generated on first use); a home that uses services refuses
    (VerificationError, never retried) rather than generate a pair of its own."""
    if given is not None:
        return given
    if home.uses_services:
        raise _no_shared_key(home, "sign")
    return ensure_keypair(home.keys_dir)


def verify_key(given: Path | None, home: Home) -> Path:
    """The public key to verify with: ``given`` if set; otherwise the embedded home's
    (``Home.public_key``, never generated here); a home that uses services refuses."""
    if given is not None:
        return given
    if home.uses_services:
        raise _no_shared_key(home, "verify")
    return home.public_key
