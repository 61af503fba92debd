"""Stage hand-off through the object store: a run directory that starts empty ends up with
exactly the files an earlier stage wrote elsewhere, checked against the digests its writer
recorded (the local store stands in for S3 here; tests/integration covers S3 and hosts)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from aire.data.storage import LocalStore
from aire.errors import AireError, VerificationError
from aire.pipeline.handoff import TAG_PREFIX, Handoff, MissingHandoff


class Tags(dict[str, str]):
    """The run's MLflow tags, as far as the hand-off uses them."""

    def set(self, key: str, value: str) -> None:
        self[key] = value


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "bucket")


@pytest.fixture
def tags() -> Tags:
    return Tags()


def host(tmp_path: Path, name: str, store: LocalStore, tags: Tags) -> Handoff:
    """One worker's view of the run: its own run directory, the shared store and tags."""
    root = tmp_path / name / "reports" / "p" / "run-1"
    root.mkdir(parents=True)
    return Handoff(store, prefix="handoff/p/run-1/files", root=root, tags=tags)


def write_outputs(root: Path) -> None:
    (root / "batch.parquet").write_bytes(b"rows" * 1000)
    (root / "model").mkdir()
    (root / "model" / "weights.bin").write_bytes(b"\x00\x01" * 500)
    (root / "model" / "nested").mkdir()
    (root / "model" / "nested" / "profile.json").write_text('{"a": 1}')


def test_a_run_directory_that_starts_empty_receives_every_file_byte_for_byte(
        tmp_path: Path, store: LocalStore, tags: Tags) -> None:
    writer, reader = host(tmp_path, "a", store, tags), host(tmp_path, "b", store, tags)
    write_outputs(writer.root)

    writer.hand_over("fine_tune", [writer.root / "batch.parquet", writer.root / "model"])
    received = reader.receive("fine_tune")

    for name in ("batch.parquet", "model/weights.bin", "model/nested/profile.json"):
        assert (reader.root / name).read_bytes() == (writer.root / name).read_bytes()
    assert (received.files, received.fetched, received.removed) == (3, 3, 0)
    # A second receive finds the cache right and fetches nothing.
    assert reader.receive("fine_tune").fetched == 0


def test_stale_cached_files_are_replaced_and_leftovers_in_handed_over_folders_removed(
        tmp_path: Path, store: LocalStore, tags: Tags) -> None:
    writer, reader = host(tmp_path, "a", store, tags), host(tmp_path, "b", store, tags)
    write_outputs(writer.root)
    writer.hand_over("fine_tune", [writer.root / "batch.parquet", writer.root / "model"])
    # The reader's host ran an earlier try: other weights, and a file this try did not write.
    (reader.root / "model").mkdir()
    (reader.root / "model" / "weights.bin").write_bytes(b"earlier try")
    (reader.root / "model" / "extra.bin").write_bytes(b"leftover")

    received = reader.receive("fine_tune")

    assert (reader.root / "model" / "weights.bin").read_bytes() == b"\x00\x01" * 500
    assert not (reader.root / "model" / "extra.bin").exists()
    assert received.removed == 1


def test_a_retry_hands_over_its_own_files_and_the_reader_gets_the_latest(
        tmp_path: Path, store: LocalStore, tags: Tags) -> None:
    writer, reader = host(tmp_path, "a", store, tags), host(tmp_path, "b", store, tags)
    (writer.root / "decision.json").write_text('{"promote": false}')
    writer.hand_over("gate", [writer.root / "decision.json"])
    reader.receive("gate")
    (writer.root / "decision.json").write_text('{"promote": true}')
    writer.hand_over("gate", [writer.root / "decision.json"])

    reader.receive("gate")

    assert json.loads((reader.root / "decision.json").read_text()) == {"promote": True}


def test_a_withdrawn_hand_off_clears_the_readers_cached_copies(
        tmp_path: Path, store: LocalStore, tags: Tags) -> None:
    writer, reader = host(tmp_path, "a", store, tags), host(tmp_path, "b", store, tags)
    (writer.root / "evaluation").mkdir()
    (writer.root / "evaluation" / "evaluation.json").write_text("{}")
    writer.hand_over("evaluate", [writer.root / "evaluation"])
    reader.receive("evaluate")

    writer.withdraw("evaluate", [writer.root / "evaluation"])  # the retry starts, then fails
    reader.receive("evaluate")

    assert not (reader.root / "evaluation" / "evaluation.json").exists()


