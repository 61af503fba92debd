"""Atomic writes: a failed write leaves the old file, and two writers never share a temp name."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from aire import atomic


def test_a_write_that_fails_halfway_leaves_the_last_good_file(tmp_path: Path) -> None:
    target = atomic.write_text(tmp_path / "report.json", '{"good": true}')
    with pytest.raises(RuntimeError), atomic.replacing(target) as temp:
        temp.write_text('{"half": ')
        raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"good": True}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"], "no temporary file is left behind"


def test_written_files_are_readable_by_others_and_keys_can_stay_private(tmp_path: Path) -> None:
    public = atomic.write_json(tmp_path / "decision.json", {"promote": False}, newline=True)
    private = atomic.write_bytes(tmp_path / "signing.key", b"secret", mode=0o600)
    assert public.read_text() == '{\n  "promote": false\n}\n'
    assert oct(public.stat().st_mode & 0o777) == "0o644"
    assert oct(private.stat().st_mode & 0o777) == "0o600"


def _write_many(target: str, marker: str) -> None:
    for i in range(200):
        atomic.write_text(Path(target), f"{marker}{i:04d}" * 2000)


def test_concurrent_writers_of_one_target_never_interleave(tmp_path: Path) -> None:
    target = tmp_path / "evaluation.json"
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_many, args=(str(target), m)) for m in "ab"]
    for process in writers:
        process.start()
    while any(p.is_alive() for p in writers):
        if target.exists():
            text = target.read_text()
            assert text == text[:5] * 2000, "a reader saw a mix of two writes"
    for process in writers:
        process.join()
        assert process.exitcode == 0
    assert target.read_text()[:5] in {"a0199", "b0199"}
    assert [p.name for p in tmp_path.iterdir()] == ["evaluation.json"]


def test_link_if_absent_keeps_the_first_complete_file(tmp_path: Path) -> None:
    target = tmp_path / "signing.pub"
    assert atomic.link_if_absent(target, b"first", mode=0o644) is True
    assert atomic.link_if_absent(target, b"second", mode=0o644) is False
    assert target.read_bytes() == b"first"


def test_a_directory_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    model = tmp_path / "model"
    with atomic.replacing_directory(model) as staging:
        (staging / "weights.safetensors").write_bytes(b"v1")
    with pytest.raises(OSError), atomic.replacing_directory(model) as staging:
        (staging / "weights.safetensors").write_bytes(b"v2-half")
        raise OSError("disk full")
    assert (model / "weights.safetensors").read_bytes() == b"v1"
    assert sorted(os.listdir(tmp_path)) == ["model"]
