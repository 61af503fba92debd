"""Object storage for reports and data copies: a local directory or S3 (MinIO, AWS).

Both stores write atomically, so a killed task never leaves half an object behind:
``LocalStore`` writes a temporary file in the target's directory and renames it
(``os.replace`` is atomic within one file system); S3 only makes an object visible once
its upload (single or multipart) completes. Downloads land under a temporary name first
for the same reason.

Keys are relative, ``/``-separated and may not contain ``.``/``..`` segments, so a key
can never escape the store's root on disk and means the same thing on both backends.
"""

from __future__ import annotations

import mimetypes
import os
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlparse

from aire import atomic
from aire.config import Storage
from aire.errors import InputError

# S3's bucket naming rules (lowercase letters, digits, dots, hyphens; 3-63 characters).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class MissingObjectError(InputError):
    """The key or URI names no object; callers turn this into their own error."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        super().__init__(f"{uri}: no such object")


@dataclass(frozen=True)
class S3Settings:
    """How to reach S3. ``None`` everywhere means boto3's default chain (env, profile, role)."""

    endpoint_url: str | None = None
    access_key_id: str | None = None
    # Secrets stay out of repr() so that logging a settings object leaks nothing.
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    region: str | None = None


def settings_for(storage: Storage, given: S3Settings | None = None) -> S3Settings | None:
    """The S3 settings a run uses, the same on every entry point (CLI, DAG, ``aire analyze``):
    ``given`` (credentials from a secret), with the config's endpoint and region filling what
    it leaves out. Without them a private endpoint's bucket name would resolve on public S3."""
    if given is None:
        if storage.endpoint_url is None and storage.region is None:
            return None
        return S3Settings(endpoint_url=storage.endpoint_url, region=storage.region)
    return replace(given, endpoint_url=given.endpoint_url or storage.endpoint_url,
                   region=given.region or storage.region)


def s3_client(settings: S3Settings | None = None) -> Any:
    """A boto3 S3 client. Custom endpoints (MinIO, moto) get path-style addressing,
    because they do not serve virtual-hosted bucket names."""
    import boto3
    from botocore.config import Config

    settings = settings or S3Settings()
    session = boto3.session.Session(
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        aws_session_token=settings.session_token,
        region_name=settings.region,
    )
    config = Config(
        retries={"max_attempts": 5, "mode": "standard"},
        s3={"addressing_style": "path"} if settings.endpoint_url else None,
    )
    return session.client("s3", endpoint_url=settings.endpoint_url, config=config)


def parse_s3_uri(uri: str, *, require_key: bool = True) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``.

    Not parsed with urllib: S3 keys may contain ``?`` and ``#``, which a URL parser
    would cut off silently.
    """
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise InputError(f"{uri!r}: not an S3 URI (expected s3://bucket/key)")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not _BUCKET.match(bucket):
        raise InputError(
            f"{uri}: bucket name {bucket!r} is not valid "
            "(3-63 lowercase letters, digits, '.' or '-')"
        )
    if require_key and not key:
        raise InputError(f"{uri}: the URI names a bucket but no object key")
    return bucket, key


def clean_key(key: str) -> str:
    """Validate a store key and return it without leading/trailing slashes."""
    stripped = key.strip("/") if isinstance(key, str) else ""
    parts = stripped.split("/")
    if not stripped or "\\" in stripped or any(p in ("", ".", "..") for p in parts):
        raise InputError(
            f"object key {key!r} is not valid: use a relative '/'-separated path "
            "without empty, '.' or '..' parts"
        )
    return stripped


@runtime_checkable
class ObjectStore(Protocol):
    """Where reports and data copies go. Every method takes keys relative to the store."""

    def put_file(self, local_path: Path | str, key: str) -> str: ...

    def put_bytes(self, data: bytes, key: str) -> str: ...

    def get_file(self, key_or_uri: str, local_path: Path | str) -> Path: ...

    def exists(self, key: str) -> bool: ...

    def uri(self, key: str) -> str: ...




class LocalStore:
    """A directory that plays the part of a bucket (the embedded default)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        return self.root / clean_key(key)

    def uri(self, key: str) -> str:
        return self.path(key).as_uri()

    def put_file(self, local_path: Path | str, key: str) -> str:
        source = Path(local_path)
        if not source.is_file():
            raise InputError(f"{source}: cannot store it, no such file")
        with atomic.replacing(self.path(key)) as tmp:
            shutil.copyfile(source, tmp)
        return self.uri(key)

    def put_bytes(self, data: bytes, key: str) -> str:
        with atomic.replacing(self.path(key)) as tmp, tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return self.uri(key)

    def get_file(self, key_or_uri: str, local_path: Path | str) -> Path:
        """Copy an object out. Accepts a key, a ``file://`` URI or an absolute path."""
        if key_or_uri.startswith("file://"):
            source = Path(unquote(urlparse(key_or_uri).path))
        elif "://" in key_or_uri:
            raise InputError(f"{key_or_uri}: a local store cannot read this URI")
        elif os.path.isabs(key_or_uri):
            source = Path(key_or_uri)
        else:
            source = self.path(key_or_uri)
        if not source.is_file():
            raise MissingObjectError(source.as_uri())
        target = Path(local_path)
        with atomic.replacing(target) as tmp:
            shutil.copyfile(source, tmp)
        return target

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()


