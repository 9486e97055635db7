"""The benchmark scripts run (their figures are reports, not assertions on speed)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("train_overhead.py", "ratio dlpipe / hand-written"),
        ("defaults.py", "wine"),
        ("image_cache.py", "ratio first pass / second pass"),
        ("tuning.py", "ratio epochs pruned / unpruned"),
        ("serve.py", "ratio dlpipe / minimal throughput at concurrency 64"),
        ("drift.py", "ratio dlpipe / scipy loop"),
        ("quality.py", "vs gradient boosting: level or better on"),
        ("scale.py", "ratio time(100,000) / time(20,000)"),
    ],
)
def test_benchmark_runs(script, expected):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
    assert "no result" not in result.stdout


def test_tpe_replay_runs_on_a_recorded_grid():
    import json

    table = ROOT / "benchmarks" / "tables" / "wine_small.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "tpe_replay.py"), "replay", str(table), "--seeds", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["settings"] == 36 and found["seeds"] == 3
    assert 1 <= found["median"] <= 36 and found["random_order"] == 18.5
