"""`aire sign`, `aire verify` and `aire base-digest`: model signatures from the command line.

Exit status 0 when the signature holds (and, with ``--version``, the digest is the one
recorded for that registered version); 2 with the reason on stderr otherwise.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from aire.errors import InputError
from aire.home import PROJECT_ROOT, Home

EXAMPLE_CONFIG = PROJECT_ROOT / "include" / "config" / "credit_risk.yaml"


def add_commands(sub: Any) -> None:
    cmd = sub.add_parser("sign", help="sign a model directory with OpenSSF model-signing")
    cmd.add_argument("--model", type=Path, required=True, help="the model directory")
    cmd.add_argument("--key", type=Path, help="EC private key, PEM (default: the embedded home's key pair; "
                     "required when the home uses services)")
    cmd.add_argument("--signature", type=Path, help="where to write it (default: <model>.sig beside it)")
    cmd.set_defaults(handler=_sign)

    cmd = sub.add_parser("verify", help="verify a model directory or a registered version")
    cmd.add_argument("--model", type=Path, help="the model directory (default: download --version)")
    cmd.add_argument("--signature", type=Path, help="default: <model>.sig beside the directory")
    cmd.add_argument("--public-key", type=Path, help="PEM (default: the embedded home's public key; "
                     "required when the home uses services)")
    cmd.add_argument("--version", type=int, help="also require the digest recorded for this registered version")
    cmd.add_argument("--config", default=str(EXAMPLE_CONFIG), help="pipeline config naming the model")
    cmd.set_defaults(handler=_verify)

    cmd = sub.add_parser("base-digest", help="print a pretrained base directory's digest, to pin "
                         "as model.base_digest")
    cmd.add_argument("directory", type=Path, help="the base: safetensors weights, config.json, tokenizer")
    cmd.set_defaults(handler=_base_digest)


def default_signature(model_dir: Path) -> Path:
    """``<dir>.sig`` beside the directory, as the pipeline lays out ``model/`` and ``model.sig``."""
    return model_dir.with_name(model_dir.name + ".sig")


def _sign(args: argparse.Namespace) -> int:
    from aire.trust.keys import run_keys
    from aire.trust.signing import sign_model

    # The home's own pair only in the embedded home: one on services signs with --key.
    key = args.key or run_keys(None, Home.from_env().ensure()).private
    signed = sign_model(args.model, args.signature or default_signature(args.model), private_key=key)
    print(json.dumps({"signed": True, **signed.to_dict()}, indent=2))
    return 0


def _base_digest(args: argparse.Namespace) -> int:
    from aire.trust.base import directory_digest, verify_base

    digest, files = directory_digest(args.directory)
    # Also the load-safety checks, so a base that would be refused is not pinned first.
    verify_base(args.directory, digest)
    print(json.dumps({"directory": str(args.directory.resolve()), "digest": digest,
                      "files": files}, indent=2))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from aire.trust.keys import verify_key

    home = Home.from_env()
    public_key = verify_key(args.public_key, home)
    if not public_key.is_file():
        raise InputError(f"no public key at {public_key}: pass --public-key or run `aire init`")
    if args.model is None and args.version is None:
        raise InputError("give --model DIR, --version N, or both")
    outcome = _verify_version(args, home, public_key) if args.version else _verify_dir(args, public_key, None)
    print(json.dumps({"verified": True, **outcome}, indent=2))
    return 0


def _verify_dir(args: argparse.Namespace, public_key: Path, expected: str | None) -> dict[str, Any]:
    from aire.trust.signing import verify_model

    signature = args.signature or default_signature(args.model)
    result = verify_model(args.model, signature, public_key=public_key, expected_digest=expected)
    return result.to_dict()


def _verify_version(args: argparse.Namespace, home: Home, public_key: Path) -> dict[str, Any]:
    """Against the digest recorded when the version was signed, as every load does."""
    from aire.config import load_config
    from aire.registry.mlflow_registry import Registry
    from aire.trust.ledger import Ledger
    from aire.trust.verify import fetch_verified

    registry = Registry(home.mlflow_tracking_uri)
    version = registry.version(load_config(args.config).name, args.version)
    if args.model is not None:
        if not version.signed_digest:
            raise InputError(f"version {args.version} records no signed digest")
        return {"version": args.version, **_verify_dir(args, public_key, version.signed_digest)}
    with tempfile.TemporaryDirectory(prefix="aire-verify-") as workdir:
        verified = fetch_verified(registry, version, public_key=public_key, ledger=Ledger.for_home(home),
                                  workdir=Path(workdir))
    return {"version": args.version, "digest": verified.digest}
