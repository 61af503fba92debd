"""Atomic file writes: a unique temporary name beside the target, fsync, then rename.

A killed task leaves either the last good file or the new one, never half of one. The
temporary name comes from ``mkstemp``, so two writers of the same target never share it
(a fixed ``.tmp`` name lets one writer rename the other's half-written file into place).
Renames are atomic only within one file system, which is why the temporary file sits in
the target's own folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Files a run writes are read by people, the UI and other processes: not owner-only,
# which is what mkstemp would leave.
READABLE = 0o644


@contextmanager
def replacing(target: Path, *, mode: int = READABLE) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success flush it to disk and rename it.

    For writers that want a path (pandas, Evidently): whatever they leave at the yielded
    path becomes ``target`` only if the block finishes; on any error the target is as it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        os.chmod(temp, mode)
        _fsync_file(temp)
        os.replace(temp, target)
        _fsync_dir(target.parent)
    finally:
        temp.unlink(missing_ok=True)


def write_bytes(target: Path, data: bytes, *, mode: int = READABLE) -> Path:
    with replacing(target, mode=mode) as temp:
        temp.write_bytes(data)
    return target


def write_text(target: Path, text: str, *, mode: int = READABLE) -> Path:
    return write_bytes(target, text.encode("utf-8"), mode=mode)


def write_json(target: Path, data: Any, *, sort_keys: bool = False, allow_nan: bool = True,
               default: Callable[[Any], Any] | None = None, newline: bool = False) -> Path:
    """``json.dumps(data, indent=2)`` written atomically; ``newline`` ends the file with one."""
    text = json.dumps(data, indent=2, sort_keys=sort_keys, allow_nan=allow_nan, default=default)
    return write_text(target, text + ("\n" if newline else ""))


def link_if_absent(target: Path, data: bytes, *, mode: int) -> bool:
    """Create ``target`` with ``data`` unless it exists; True if this call created it.

    For files that must never change once written (a key pair): the complete, fsynced file
    is hard-linked into place, so a racing process either wins or finds a whole file.
    """
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        try:
            os.link(name, target)
        except FileExistsError:
            return False
        _fsync_dir(target.parent)
        return True
    finally:
        os.unlink(name)


@contextmanager
def replacing_directory(target: Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``target``; on success it takes ``target``'s place.

    ``rename`` cannot replace a non-empty folder, so the old one is moved aside first and
    removed only once the new one is in place: a kill in between leaves a complete folder
    at ``target`` or at the retired name, never a half-written one at ``target``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        yield staging
        for path in staging.rglob("*"):
            if path.is_file():
                _fsync_file(path)
        retired = target.parent / f".{target.name}.old-{uuid.uuid4().hex}"
        if target.exists():
            os.replace(target, retired)
        os.replace(staging, target)
        _fsync_dir(target.parent)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; a no-op where folders cannot be opened (not POSIX).
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
