"""Signing keys handed over by a secret (an Airflow connection) instead of the home."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from aire.errors import InputError
from aire.trust.keys import ensure_keypair, keypair_from_pem


def pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> tuple[str, str]:
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def test_private_key_alone_gives_a_pair_with_private_permissions(tmp_path: Path) -> None:
    private, public = pem(ec.generate_private_key(ec.SECP256R1()))
    pair = keypair_from_pem(private, None, tmp_path / "k")
    assert pair.public.read_text().strip() == public.strip()
    assert stat.S_IMODE(pair.private.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o700


def test_public_key_alone_verifies_but_cannot_sign(tmp_path: Path) -> None:
    _, public = pem(ec.generate_private_key(ec.SECP256R1()))
    pair = keypair_from_pem(None, public, tmp_path / "k")
    assert pair.public.is_file() and not pair.private.exists()


@pytest.mark.parametrize("case", ["mismatched public", "rsa", "garbage", "nothing"])
def test_bad_secrets_are_refused(tmp_path: Path, case: str) -> None:
    private, _ = pem(ec.generate_private_key(ec.SECP256R1()))
    _, other_public = pem(ec.generate_private_key(ec.SECP256R1()))
    rsa_private, _ = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    args = {"mismatched public": (private, other_public), "rsa": (rsa_private, None),
            "garbage": ("-----BEGIN PRIVATE KEY-----\nnope\n", None), "nothing": (None, None)}[case]
    with pytest.raises(InputError):
        keypair_from_pem(*args, tmp_path / "k")


def test_airflow_connection_supplies_the_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aire_airflow.connections import signing_keys

    private, public = pem(ec.generate_private_key(ec.SECP256R1()))
    monkeypatch.setenv("AIRFLOW_CONN_AIRE_SIGNING",
                       json.dumps({"conn_type": "generic", "password": private, "extra": {"public_key": public}}))
    pair = signing_keys("aire_signing")
    assert pair is not None and pair.public.read_text().strip() == public.strip()
    assert signing_keys(None) is None


def test_home_pair_is_generated_once(tmp_path: Path) -> None:
    first = ensure_keypair(tmp_path / "keys")
    again = ensure_keypair(tmp_path / "keys")
    assert first.private.read_bytes() == again.private.read_bytes()


def test_the_home_keys_folder_is_private(tmp_path: Path) -> None:
    """The attack (issue 13, case 8): the home's keys/ folder was created 0755."""
    from aire.home import Home

    home = Home(tmp_path / "home").ensure()
    assert stat.S_IMODE(home.keys_dir.stat().st_mode) == 0o700
    home.keys_dir.chmod(0o755)  # a home made before: tightened on the next use
    assert stat.S_IMODE(home.ensure().keys_dir.stat().st_mode) == 0o700


CHILD = """
import json, os, sys
from aire_airflow.connections import signing_keys
pair = signing_keys("aire_signing")
print(json.dumps({"folder": str(pair.private.parent)}), flush=True)
if sys.argv[1] == "killed":
    os._exit(0)  # like a SIGKILL: no exit handlers run
"""


def test_a_key_from_a_connection_does_not_outlive_its_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The attack (issue 13, case 8): each task wrote the private key to a fresh temp folder, never removed."""
    import os
    import subprocess
    import sys

    private, public = pem(ec.generate_private_key(ec.SECP256R1()))
    env = {**os.environ, "TMPDIR": str(tmp_path),
           "AIRFLOW_CONN_AIRE_SIGNING": json.dumps({"conn_type": "generic", "password": private,
                                                    "extra": {"public_key": public}})}

    def task(how: str) -> Path:
        done = subprocess.run([sys.executable, "-c", CHILD, how], env=env, capture_output=True, text=True,
                              timeout=120, check=True)
        return Path(json.loads(done.stdout.strip().splitlines()[-1])["folder"])

    assert not task("exits").exists()  # removed when the task's process ended
    killed = task("killed")
    assert (killed / "signing.key").exists() or any(killed.iterdir())  # a killed task leaves it ...
    task("exits")
    assert not killed.exists()  # ... until the next task on the host
    assert stat.S_IMODE(killed.parent.stat().st_mode) == 0o700


# --- one trust root: a home on services signs and verifies only with the shared key ----------
SERVICES_DB = "postgresql+psycopg://aire@db.invalid:5432/aire"  # never connected to: the URL decides


def test_an_embedded_home_uses_its_own_pair(aire_home: Path) -> None:
    from aire.home import Home
    from aire.trust.keys import run_keys, verify_key

    home = Home.from_env()
    assert not home.uses_services
    pair = run_keys(None, home)
    assert pair == ensure_keypair(home.keys_dir)
    assert verify_key(None, home) == home.public_key == pair.public


def test_a_given_pair_is_used_whatever_the_home(aire_home: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from aire.home import Home
    from aire.trust.keys import run_keys, verify_key

    monkeypatch.setenv("AIRE_INCIDENTS_DB", SERVICES_DB)
    private, _ = pem(ec.generate_private_key(ec.SECP256R1()))
    given = keypair_from_pem(private, None, tmp_path / "from-secret")
    home = Home.from_env()
    assert home.uses_services
    assert run_keys(given, home) == given
    assert verify_key(given.public, home) == given.public
    assert not home.keys_dir.exists()  # nothing generated


@pytest.mark.parametrize("use", ["sign", "verify"])
def test_a_home_on_services_without_the_shared_key_refuses(aire_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                            use: str) -> None:
    from aire.errors import VerificationError
    from aire.home import Home
    from aire.trust.keys import run_keys, verify_key

    monkeypatch.setenv("AIRE_INCIDENTS_DB", SERVICES_DB)
    home = Home.from_env()
    if use == "verify":
        ensure_keypair(home.keys_dir)  # even a pair left in the home is not used
    with pytest.raises(VerificationError) as refused:
        run_keys(None, home) if use == "sign" else verify_key(None, home)
    message = str(refused.value)
    assert f"no shared signing key to {use} with" in message
    assert "uses services (AIRE_INCIDENTS_DB is PostgreSQL)" in message
    assert "signing.conn_id" in message and "AIRE_SIGNING_CONN_ID" in message
    assert "private key PEM" in message and "--key" in message
    if use == "sign":
        assert not home.keys_dir.exists()  # no pair of its own was generated


def test_the_deployment_signing_connection_fills_in_for_the_config(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from aire.trust.keys import signing_conn_id
    from aire_airflow.connections import signing_keys

    private, public = pem(ec.generate_private_key(ec.SECP256R1()))
    monkeypatch.setenv("AIRFLOW_CONN_DEPLOYMENT_KEY", json.dumps({"conn_type": "generic", "password": private}))
    monkeypatch.delenv("AIRE_SIGNING_CONN_ID", raising=False)
    assert signing_conn_id(None) is None and signing_keys(None) is None
    monkeypatch.setenv("AIRE_SIGNING_CONN_ID", "deployment_key")
    assert signing_conn_id(None) == "deployment_key" and signing_conn_id("from_config") == "from_config"
    pair = signing_keys(None)
    assert pair is not None and pair.public.read_text().strip() == public.strip()
