"""`kill -9` of a real `dlpipe run` while it packages its model or registers it, with a champion
already registered: the registry lists only complete versions, and the champion still serves."""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import tiny_config
from dlpipe.manifest import REFERENCE, read_manifest
from dlpipe.package import load_model
from dlpipe.registry import Registry
from forkserver import ForkServer

TRIES = 6
CONFIG = tiny_config(problem={"goal": {"accuracy": 0.5}}, training={"threads": 1})


def wait_for(found, seconds: float = 120):
    """Poll every half millisecond until `found()` gives something."""
    deadline = time.monotonic() + seconds
    while not (result := found()):
        assert time.monotonic() < deadline, f"nothing within {seconds} s"
        time.sleep(0.0005)
    return result


def numbered(registry: Registry) -> set[Path]:
    """Version folders on disk, listed by the index or not (a copy renamed into place, not yet recorded)."""
    return set(registry.root.glob("iris/[0-9]*"))


def leftovers(registry: Registry) -> int:
    """Copies a killed registration left: `.incoming-*`, or renamed into place but not recorded."""
    return len(list(registry.root.glob("iris/.incoming-*"))) + len(numbered(registry)) - len(registry.versions())


def kill_run(runner: ForkServer, path: Path, runs: Path, *, packaging: bool, delay: float) -> Path:
    """Start a run, SIGKILL it `delay` seconds after its model folder is begun (`packaging`) or
    after its metrics.json (the run complete, registering next); returns its folder."""
    before = set(runs.glob("iris/*"))
    pid = runner.start("run", str(path), "--run-dir", str(runs), "-q")
    folder = wait_for(lambda: set(runs.glob("iris/*")) - before).pop()
    done = folder / "metrics.json"
    wait_for(lambda: (packaging and any(folder.glob(".model-*"))) or done.exists())
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    return folder


@pytest.mark.slow
def test_kill_9_in_packaging_or_registering_leaves_only_complete_versions(tmp_path):
    runs, registry = tmp_path / "runs", Registry(tmp_path / "dlpipe-registry")
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    runner = ForkServer(tmp_path / "stderr", env={"DLPIPE_REGISTRY": str(registry.root)})
    try:
        runner.start("run", str(path), "--run-dir", str(runs), "-q")
        folder = wait_for(lambda: next(runs.glob("iris/*/metrics.json"), None)).parent
        began = time.monotonic()
        wait_for(lambda: numbered(registry))  # registering: from metrics.json to the version's folder
        registering = time.monotonic() - began
        assert runner.wait() == 0, runner.log.read_text()
        assert registry.alias("iris", "champion").version == 1
        rng = random.Random(11)
        stages: Counter[str] = Counter()
        for attempt in range(TRIES):
            seen, left = len(registry.versions()), leftovers(registry)
            # every other kill while the model folder is written (a few ms), the rest while registering
            delay = rng.uniform(0, 0.004) if attempt % 2 == 0 else rng.uniform(0, registering)
            folder = kill_run(runner, path, runs, packaging=attempt % 2 == 0, delay=delay)
            runner.wait()
            versions = registry.versions("iris")
            if len(versions) > seen:
                stages["registered before the kill"] += 1
            else:
                inside = "inside Registry.register" if leftovers(registry) > left else "before registering"
                stages[inside if (folder / "metrics.json").exists() else "packaging"] += 1
            for version in versions:  # listed means complete: every file there and matching its hash
                assert read_manifest(version.folder)["version"] == str(version.version)
            assert registry.alias("iris", "champion").version == 1
        print(f"\n{TRIES} kills, registering {registering:.3f} s: {dict(stages)}")
        assert stages["registered before the kill"] <= TRIES // 3, stages

        rows = pd.read_parquet(registry.get("iris", 1).folder / REFERENCE).drop(columns=["target"])
        rows.filter(regex="^(?!proba_|prediction$)").to_csv(tmp_path / "rows.csv", index=False)
        out = tmp_path / "predictions.csv"
        assert runner.run("predict", "models:/iris@champion", str(tmp_path / "rows.csv"), "-o", str(out)) == 0
        assert pd.read_csv(out)["prediction"].tolist() == rows["prediction"].tolist()  # the champion answered
        assert runner.run("run", str(path), "--run-dir", str(runs), "-q") == 0  # registering still works
        newest = registry.versions("iris")[-1]
        assert newest.version > max(int(p.name) for p in registry.root.glob("iris/[0-9]*") if p != newest.folder)
        assert load_model(newest.folder).name == "iris"
    finally:
        runner.close()
