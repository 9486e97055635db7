"""The Ray Tune backend on a local Ray limited to 2 CPUs (`local_ray`, shared with the Ray Train tests):
the same search as Optuna's, the same outputs."""

from __future__ import annotations

import csv
import json

import pytest

from dlpipe.pipeline import Pipeline

pytestmark = pytest.mark.slow


def diabetes(tuning: dict) -> dict:
    return {
        "name": "diabetes",
        "problem": {"task": "regression", "target": "target", "metric": "r2"},
        "data": {"source": {"builtin": "diabetes"}},
        "training": {"epochs": 20, "early_stopping": 5},
        "tuning": tuning,
    }


def rows(folder):
    with (folder / "tuning" / "trials.csv").open() as f:
        return list(csv.DictReader(f))


def test_ray_finds_the_best_grid_point_optuna_finds(local_ray, tmp_path):
    space = {"training.learning_rate": [0.003, 0.03], "model.hidden": [16, 64]}
    best = {}
    for backend in ("ray", "optuna"):
        config = diabetes({"method": "grid", "pruner": "none", "parallel": 2, "backend": backend, "space": space})
        result = Pipeline.from_dict(config).run(tmp_path / backend)
        summary = json.loads((result.folder / "tuning" / "summary.json").read_text())
        assert summary["trials"]["complete"] == 4 and summary["backend"] == backend
        points = {(r["training.learning_rate"], r["model.hidden"]) for r in rows(result.folder)}
        assert len(points) == 4
        best[backend] = summary["best"]
        # the packaged model is the best trial's: validation scores the same
        assert result.metrics["validation"]["r2"] == pytest.approx(summary["best"]["value"], abs=1e-6)
    # training is seeded and single-threaded on both: the same grid gives the same best
    assert best["ray"]["params"] == best["optuna"]["params"]
    assert best["ray"]["value"] == pytest.approx(best["optuna"]["value"], abs=1e-6)


def test_tpe_with_asha_on_ray(local_ray, tmp_path):
    space = {"training.learning_rate": {"log": [1e-5, 1e-1]}, "model.dropout": {"float": [0.0, 0.5]}}
    config = diabetes({"method": "tpe", "trials": 8, "pruner": "asha", "parallel": 2, "backend": "ray", "space": space})
    result = Pipeline.from_dict(config).run(tmp_path)
    found = rows(result.folder)
    assert len(found) == 8 and {r["state"] for r in found} <= {"complete", "pruned"}
    assert result.metrics["tuning"]["trials"]["total"] == 8
    assert (result.model_folder / "model.safetensors").exists()
