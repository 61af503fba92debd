"""Sign and verify throughput of aire.trust.signing beside plain `sha256sum` over the same files.

For each size it builds two model directories, (a) a few large safetensors files and
(b) many small files, then times `sha256sum`, `sign_model` and `verify_model` on each
in the same run (page cache warm for all three: the files were just written; best of
--repeat runs). Prints MB/s and the ratio to sha256sum (above 1x: faster than it). Everything is
written under --tmp and removed after.

    PYTHONPATH=include .venv/bin/python bench/signing.py --sizes 100,1000 --tmp /tmp
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))

from aire.trust.signing import KeyPair, ensure_keypair, sign_model, verify_model

MB = 1_000_000
LARGE_FILES = 4


def build_large(model: Path, size_mb: int) -> int:
    """A few safetensors shards, as a fine-tuned model directory would hold."""
    model.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(LARGE_FILES):
        data = rng.integers(0, 256, size_mb * MB // LARGE_FILES, dtype=np.uint8)
        save_file({"w": data}, str(model / f"shard-{index}.safetensors"))
    return LARGE_FILES


def build_small(model: Path, size_mb: int, small_kb: int) -> int:
    """Many small opaque files (tokenizer pieces, per-layer dumps and the like)."""
    model.mkdir(parents=True)
    count = size_mb * MB // (small_kb * 1000)
    for index in range(count):
        data = bytearray(os.urandom(small_kb * 1000))
        data[0] = 0  # a random 0x80 first byte would (rightly) be refused as pickle
        (model / f"part-{index:06d}.bin").write_bytes(bytes(data))
    return count


def timed(action: Callable[[], object], repeat: int) -> float:
    """Best of ``repeat`` runs: the least disturbed by other work on the machine."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def sha256sum(model: Path) -> None:
    names = b"\0".join(bytes(p) for p in sorted(model.iterdir()))
    subprocess.run(["xargs", "-0", "sha256sum"], input=names, check=True,
                   stdout=subprocess.DEVNULL)


def measure(model: Path, keys: KeyPair, size_mb: int,
            repeat: int) -> tuple[float, float, float]:
    signature = model.parent / f"{model.name}.sig"
    os.sync()  # flush the fresh files first, so write-back does not slow the first timing
    plain = timed(lambda: sha256sum(model), repeat)
    sign = timed(lambda: sign_model(model, signature, private_key=keys.private), repeat)
    verify = timed(lambda: verify_model(model, signature, public_key=keys.public), repeat)
    return size_mb / plain, size_mb / sign, size_mb / verify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000", help="model sizes in MB, comma-separated")
    parser.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--small-kb", type=int, default=64, help="size of each small file")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per step; best kept")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    work = Path(tempfile.mkdtemp(prefix="aire-bench-signing-", dir=args.tmp))
    try:
        keys = ensure_keypair(work / "keys")
        print(f"{'size MB':>8} {'layout':<22} {'files':>6} {'sha256sum':>10} {'sign':>8} "
              f"{'verify':>8} {'sign/sha':>9} {'verify/sha':>10}   (MB/s; cpus={os.cpu_count()})")
        for size in sizes:
            if shutil.disk_usage(work).free < 1.2 * size * MB:
                print(f"{size:>8} skipped: not enough free space under {work}")
                continue
            layouts: list[tuple[str, Callable[[Path], int]]] = [
                ("a few large files", partial(build_large, size_mb=size)),
                (f"many {args.small_kb} KB files",
                 partial(build_small, size_mb=size, small_kb=args.small_kb))]
            for label, build in layouts:
                model = work / f"{size}-{label.split()[0]}" / "model"
                files = build(model)
                plain, sign, verify = measure(model, keys, size, args.repeat)
                print(f"{size:>8} {label:<22} {files:>6} {plain:>10.0f} {sign:>8.0f} "
                      f"{verify:>8.0f} {sign / plain:>8.2f}x {verify / plain:>9.2f}x", flush=True)
                shutil.rmtree(model.parent)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
