"""Data-parallel training on Ray Train with 2 workers on a local Ray of 2 CPUs (`local_ray`): the same
model quality, history, early stopping, resume and model folder as local training."""

from __future__ import annotations

import json
import sys

import pytest

import dlpipe
from conftest import StopAfter
from dlpipe.errors import ConfigError
from dlpipe.pipeline import Pipeline

EPOCHS, PATIENCE = 40, 4


def wine(**training) -> dict:
    return {
        "name": "wine",
        "problem": {"task": "classification", "target": "target", "metric": "accuracy"},
        "data": {"source": {"builtin": "wine"}},
        "model": {"hidden": 32},
        "training": {"epochs": EPOCHS, "early_stopping": PATIENCE, "learning_rate": 0.003, **training},
    }


RAY = {"backend": "ray", "workers": 2}


@pytest.mark.slow
def test_two_workers_train_as_local_training_does(local_ray, tmp_path):
    """Everything that trains on Ray is this one test: pytest-xdist spreads a module's tests over its
    processes, and each process would start a Ray and train the shared runs again."""
    local, ray = (
        Pipeline.from_dict(wine(**training)).run(tmp_path / backend)
        for backend, training in (("local", {}), ("ray", RAY))
    )
    assert_comparable_accuracy(local, ray)
    assert_history_follows_local_rules(ray)
    assert_model_folder_loads_and_predicts(ray)
    assert_resumes_to_the_same_model(ray, tmp_path / "resumed")
    with pytest.raises(ConfigError, match=r"training\.workers.*3 CPUs asked of a local Ray with 2"):
        Pipeline.from_dict(wine(backend="ray", workers=3)).run(tmp_path / "too-many")


def history(folder):
    return [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]


def assert_comparable_accuracy(local, ray):
    local, ray = (r.metrics["test"]["accuracy"] for r in (local, ray))
    assert ray >= 0.9
    assert abs(ray - local) <= 2 / 27  # two of wine's 27 test rows


def assert_history_follows_local_rules(ray):
    metrics = ray.metrics
    lines = history(ray.folder)
    assert [r["epoch"] for r in lines] == list(range(1, metrics["epochs_run"] + 1))
    assert all(r["metric"] == "accuracy" and r["train_loss"] > 0 for r in lines)
    best = max(r["epoch"] for r in lines if r["best"])
    assert metrics["best_epoch"] == best
    if metrics["epochs_run"] < EPOCHS:  # stopped early: exactly `patience` epochs without improvement
        assert metrics["epochs_run"] == best + PATIENCE
    # what was kept validates as recorded for the kept epoch
    assert metrics["validation"]["accuracy"] == pytest.approx(lines[best - 1]["validation"], abs=1e-6)


def assert_model_folder_loads_and_predicts(ray):
    assert (ray.model_folder / "model.safetensors").exists()
    assert not list(ray.folder.rglob("*.pkl")) and not (ray.folder / "ray").exists()
    assert not (ray.folder / "checkpoint.safetensors").exists()
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    predicted = dlpipe.load_model(ray.model_folder).predict(frame.drop(columns="target"))
    assert (predicted["prediction"] == "class_" + frame["target"].astype(str)).mean() > 0.9  # builtin names


def assert_resumes_to_the_same_model(uninterrupted, root):
    config = wine(**RAY)
    with pytest.raises(KeyboardInterrupt):
        Pipeline.from_dict(config).run(root, reporter=StopAfter(3))
    folder = next((root / "wine").iterdir())
    assert (folder / "checkpoint.safetensors").exists() and not (folder / "metrics.json").exists()
    resumed = Pipeline.from_dict(config).run(root, resume=True)
    assert resumed.folder == folder
    for key in ("epochs_run", "best_epoch", "test"):
        assert resumed.metrics[key] == uninterrupted.metrics[key]
    assert history(folder) == history(uninterrupted.folder)  # DDP over gloo is deterministic here


@pytest.mark.parametrize(
    ("training", "message"),
    [
        ({"backend": "ray", "workers": 0}, "training.workers"),
        ({"backend": "ray", "worker": 2}, "unknown key 'training.worker'"),
        ({"workers": 2}, "only used with `backend: ray`"),
        ({"backend": "ray", "address": "localhost:6379"}, "ray://host:port"),
        ({"backend": "spark"}, "training.backend"),
        ({"backend": "ray", "workers": 4, "batch_size": 3}, "training.batch_size"),
    ],
)
def test_config_errors_name_the_key(training, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("`", ".")):
        Pipeline.from_dict(wine(**training))


def test_a_missing_ray_is_a_named_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where it is not installed
    with pytest.raises(ConfigError, match=r"training\.backend: .*pip install 'dlpipe\[ray\]'"):
        Pipeline.from_dict(wine(**RAY)).run(tmp_path)
