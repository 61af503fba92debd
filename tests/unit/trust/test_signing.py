"""Model signing and verification against real model-signing, cryptography and sigstore.

The tamper suite signs crafted payloads with the real key where it matters, so the
check under test is the only thing that can refuse them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import pickle
import struct
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import model_signing
import pytest
import torch
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from safetensors.torch import save_file

from aire.errors import AireError, InputError, VerificationError
from aire.home import Home
from aire.trust.signing import (
    KeyPair,
    SigstoreIdentity,
    ensure_keypair,
    sign_model,
    signature_digest,
    sigstore_signing_config,
    sigstore_verifying_config,
    verify_model,
    write_offline_trust_config,
)

PAYLOAD_TYPE = "application/vnd.in-toto+json"


# --- fixtures and helpers --------------------------------------------------------------
def make_model(root: Path, seed: int) -> Path:
    """A model directory shaped like the pipeline's: safetensors weights plus JSON."""
    model = root / "model"
    model.mkdir(parents=True)
    generator = torch.Generator().manual_seed(seed)
    save_file({"linear.weight": torch.randn(8, 4, generator=generator),
               "linear.bias": torch.randn(8, generator=generator)},
              str(model / "weights.safetensors"))
    for name in ("model.json", "preprocessing.json", "reference_profile.json", "metrics.json"):
        (model / name).write_text(json.dumps({"file": name, "seed": seed}))
    return model


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return ensure_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture()
def signed(tmp_path: Path, keys: KeyPair) -> tuple[Path, Path]:
    model = make_model(tmp_path / "run1", seed=1)
    signature = tmp_path / "run1" / "model.sig"
    sign_model(model, signature, private_key=keys.private)
    return model, signature


def refused(model: Path, signature: Path, public_key: Path, **kwargs: Any) -> str:
    with pytest.raises(VerificationError) as caught:
        verify_model(model, signature, public_key=public_key, **kwargs)
    return str(caught.value)


def resign(signature: Path, private_key: Path, mutate: Callable[[dict[str, Any]], None]) -> None:
    """Edit the signed statement, keep its root digest consistent, sign it with the key."""
    bundle = json.loads(signature.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    mutate(statement)
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"])
                                   for r in statement["predicate"]["resources"]))
    statement["subject"][0]["digest"]["sha256"] = root.hexdigest()
    payload = json.dumps(statement).encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode(), len(payload), payload)
    key = serialization.load_pem_private_key(private_key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(
        key.sign(pae, ec.ECDSA(hashes.SHA256()))).decode()
    signature.write_text(json.dumps(bundle))


def sign_raw(model: Path, signature: Path, private_key: Path) -> None:
    """Sign with model-signing directly: bypasses sign_model's own pickle refusal."""
    hashing_config = model_signing.hashing.Config()  # type: ignore[no-untyped-call]
    config = model_signing.signing.Config()  # type: ignore[no-untyped-call]
    config.use_elliptic_key_signer(private_key=private_key).set_hashing_config(
        hashing_config.set_ignored_paths(paths=[], ignore_git_paths=False)).sign(model, signature)


# --- round trip ------------------------------------------------------------------------
def test_sign_verify_round_trip(signed: tuple[Path, Path], keys: KeyPair) -> None:
    model, signature = signed
    result = verify_model(model, signature, public_key=keys.public)
    assert len(result.digest) == 64 and int(result.digest, 16) >= 0
    assert result.files == ("metrics.json", "model.json", "preprocessing.json",
                            "reference_profile.json", "weights.safetensors")
    assert signature_digest(signature) == result.digest
    assert verify_model(model, signature, public_key=keys.public,
                        expected_digest=result.digest.upper()).digest == result.digest
    assert json.loads(json.dumps(result.to_dict()))["files"][0] == "metrics.json"


def test_sign_result_matches_bundle_and_no_temp_files_left(tmp_path: Path, keys: KeyPair) -> None:
    model = make_model(tmp_path, seed=3)
    result = sign_model(model, tmp_path / "model.sig", private_key=keys.private)
    assert result.digest == signature_digest(tmp_path / "model.sig")
    assert result.to_dict()["signature_path"] == str(tmp_path / "model.sig")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "model.sig"]


