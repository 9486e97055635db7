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

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]

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


@pytest.fixture(scope="module")
def runs(local_ray, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        backend: Pipeline.from_dict(wine(**training)).run(root / backend)
        for backend, training in (("local", {}), ("ray", RAY))
    }


def history(folder):
    return [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]


def test_two_workers_reach_local_accuracy(runs):
    local, ray = (runs[b].metrics["test"]["accuracy"] for b in ("local", "ray"))
    assert ray >= 0.9
    assert abs(ray - local) <= 2 / 27  # two of wine's 27 test rows


def test_history_and_early_stopping_follow_local_rules(runs):
    metrics = runs["ray"].metrics
    lines = history(runs["ray"].folder)
    assert [r["epoch"] for r in lines] == list(range(1, metrics["epochs_run"] + 1))
    assert all(r["metric"] == "accuracy" and r["train_loss"] > 0 for r in lines)
    best = max(r["epoch"] for r in lines if r["best"])
    assert metrics["best_epoch"] == best
    if metrics["epochs_run"] < EPOCHS:  # stopped early: exactly `patience` epochs without improvement
        assert metrics["epochs_run"] == best + PATIENCE
    # what was kept validates as recorded for the kept epoch
    assert metrics["validation"]["accuracy"] == pytest.approx(lines[best - 1]["validation"], abs=1e-6)


def test_model_folder_loads_and_predicts(runs):
    folder = runs["ray"].model_folder
    assert (folder / "model.safetensors").exists()
    assert not list(runs["ray"].folder.rglob("*.pkl")) and not (runs["ray"].folder / "ray").exists()
    assert not (runs["ray"].folder / "checkpoint.safetensors").exists()
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    predicted = dlpipe.load_model(folder).predict(frame.drop(columns="target"))
    assert (predicted["prediction"] == "class_" + frame["target"].astype(str)).mean() > 0.9  # builtin names


def test_an_interrupted_run_resumes_to_the_same_model(runs, tmp_path):
    config = wine(**RAY)
    with pytest.raises(KeyboardInterrupt):
        Pipeline.from_dict(config).run(tmp_path, reporter=StopAfter(3))
    folder = next((tmp_path / "wine").iterdir())
    assert (folder / "checkpoint.safetensors").exists() and not (folder / "metrics.json").exists()
    resumed = Pipeline.from_dict(config).run(tmp_path, resume=True)
    assert resumed.folder == folder
    uninterrupted = runs["ray"].metrics
    assert resumed.metrics["epochs_run"] == uninterrupted["epochs_run"]
    assert resumed.metrics["best_epoch"] == uninterrupted["best_epoch"]
    assert resumed.metrics["test"]["accuracy"] == pytest.approx(uninterrupted["test"]["accuracy"])
    assert history(folder) == history(runs["ray"].folder)


def test_more_workers_than_the_local_ray_has_is_a_named_error(local_ray, tmp_path):
    with pytest.raises(ConfigError, match=r"training\.workers.*3 CPUs asked of a local Ray with 2"):
        Pipeline.from_dict(wine(backend="ray", workers=3)).run(tmp_path)


@pytest.mark.parametrize(
    ("training", "message"),
    [
        ({"backend": "ray", "workers": 0}, "training.workers"),
        ({"backend": "ray", "worker": 2}, "unknown key 'training.worker'"),
        ({"workers": 2}, "only used with `backend: ray`"),
        ({"backend": "ray", "address": "localhost:6379"}, "ray://host:port"),
        ({"backend": "spark"}, "training.backend"),
    ],
)
def test_config_errors_name_the_key(training, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("`", ".")):
        Pipeline.from_dict(wine(**training))


def test_a_missing_ray_is_a_named_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where it is not installed
    with pytest.raises(ConfigError, match=r"training\.backend: .*pip install 'dlpipe\[ray\]'"):
        Pipeline.from_dict(wine(**RAY)).run(tmp_path)