class S3Store:
    """A bucket and key prefix on S3 or an S3-compatible server (MinIO, moto)."""

    def __init__(self, bucket: str, prefix: str = "", settings: S3Settings | None = None) -> None:
        parse_s3_uri(f"s3://{bucket}", require_key=False)  # validates the bucket name
        self.bucket = bucket
        self.prefix = clean_key(prefix) if prefix.strip("/") else ""
        self.settings = settings or S3Settings()
        self._client: Any = None

    def __repr__(self) -> str:
        return f"S3Store({self.uri_root!r})"

    @property
    def client(self) -> Any:
        # Created lazily: opening a store must not need credentials or network.
        if self._client is None:
            self._client = s3_client(self.settings)
        return self._client

    @property
    def uri_root(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def object_key(self, key: str) -> str:
        key = clean_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_key(key)}"

    def put_file(self, local_path: Path | str, key: str) -> str:
        source = Path(local_path)
        if not source.is_file():
            raise InputError(f"{source}: cannot store it, no such file")
        self.client.upload_file(
            str(source), self.bucket, self.object_key(key), ExtraArgs=_content_type(key)
        )
        return self.uri(key)

    def put_bytes(self, data: bytes, key: str) -> str:
        self.client.put_object(
            Bucket=self.bucket, Key=self.object_key(key), Body=data, **_content_type(key)
        )
        return self.uri(key)

    def get_file(self, key_or_uri: str, local_path: Path | str) -> Path:
        """Download an object. Accepts a key of this store or any ``s3://`` URI."""
        if key_or_uri.startswith("s3://"):
            bucket, object_key = parse_s3_uri(key_or_uri)
        elif "://" in key_or_uri:
            raise InputError(f"{key_or_uri}: an S3 store cannot read this URI")
        else:
            bucket, object_key = self.bucket, self.object_key(key_or_uri)
        return download_s3_object(self.client, bucket, object_key, Path(local_path))

    def exists(self, key: str) -> bool:
        return _head(self.client, self.bucket, self.object_key(key))


def download_s3_object(client: Any, bucket: str, key: str, target: Path) -> Path:
    """Download ``s3://bucket/key`` to ``target`` atomically; MissingObjectError if absent."""
    if not _head(client, bucket, key):
        raise MissingObjectError(f"s3://{bucket}/{key}")
    with atomic.replacing(target) as tmp:
        client.download_file(bucket, key, str(tmp))
    return target


def _head(client: Any, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        # Only "not found" means absent; a 403 must surface.
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
    else:
        return True
    # A HEAD answers 404 for a missing bucket too (it has no body to say which): ask, so a
    # typo in the bucket name reads as a configuration problem, not as a missing object.
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
            raise InputError(f"s3://{bucket}: no such bucket") from None
        raise
    return False


def _content_type(key: str) -> dict[str, str]:
    """Reports served from MinIO/S3 open in a browser only with the right content type."""
    guessed, _ = mimetypes.guess_type(key)
    return {"ContentType": guessed} if guessed else {}


def open_store(
    uri: str | None, default_root: Path | str, settings: S3Settings | None = None
) -> ObjectStore:
    """``None`` -> LocalStore(default_root); ``s3://b/p`` -> S3Store; ``file:///x`` or a path
    -> LocalStore. Any other scheme is an InputError."""
    if uri is None or uri == "":
        return LocalStore(default_root)
    if uri.startswith("s3://"):
        bucket, prefix = parse_s3_uri(uri, require_key=False)
        return S3Store(bucket, prefix, settings)
    if uri.startswith("file://"):
        return LocalStore(Path(unquote(urlparse(uri).path)))
    if "://" in uri:
        raise InputError(f"{uri}: unsupported storage URI (use s3://bucket/prefix or a path)")
    return LocalStore(Path(uri))
