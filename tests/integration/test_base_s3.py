"""A pretrained base on S3 (moto's server over HTTP on loopback): fetched once, verified on every use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aire.data.storage import S3Settings, s3_client
from aire.errors import InputError, VerificationError
from aire.trust.base import directory_digest, resolve_base
from tests.support.servers import threaded_s3
from tests.support.text_models import files_of_a_base

pytestmark = pytest.mark.integration

BUCKET = "aire-bases"


@pytest.fixture(scope="module")
def settings() -> Iterator[S3Settings]:
    with threaded_s3(BUCKET) as s3:
        yield s3


def _upload(base: Path, prefix: str, settings: S3Settings) -> None:
    client = s3_client(settings)
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        client.put_object(Bucket=BUCKET, Key=f"{prefix}/{path.relative_to(base)}", Body=path.read_bytes())


def test_an_s3_base_is_fetched_into_the_cache_and_reverified(settings: S3Settings, tmp_path: Path) -> None:
    base = files_of_a_base(tmp_path / "base")
    pinned, files = directory_digest(base)
    _upload(base, "bases/tiny", settings)
    cache = tmp_path / "cache"

    fetched = resolve_base(f"s3://{BUCKET}/bases/tiny", pinned, cache, settings)
    assert fetched.path == (cache / pinned).resolve() and fetched.files == files

    # The cached copy is used again (the prefix is gone), but only after it verifies.
    client = s3_client(settings)
    for name in files:
        client.delete_object(Bucket=BUCKET, Key=f"bases/tiny/{name}")
    assert resolve_base(f"s3://{BUCKET}/bases/tiny", pinned, cache, settings).digest == pinned
    (cache / pinned / "vocab.txt").write_text("edited in the cache\n")
    with pytest.raises(VerificationError, match="is not the pinned model.base_digest"):
        resolve_base(f"s3://{BUCKET}/bases/tiny", pinned, cache, settings)


def test_a_tampered_s3_base_is_refused_and_not_cached(settings: S3Settings, tmp_path: Path) -> None:
    base = files_of_a_base(tmp_path / "base")
    pinned, _ = directory_digest(base)
    (base / "config.json").write_text('{"model_type": "bert", "hidden_size": 5}')
    _upload(base, "bases/swapped", settings)
    cache = tmp_path / "cache"
    with pytest.raises(VerificationError, match="is not the pinned model.base_digest"):
        resolve_base(f"s3://{BUCKET}/bases/swapped", pinned, cache, settings)
    assert not (cache / pinned).exists()  # a fixed prefix is fetched afresh next time


def test_an_empty_prefix_is_an_input_error(settings: S3Settings, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no objects under this prefix"):
        resolve_base(f"s3://{BUCKET}/bases/none", "0" * 64, tmp_path / "cache", settings)