def test_signature_inside_model_dir_is_ignored(tmp_path: Path, keys: KeyPair) -> None:
    model = make_model(tmp_path, seed=4)
    result = sign_model(model, model / "model.sig", private_key=keys.private)
    assert "model.sig" not in result.files
    assert verify_model(model, model / "model.sig", public_key=keys.public).digest == result.digest
    (model / "extra.sig").write_text("not signed")  # only the signature itself is ignored
    assert "file added after signing: extra.sig" in refused(model, model / "model.sig",
                                                           keys.public)


def test_digest_is_the_same_wherever_the_model_lives(tmp_path: Path, keys: KeyPair) -> None:
    first = sign_model(make_model(tmp_path / "a", 5), tmp_path / "a.sig", private_key=keys.private)
    second = sign_model(make_model(tmp_path / "b", 5), tmp_path / "b.sig", private_key=keys.private)
    other = sign_model(make_model(tmp_path / "c", 6), tmp_path / "c.sig", private_key=keys.private)
    assert first.digest == second.digest != other.digest


# --- keys ------------------------------------------------------------------------------
def test_keypair_generated_once_with_private_permissions(tmp_path: Path) -> None:
    pair = ensure_keypair(tmp_path / "keys")
    assert (pair.private.name, pair.public.name) == ("signing.key", "signing.pub")
    assert pair.private.stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" in pair.private.read_bytes()
    before = (pair.private.read_bytes(), pair.public.read_bytes())
    again = ensure_keypair(tmp_path / "keys")
    assert again == pair and (again.private.read_bytes(), again.public.read_bytes()) == before
    assert [p.name for p in (tmp_path / "keys").iterdir() if p.name.startswith(".")] == []


