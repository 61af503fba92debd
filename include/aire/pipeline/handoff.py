"""Stage hand-off through the object store: what one stage wrote, the next reads on any host.

With a configured ``storage.uri`` (S3, MinIO, a shared path) the run directory is a
cache, not the truth: a task can land on a worker whose home has never seen the run.
After a stage writes its files it hands them over (``Handoff.hand_over``): each file is
stored once under its content digest (``handoff/<pipeline>/<run>/sha256/<digest>``) and a
manifest lists the files with their digests and sizes. The manifest is stored under its
own digest, and that digest is recorded outside the store, as a tag of the run's MLflow
run (``aire.handoff.<producer>``), so nothing in the bucket alone can substitute a file.

A later stage receives what it reads (``Handoff.receive``): for each producer, the
recorded manifest is fetched (unless this host already holds it under that digest) and
checked against its digest, every file it lists is
fetched unless the cached copy already has its digest, each download is checked before it
replaces anything, and files the producer's folders hold beyond the manifest (an earlier
try's leftovers) are removed, so a signed model directory is exactly what was signed.

Every object is immutable once written: a retried stage writes a new manifest and moves
the tag, so a reader never sees half of one try and half of another.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from aire import atomic
from aire.data.storage import MissingObjectError, ObjectStore
from aire.errors import AireError, VerificationError

TAG_PREFIX = "aire.handoff."  # + producer: the digest of the producer's manifest
_CHUNK = 1 << 20


class RunTags(Protocol):
    """Where manifest digests are recorded: the run's MLflow tags in a pipeline run."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...


class MissingHandoff(AireError):
    """A producer handed nothing over for this run (it has not run, or it failed)."""


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Received:
    """What ``receive`` did for one producer (logged; tests read it)."""

    producer: str
    files: int
    fetched: int
    removed: int


class Handoff:
    """One run's hand-off area in ``store``, cached in ``root`` (the run directory)."""

    def __init__(self, store: ObjectStore, *, prefix: str, root: Path, tags: RunTags) -> None:
        self.store = store
        self.prefix = prefix.strip("/")
        self.root = root
        self.tags = tags

    # --- writing ----------------------------------------------------------------------
    def hand_over(self, producer: str, paths: Iterable[Path]) -> str:
        """Store ``paths`` (files or folders under the run directory) for later stages.

        Returns the manifest's digest, which is recorded as the run's tag last: until then
        readers see the previous try's hand-off (or none), never part of this one.
        """
        files: dict[str, dict[str, Any]] = {}
        folders: list[str] = []
        for path in paths:
            relative = self._relative(path)
            if path.is_dir():
                folders.append(relative)
                members = sorted(p for p in path.rglob("*") if p.is_file())
            elif path.is_file():
                members = [path]
            else:
                continue  # a stage that wrote no such file hands over none (a skipped report)
            for member in members:
                digest = file_digest(member)
                key = self._blob_key(digest)
                if not self.store.exists(key):
                    self.store.put_file(member, key)
                files[self._relative(member)] = {"sha256": digest, "size": member.stat().st_size}
        return self._record(producer, files, folders)

    def withdraw(self, producer: str, folders: Iterable[Path]) -> str:
        """Record that ``producer`` has, for now, nothing in ``folders``: a stage that is
        about to retry withdraws its last try's files, so a reader elsewhere never takes
        them for this try's (its cached copies are removed on receive)."""
        return self._record(producer, {}, [self._relative(folder) for folder in folders])

    def _record(self, producer: str, files: dict[str, dict[str, Any]], folders: list[str]) -> str:
        manifest = {"producer": producer, "folders": sorted(folders), "files": files}
        body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha256(body).hexdigest()
        self.store.put_bytes(body, self._manifest_key(producer, digest))
        atomic.write_bytes(self._manifest_cache(producer, digest), body)
        self.tags.set(TAG_PREFIX + producer, digest)
        return digest

    # --- reading ----------------------------------------------------------------------
    def receive(self, producer: str) -> Received:
        """Make the run directory hold exactly what ``producer`` handed over, verified."""
        digest = self.tags.get(TAG_PREFIX + producer)
        if not digest:
            raise MissingHandoff(f"stage '{producer}' handed nothing over for this run "
                                 f"(no {TAG_PREFIX}{producer} tag): run it first")
        manifest = self._manifest(producer, digest)
        listed = {self._local(name) for name in manifest["files"]}
        fetched = 0
        for name, entry in sorted(manifest["files"].items()):
            fetched += self._fetch(self._local(name), str(entry["sha256"]), int(entry["size"]), name)
        removed = 0
        for folder in manifest["folders"]:
            local = self._local(folder)
            local.mkdir(parents=True, exist_ok=True)
            for stale in sorted(p for p in local.rglob("*") if p.is_file() and p not in listed):
                stale.unlink()
                removed += 1
        return Received(producer, len(listed), fetched, removed)

    def _manifest(self, producer: str, digest: str) -> dict[str, Any]:
        # A copy already here with the recorded digest (this host wrote or fetched it) is the
        # manifest: with every file cached too, a stage on the same host needs no store at all.
        cache = self._manifest_cache(producer, digest)
        if not (cache.is_file() and hashlib.sha256(cache.read_bytes()).hexdigest() == digest):
            try:
                self.store.get_file(self._manifest_key(producer, digest), cache)
            except MissingObjectError:
                raise VerificationError(f"the hand-off manifest of '{producer}' recorded for this run "
                                        f"({digest[:12]}...) is not in the store") from None
        body = cache.read_bytes()
        if hashlib.sha256(body).hexdigest() != digest:
            raise VerificationError(f"the hand-off manifest of '{producer}' in the store does not match "
                                    f"the digest the run recorded ({digest[:12]}...): refusing to read it")
        manifest = dict(json.loads(body))
        if manifest.get("producer") != producer or not isinstance(manifest.get("files"), dict):
            raise VerificationError(f"the hand-off manifest {digest[:12]}... is not '{producer}''s")
        return manifest

    def _fetch(self, target: Path, digest: str, size: int, name: str) -> int:
        """1 when the file was downloaded, 0 when the cached copy already matched."""
        if target.is_file() and target.stat().st_size == size and file_digest(target) == digest:
            return 0
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.handoff")
        try:
            self.store.get_file(self._blob_key(digest), partial)
        except MissingObjectError:
            raise VerificationError(f"{name} ({digest[:12]}...), handed over by an earlier stage, "
                                    "is not in the store") from None
        if file_digest(partial) != digest:
            partial.unlink()
            raise VerificationError(f"{name}: the stored copy does not match the digest its writer "
                                    f"recorded ({digest[:12]}...): refusing to read it")
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(partial, target)
        return 1

    # --- keys and paths -----------------------------------------------------------------
    def _blob_key(self, digest: str) -> str:
        return f"{self.prefix}/sha256/{digest}"

    def _manifest_cache(self, producer: str, digest: str) -> Path:
        return self.root / ".handoff" / f"{producer}-{digest}.json"

    def _manifest_key(self, producer: str, digest: str) -> str:
        return f"{self.prefix}/manifests/{producer}/{digest}.json"

    def _relative(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            raise AireError(f"{path}: only files in the run directory {self.root} are handed over") from None

    def _local(self, name: str) -> Path:
        """The cache path of a manifest entry; a name that leaves the run directory is refused."""
        parts = PurePosixPath(name).parts
        if not parts or name.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise VerificationError(f"hand-off manifest names {name!r}: not a path inside the run directory")
        return self.root.joinpath(*parts)