def test_a_stage_that_handed_nothing_over_is_named(tmp_path: Path, store: LocalStore, tags: Tags) -> None:
    with pytest.raises(MissingHandoff, match="stage 'analyze_errors' handed nothing over"):
        host(tmp_path, "b", store, tags).receive("analyze_errors")


def test_a_file_changed_in_the_store_is_refused_and_the_cache_is_left_as_it_was(
        tmp_path: Path, store: LocalStore, tags: Tags) -> None:
    writer, reader = host(tmp_path, "a", store, tags), host(tmp_path, "b", store, tags)
    write_outputs(writer.root)
    writer.hand_over("fine_tune", [writer.root / "batch.parquet", writer.root / "model"])
    digest = hashlib.sha256((writer.root / "model" / "weights.bin").read_bytes()).hexdigest()
    store.put_bytes(b"swapped weights", f"handoff/p/run-1/files/sha256/{digest}")
    (reader.root / "model").mkdir()
    (reader.root / "model" / "weights.bin").write_bytes(b"cached")

    with pytest.raises(VerificationError, match=r"model/weights\.bin: the stored copy does not match"):
        reader.receive("fine_tune")

    assert (reader.root / "model" / "weights.bin").read_bytes() == b"cached"
    assert not list((reader.root / "model").glob(".*handoff"))


def test_a_manifest_swapped_in_the_store_is_refused(tmp_path: Path, store: LocalStore, tags: Tags) -> None:
    writer, reader = host(tmp_path, "a", store, tags), host(tmp_path, "b", store, tags)
    (writer.root / "decision.json").write_text('{"promote": false}')
    digest = writer.hand_over("gate", [writer.root / "decision.json"])
    forged = {"producer": "gate", "folders": [], "files": {}}
    store.put_bytes(json.dumps(forged).encode(), f"handoff/p/run-1/files/manifests/gate/{digest}.json")

    with pytest.raises(VerificationError, match="does not match the digest the run recorded"):
        reader.receive("gate")


def test_a_recorded_manifest_that_names_a_path_outside_the_run_directory_is_refused(
        tmp_path: Path, store: LocalStore, tags: Tags) -> None:
    reader = host(tmp_path, "b", store, tags)
    body = json.dumps({"producer": "gate", "folders": [],
                       "files": {"../../escape.txt": {"sha256": "0" * 64, "size": 1}}}).encode()
    digest = hashlib.sha256(body).hexdigest()
    store.put_bytes(body, f"handoff/p/run-1/files/manifests/gate/{digest}.json")
    tags.set(TAG_PREFIX + "gate", digest)

    with pytest.raises(VerificationError, match="not a path inside the run directory"):
        reader.receive("gate")
    assert not (reader.root.parent.parent / "escape.txt").exists()


def test_only_files_in_the_run_directory_are_handed_over(tmp_path: Path, store: LocalStore, tags: Tags) -> None:
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("x")
    with pytest.raises(AireError, match="only files in the run directory"):
        host(tmp_path, "a", store, tags).hand_over("gate", [outside])


def test_a_stage_on_the_host_that_holds_everything_needs_no_store(
        tmp_path: Path, store: LocalStore, tags: Tags) -> None:
    """The S3 endpoint gone while promote runs where the gate ran: the cache is verified, not fetched."""
    import shutil

    writer = host(tmp_path, "a", store, tags)
    write_outputs(writer.root)
    writer.hand_over("fine_tune", [writer.root / "batch.parquet", writer.root / "model"])
    shutil.rmtree(store.root)  # the bucket is unreachable

    assert writer.receive("fine_tune").fetched == 0
    (writer.root / "model" / "weights.bin").write_bytes(b"changed on disk")  # ... but a bad copy still needs it
    with pytest.raises(VerificationError, match=r"model/weights\.bin.*is not in the store"):
        writer.receive("fine_tune")