def test_keypair_is_where_home_expects_the_public_key(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    assert ensure_keypair(home.keys_dir).public == home.public_key


def test_keypair_refuses_readable_private_key(tmp_path: Path) -> None:
    pair = ensure_keypair(tmp_path)
    pair.private.chmod(0o644)
    with pytest.raises(InputError, match="readable by others"):
        ensure_keypair(tmp_path)


def test_keypair_refuses_foreign_public_key(tmp_path: Path) -> None:
    pair = ensure_keypair(tmp_path / "a")
    other = ensure_keypair(tmp_path / "b")
    pair.public.write_bytes(other.public.read_bytes())
    with pytest.raises(InputError, match="not the public half"):
        ensure_keypair(tmp_path / "a")


def _ensure_public(keys_dir: str) -> bytes:
    return ensure_keypair(Path(keys_dir)).public.read_bytes()


def test_keypair_race_between_processes_yields_one_pair(tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        publics = pool.map(_ensure_public, [str(tmp_path / "keys")] * 8)
    assert len(set(publics)) == 1
    assert publics[0] == ensure_keypair(tmp_path / "keys").public.read_bytes()


# --- the tamper suite --------------------------------------------------------------------
def test_flipped_byte_in_weights_is_named(signed: tuple[Path, Path], keys: KeyPair) -> None:
    model, signature = signed
    weights = model / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    assert "changed bytes in weights.safetensors" in refused(model, signature, keys.public)


def test_added_file_is_named(signed: tuple[Path, Path], keys: KeyPair) -> None:
    model, signature = signed
    (model / "notes.txt").write_text("hello")
    assert "file added after signing: notes.txt" in refused(model, signature, keys.public)


def test_removed_file_is_named(signed: tuple[Path, Path], keys: KeyPair) -> None:
    model, signature = signed
    (model / "metrics.json").unlink()
    assert "file removed after signing: metrics.json" in refused(model, signature, keys.public)


def test_renamed_file_is_named(signed: tuple[Path, Path], keys: KeyPair) -> None:
    model, signature = signed
    (model / "metrics.json").rename(model / "metrics_old.json")
    reason = refused(model, signature, keys.public)
    assert "file renamed after signing: metrics.json -> metrics_old.json" in reason


def test_signature_of_another_model(signed: tuple[Path, Path], keys: KeyPair,
                                    tmp_path: Path) -> None:
    _, signature = signed
    other = make_model(tmp_path / "run2", seed=2)
    reason = refused(other, signature, keys.public)
    assert "signature belongs to another model" in reason
    assert "5 of 5 signed files differ" in reason and "weights.safetensors" in reason


def test_wrong_public_key(signed: tuple[Path, Path], tmp_path: Path) -> None:
    model, signature = signed
    stranger = ensure_keypair(tmp_path / "stranger")
    assert "signed with another key" in refused(model, signature, stranger.public)


def test_payload_edited_without_the_key(signed: tuple[Path, Path], keys: KeyPair) -> None:
    model, signature = signed
    bundle = json.loads(signature.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "00" * 32
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    signature.write_text(json.dumps(bundle))
    assert "does not verify with the trusted key" in refused(model, signature, keys.public)


def test_replayed_older_model_under_newer_digest(tmp_path: Path, keys: KeyPair) -> None:
    old = make_model(tmp_path / "v1", seed=1)
    old_result = sign_model(old, tmp_path / "v1" / "model.sig", private_key=keys.private)
    new = make_model(tmp_path / "v2", seed=2)
    recorded = sign_model(new, tmp_path / "v2" / "model.sig", private_key=keys.private).digest
    reason = refused(old, tmp_path / "v1" / "model.sig", keys.public, expected_digest=recorded)
    assert f"replayed or swapped model: digest {old_result.digest}, recorded {recorded}" in reason


@pytest.mark.parametrize("escape", ["../outside.bin", "/etc/passwd", "sub/../../x"])
def test_manifest_path_escaping_the_model_dir(signed: tuple[Path, Path], keys: KeyPair,
                                              escape: str) -> None:
    model, signature = signed

    def add_escape(statement: dict[str, Any]) -> None:
        statement["predicate"]["resources"].append(
            {"name": escape, "algorithm": "sha256", "digest": "ab" * 32})

    resign(signature, keys.private, add_escape)
    reason = refused(model, signature, keys.public)
    assert f"manifest entry '{escape}' escapes the model directory" in reason


def test_resigned_payload_is_accepted_when_sane(signed: tuple[Path, Path], keys: KeyPair) -> None:
    """Control for the crafted-bundle tests: resign() itself yields valid signatures."""
    model, signature = signed
    resign(signature, keys.private, lambda statement: None)
    verify_model(model, signature, public_key=keys.public)


def test_manifest_may_not_exclude_model_files(signed: tuple[Path, Path], keys: KeyPair) -> None:
    model, signature = signed

    def exclude_weights(statement: dict[str, Any]) -> None:
        statement["predicate"]["serialization"]["ignore_paths"] = ["weights.safetensors"]
        statement["predicate"]["resources"] = [
            r for r in statement["predicate"]["resources"] if r["name"] != "weights.safetensors"]

    resign(signature, keys.private, exclude_weights)
    assert "only signature files may be excluded" in refused(model, signature, keys.public)


def _torch_zip(path: Path) -> None:
    torch.save({"w": torch.zeros(2)}, path)


@pytest.mark.parametrize(("name", "write", "expected"), [
    ("weights.safetensors", lambda p: p.write_bytes(pickle.dumps({"w": [1.0]}, protocol=4)),
     "pickle data where safetensors weights belong"),
    ("weights.pt", _torch_zip, "torch zip checkpoint with pickled"),
    ("state.bin", lambda p: p.write_bytes(pickle.dumps([1, 2], protocol=2)),
     "pickle data (starts with the pickle protocol byte 0x80)"),
    ("weights.safetensors", lambda p: p.write_bytes(b"{not safetensors at all}"),
     "not a valid safetensors file"),
])
def test_pickle_where_weights_belong_is_refused_even_when_signed(
        tmp_path: Path, keys: KeyPair, name: str, write: Callable[[Path], Any],
        expected: str) -> None:
    model = make_model(tmp_path, seed=7)
    (model / "weights.safetensors").unlink()
    write(model / name)
    signature = tmp_path / "model.sig"
    sign_raw(model, signature, keys.private)  # validly signed with the real key
    reason = refused(model, signature, keys.public)
    assert expected in reason and name in reason


def test_opaque_file_ending_in_a_stray_zip_signature_is_accepted(tmp_path: Path,
                                                                  keys: KeyPair) -> None:
    # Found by the benchmark: random bytes may end in a zip end-of-directory record.
    model = make_model(tmp_path, seed=10)
    (model / "blob.bin").write_bytes(b"\x01" * 100 + struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, 46, 0xFFFF, 0))
    result = sign_model(model, tmp_path / "model.sig", private_key=keys.private)
    assert "blob.bin" in verify_model(model, tmp_path / "model.sig", public_key=keys.public).files
    assert result.files == tuple(sorted(result.files))


def test_sign_model_refuses_to_sign_a_pickle(tmp_path: Path, keys: KeyPair) -> None:
    model = make_model(tmp_path, seed=8)
    (model / "weights.safetensors").write_bytes(pickle.dumps({"w": 1}, protocol=5))
    with pytest.raises(VerificationError, match="pickle data"):
        sign_model(model, tmp_path / "model.sig", private_key=keys.private)
    assert not (tmp_path / "model.sig").exists()


def test_symlink_in_model_dir_is_refused(signed: tuple[Path, Path], keys: KeyPair,
                                         tmp_path: Path) -> None:
    model, signature = signed
    (tmp_path / "outside.json").write_text("{}")
    os.symlink(tmp_path / "outside.json", model / "linked.json")
    assert "symlink" in refused(model, signature, keys.public)
    with pytest.raises(InputError, match="symlink"):
        sign_model(model, tmp_path / "again.sig", private_key=keys.private)


# --- arguments and unreadable input ----------------------------------------------------
def test_missing_or_garbage_signature(signed: tuple[Path, Path], keys: KeyPair,
                                      tmp_path: Path) -> None:
    model, _ = signed
    assert "cannot read signature" in refused(model, tmp_path / "nope.sig", keys.public)
    (tmp_path / "garbage.sig").write_text("{]")
    assert "not a model-signing bundle" in refused(model, tmp_path / "garbage.sig", keys.public)
    with pytest.raises(VerificationError, match="not a model-signing bundle"):
        signature_digest(tmp_path / "garbage.sig")


def test_missing_model_dir(signed: tuple[Path, Path], keys: KeyPair, tmp_path: Path) -> None:
    _, signature = signed
    assert "model directory not found" in refused(tmp_path / "absent", signature, keys.public)


def test_unreadable_trust_anchor_or_key(signed: tuple[Path, Path], tmp_path: Path) -> None:
    model, signature = signed
    with pytest.raises(VerificationError, match="cannot load the trusted key"):
        verify_model(model, signature, public_key=tmp_path / "absent.pub")
    (tmp_path / "bad.pem").write_text("not a key")
    with pytest.raises(VerificationError, match="cannot load the trusted key"):
        verify_model(model, signature, public_key=tmp_path / "bad.pem")
    with pytest.raises(InputError, match="cannot use signing key"):
        sign_model(model, tmp_path / "x.sig", private_key=tmp_path / "bad.pem")


def test_exactly_one_trust_anchor(signed: tuple[Path, Path], keys: KeyPair) -> None:
    model, signature = signed
    with pytest.raises(InputError, match="exactly one"):
        verify_model(model, signature)
    with pytest.raises(InputError, match="exactly one"):
        verify_model(model, signature, public_key=keys.public, certificate_chain=[keys.public])
    with pytest.raises(InputError, match="must name the trusted CA"):
        verify_model(model, signature, certificate_chain=[])
    with pytest.raises(InputError, match="exactly one"):
        sign_model(model, model.parent / "x.sig")


# --- certificate chain -------------------------------------------------------------------
def _certificate(subject: str, public_key: ec.EllipticCurvePublicKey,
                 issuer: str, issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool) -> bytes:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=1))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(
                   digital_signature=not ca, content_commitment=False, key_encipherment=False,
                   data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                   crl_sign=ca, encipher_only=False, decipher_only=False), critical=True))
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _ca(directory: Path, name: str) -> tuple[Path, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    path = directory / f"{name}.pem"
    path.write_bytes(_certificate(name, key.public_key(), name, key, ca=True))
    return path, key


def test_certificate_chain_round_trip_and_untrusted_ca(tmp_path: Path, keys: KeyPair) -> None:
    ca_path, ca_key = _ca(tmp_path, "aire-test-ca")
    leaf_key = serialization.load_pem_private_key(keys.private.read_bytes(), password=None)
    assert isinstance(leaf_key, ec.EllipticCurvePrivateKey)
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(_certificate("aire-signer", leaf_key.public_key(), "aire-test-ca", ca_key,
                                  ca=False))
    model = make_model(tmp_path / "run", seed=9)
    signature = tmp_path / "run" / "model.sig"
    result = sign_model(model, signature, private_key=keys.private, certificate=leaf,
                        chain=[ca_path])
    assert verify_model(model, signature, certificate_chain=[ca_path]).digest == result.digest

    other_ca, _ = _ca(tmp_path, "someone-else")
    with pytest.raises(VerificationError, match="does not chain to the trusted CA"):
        verify_model(model, signature, certificate_chain=[other_ca])
    (model / "metrics.json").write_text("{}")
    with pytest.raises(VerificationError, match="changed bytes in metrics.json"):
        verify_model(model, signature, certificate_chain=[ca_path])


# --- sigstore keyless (no network here: configs only, and refusal of key bundles) ------------
@pytest.fixture(scope="module")
def trust_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_offline_trust_config(tmp_path_factory.mktemp("sigstore") / "trust.json")


@pytest.fixture()
def oidc_issuer() -> Iterator[str]:
    """A local OIDC discovery endpoint, so sigstore's real Issuer can be built offline."""
    class Discovery(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"authorization_endpoint": f"{url}/auth",
                               "token_endpoint": f"{url}/token"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Discovery)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    server.shutdown()
    server.server_close()


def test_sigstore_verifying_config_carries_identity(trust_config: Path) -> None:
    identity = SigstoreIdentity("release@aire.example", "https://accounts.google.com",
                                trust_config=trust_config)
    verifier: Any = sigstore_verifying_config(identity)._verifier
    policy = verifier._policy
    assert policy._identity == "release@aire.example"
    assert policy._issuer._value == "https://accounts.google.com"
    assert identity.to_dict()["trust_config"] == str(trust_config)


def test_sigstore_signing_config_uses_issuer_and_token(trust_config: Path,
                                                       oidc_issuer: str) -> None:
    identity = SigstoreIdentity("release@aire.example", oidc_issuer, trust_config=trust_config)
    signer: Any = sigstore_signing_config(identity, identity_token="token-123")._signer
    assert signer._identity_token == "token-123"
    assert signer._issuer.oidc_config.token_endpoint == f"{oidc_issuer}/token"


def test_sigstore_signing_without_token_or_reachable_issuer(
        trust_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("GITHUB_ACTIONS", "GOOGLE_SERVICE_ACCOUNT_NAME", "BUILDKITE", "GITLAB_CI",
                     "CIRCLECI"):
        monkeypatch.delenv(variable, raising=False)
    identity = SigstoreIdentity("release@aire.example", "http://127.0.0.1:9",
                                trust_config=trust_config)
    with pytest.raises(InputError, match="no OIDC token"):
        sigstore_signing_config(identity)
    with pytest.raises(AireError, match="cannot set up Sigstore signing with http://127.0.0.1:9"):
        sigstore_signing_config(identity, identity_token="token")


def test_key_signed_bundle_refused_under_sigstore_policy(signed: tuple[Path, Path],
                                                         trust_config: Path) -> None:
    model, signature = signed
    identity = SigstoreIdentity("release@aire.example", "https://accounts.google.com",
                                trust_config=trust_config)
    with pytest.raises(VerificationError, match="not a Sigstore signature by release@aire"):
        verify_model(model, signature, sigstore=identity)


@pytest.mark.parametrize(("identity", "issuer"), [("", "https://accounts.google.com"),
                                                  ("a@b.c", "http://evil.example")])
def test_sigstore_identity_validation(identity: str, issuer: str) -> None:
    with pytest.raises(InputError, match="SigstoreIdentity"):
        SigstoreIdentity(identity, issuer)
