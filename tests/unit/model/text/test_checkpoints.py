"""A fine-tuning killed mid-training (SIGKILL, as a lost worker) resumes from its checkpoint on the
retry, and ends with the weights of a run that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from aire.home import PROJECT_ROOT
from aire.model.text.training import TextTrainResult, TextTrainSettings, fit_text
from tests.support.servers import wait_until
from tests.support.text_models import keyword_texts, tiny_base

# 240 rows in batches of 16: 15 steps an epoch, so a checkpoint every 4 steps falls mid-epoch.
SETTINGS = TextTrainSettings(epochs=4, batch_size=16, learning_rate=3e-3, patience=4, device="cpu",
                             max_length=16, checkpoint_every=4)

# The retried task: the same fit, in its own process, that stops dead in epoch 3's callback.
CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from dataclasses import replace
    from tests.support.text_models import keyword_texts
    from tests.unit.model.text.test_checkpoints import SETTINGS
    from aire.model.text.training import fit_text

    base, checkpoints, marker = (Path(a) for a in sys.argv[1:4])

    def hang_after_epoch_2(epoch, metrics):
        if epoch == 2:
            marker.write_text("epoch 2 done")
            time.sleep(3600)  # killed here

    fit_text(keyword_texts(240, seed=1), keyword_texts(60, seed=2), text_column="description",
             label="category", settings=replace(SETTINGS, checkpoint_dir=checkpoints), base_dir=base,
             base_digest="d" * 64, on_epoch=hang_after_epoch_2)
""")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_base(tmp_path_factory.mktemp("base") / "tiny")


def _fit(base: Path, settings: TextTrainSettings) -> TextTrainResult:
    return fit_text(keyword_texts(240, seed=1), keyword_texts(60, seed=2), text_column="description",
                    label="category", settings=settings, base_dir=base, base_digest="d" * 64)


def test_a_killed_fine_tuning_resumes_from_its_checkpoint_to_the_same_weights(base: Path, tmp_path: Path) -> None:
    checkpoints, marker = tmp_path / "checkpoints", tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    log = tmp_path / "child.log"
    with log.open("w") as out:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(base), str(checkpoints), str(marker)],
                                 cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: marker.exists() or child.poll() is not None, 900, "the child's second epoch")
        assert child.poll() is None, log.read_text()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()

    state = json.loads((checkpoints / "checkpoint.json").read_text())
    assert state["progress"]["step"] == 28 and state["progress"]["batches_done"] == 13  # mid epoch 2
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "best.safetensors", "checkpoint.json", "optimizer.safetensors", "rng.safetensors", "weights.safetensors"]

    resumed = _fit(base, replace(SETTINGS, checkpoint_dir=checkpoints))
    uninterrupted = _fit(base, SETTINGS)
    assert resumed.resumed_from_step == 28 and uninterrupted.resumed_from_step == 0
    assert resumed.history == uninterrupted.history and resumed.best_epoch == uninterrupted.best_epoch
    a, b = resumed.model.net.state_dict(), uninterrupted.model.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_of_another_run_is_not_resumed(base: Path, tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    short = replace(SETTINGS, epochs=1, checkpoint_dir=checkpoints)
    _fit(base, short)
    assert json.loads((checkpoints / "checkpoint.json").read_text())["progress"]["step"] == 12
    other_seed = _fit(base, replace(short, seed=5))
    assert other_seed.resumed_from_step == 0
    same_again = _fit(base, short)  # what the other seed left is not this run's either
    assert same_again.resumed_from_step == 0
    assert _fit(base, short).resumed_from_step == 12
