"""`kill -9` of a real `dlpipe run` at seeded random moments between its first checkpoint and its
end: `dlpipe run --resume` finishes with the metrics, epochs and history an uninterrupted run has."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import tiny_config
from dlpipe.rundir import CHECKPOINT
from dlpipe.runs import INTERRUPTED, load_run
from forkserver import ForkServer

TRIES = 10
EPOCHS = 30
CONFIG = tiny_config(training={"epochs": EPOCHS, "batch_size": 16, "threads": 1})


def wait_for(found, seconds: float = 120):
    """Poll every millisecond until `found()` gives something."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := found():
            return result
        time.sleep(0.001)
    raise AssertionError(f"nothing within {seconds} s")


def first_checkpoint(run_dir: Path) -> Path:
    """The run folder, once its first checkpoint is on disk."""
    return wait_for(lambda: next((p.parent for p in run_dir.glob(f"*/*/{CHECKPOINT}")), None))


def trained(folder: Path) -> bool:
    return len((folder / "history.jsonl").read_text().splitlines()) >= EPOCHS


def packaging(folder: Path) -> bool:
    return any(folder.glob(".model-*"))


def stage(folder: Path, epochs: int) -> str:
    """Where a killed run stopped, judged from what it left on disk."""
    if (folder / "metrics.json").exists():
        return "finished"
    if packaging(folder):
        return "packaging"
    if (folder / "model").exists():
        return "after packaging"
    if (folder / "checkpoint.tmp").exists():
        return "checkpoint write"
    history = (folder / "history.jsonl").read_text().splitlines()
    return "training" if len(history) < epochs else "evaluation"


def aim(attempt: int, folder: Path, rng: random.Random, training: float, after: float) -> None:
    """Wait for the moment of this attempt's kill. Evaluation and packaging take a fifth of the
    time: a kill in three is aimed after the last epoch, one in three at packaging."""
    if attempt % 3 == 1:
        wait_for(lambda: trained(folder))
        time.sleep(rng.uniform(0, after))
    elif attempt % 3 == 2:
        wait_for(lambda: packaging(folder) or (folder / "metrics.json").exists())
        time.sleep(rng.uniform(0, 0.005))
    else:
        time.sleep(rng.uniform(0, training))


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    server = ForkServer(tmp_path_factory.mktemp("log") / "stderr")
    yield server
    server.close()


@pytest.fixture(scope="module")
def uninterrupted(runner, tmp_path_factory):
    """One run left alone: its folder, and the seconds from its first checkpoint to its last epoch's
    history line and to its metrics.json (training, then evaluation, packaging and the report)."""
    root = tmp_path_factory.mktemp("uninterrupted")
    path = root / "pipeline.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    runner.start("run", str(path), "--run-dir", str(root / "runs"), "-q", "--no-register")
    folder = first_checkpoint(root / "runs")
    began = time.monotonic()
    wait_for(lambda: trained(folder))
    training = time.monotonic() - began
    wait_for(lambda: (folder / "metrics.json").exists())
    assert runner.wait() == 0, runner.log.read_text()
    return folder, training, time.monotonic() - began - training


def results(folder: Path) -> tuple:
    metrics = json.loads((folder / "metrics.json").read_text())
    history = (folder / "history.jsonl").read_text()
    return metrics["test"], metrics["validation"], metrics["epochs_run"], metrics["best_epoch"], history


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_gives_the_uninterrupted_result(runner, uninterrupted, tmp_path):
    straight, training, after = uninterrupted
    expected = results(straight)
    rng = random.Random(10)
    stages: Counter[str] = Counter()
    for attempt in range(TRIES):
        run_dir = tmp_path / str(attempt)
        path = tmp_path / f"{attempt}.yaml"
        path.write_text(yaml.safe_dump(CONFIG))
        pid = runner.start("run", str(path), "--run-dir", str(run_dir), "-q", "--no-register")
        folder = first_checkpoint(run_dir)
        aim(attempt, folder, rng, training, after)
        os.kill(pid, signal.SIGKILL)
        assert runner.wait() in (-signal.SIGKILL, 0)
        where = stage(folder, expected[2])
        stages[where] += 1
        if where == "finished":  # the kill came too late: counted, nothing to resume
            continue
        assert load_run(folder).status == INTERRUPTED, (attempt, where)  # as `dlpipe runs list` reads it
        assert runner.run("run", str(path), "--run-dir", str(run_dir), "-q", "--no-register", "--resume") == 0
        assert results(folder) == expected, (attempt, where)
        assert not [p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp")]
        assert not (folder / CHECKPOINT).exists()
    print(f"\n{TRIES} kills, training {training:.2f} s, after it {after:.2f} s: {dict(stages)}")
    assert stages["finished"] <= TRIES // 3, stages
