"""Shared fixtures: one thread for torch (tests run in parallel), tiny configs, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

# every property and fuzz test: the same inputs on every run (CI never fails by luck), no example
# database written into the repository, and no per-example deadline on a busy 2-core machine
settings.register_profile("dlpipe", derandomize=True, database=None, deadline=None)
settings.load_profile("dlpipe")
# hypothesis caches constants and Unicode tables in ./.hypothesis even without a database: not in the repo
set_hypothesis_home_dir(str(Path(tempfile.gettempdir()) / "dlpipe-hypothesis"))

os.environ.setdefault("OMP_NUM_THREADS", "1")
# decoded-file cache: one fresh folder per test process, never the user's ~/.cache
os.environ["DLPIPE_CACHE"] = tempfile.mkdtemp(prefix="dlpipe-cache-")
# the sentence encoder ships in a package; a stray hub call must fail fast, not hang offline
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# exporting model.onnx costs 1-3 s per packaged model; the tests of export and serving turn it on
os.environ.setdefault("DLPIPE_ONNX", "off")
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def with_onnx():
    """Packaging in this module exports model.onnx, as it does for users."""
    before = os.environ.get("DLPIPE_ONNX")
    os.environ["DLPIPE_ONNX"] = "on"
    yield
    if before is None:
        os.environ.pop("DLPIPE_ONNX", None)
    else:
        os.environ["DLPIPE_ONNX"] = before


@pytest.fixture(scope="session")
def packaged_model(tmp_path_factory) -> Path:
    """A model folder as packaging leaves it, model.onnx included (a tiny iris classifier, ~3 s once per
    test process). Treat it as read-only: copy it into tmp_path before changing anything."""
    from dlpipe import Pipeline

    before = os.environ.get("DLPIPE_ONNX")
    os.environ["DLPIPE_ONNX"] = "on"
    try:
        result = Pipeline.from_dict(tiny_config()).run(tmp_path_factory.mktemp("packaged") / "runs")
    finally:
        if before is None:
            os.environ.pop("DLPIPE_ONNX", None)
        else:
            os.environ["DLPIPE_ONNX"] = before
    return result.folder / "model"


def tiny_config(name: str = "iris", task: str = "classification", **sections) -> dict:
    """A small pipeline on a bundled set that trains in about a second (a high learning rate: at the
    default, eight epochs of a 32-wide network leave iris near chance)."""
    config = {
        "name": name,
        "problem": {"task": task, "target": "target"},
        "data": {"source": {"builtin": name}},
        "model": {"hidden": 32},
        "training": {"epochs": 8, "batch_size": 32, "early_stopping": 0, "learning_rate": 0.01},
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value}
    return config


def dlpipe(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real command line in a child process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "dlpipe.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


def cli(*args: str) -> int:
    """Run the real command line in this process (no interpreter start-up); returns its exit code."""
    from dlpipe.cli import main

    with pytest.raises(SystemExit) as exited:
        main(list(args))
    return exited.value.code


@pytest.fixture(scope="session")
def local_ray(tmp_path_factory):
    """One local Ray of 2 CPUs per test process, shared by the modules that use Ray (Ray Tune and Ray
    Train): each start costs 10-20 s. pytest-xdist's `xdist_group` cannot keep them in one process
    here (under pytest 9.2 its loadgroup no longer renames node ids, so it groups nothing)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=str(tmp_path_factory.mktemp("ray")))
    yield ray
    ray.shutdown()


class StopAfter:
    """A reporter that interrupts training, as a kill or Ctrl-C would, after some epochs."""

    def __init__(self, epochs: int = 2) -> None:
        self.epochs = epochs

    def stage(self, name: str) -> None:
        pass

    def info(self, text: str) -> None:
        pass

    def epoch(self, record, epochs) -> None:
        if record["epoch"] >= self.epochs:
            raise KeyboardInterrupt
