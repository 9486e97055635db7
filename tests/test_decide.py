"""The decision stage: temperature scaling and a binary classifier's threshold, fitted on validation
and used wherever the model gives labels (predict, the server, the monitor)."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pandas as pd
import pytest
import torch

from dlpipe import metrics
from dlpipe.decide import Decision, fit_temperature, fit_threshold
from dlpipe.errors import ArtifactError, ConfigError
from dlpipe.manifest import manifest_digest
from dlpipe.model import Head
from dlpipe.package import load_model
from dlpipe.pipeline import Pipeline


def _labels_from(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return np.array([rng.choice(len(row), p=row) for row in p])


def test_temperature_scaling_undoes_an_overconfident_networks_scale():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 1.5, (4000, 3))
    y = _labels_from(true_logits, rng)
    network = torch.from_numpy(3.0 * true_logits).float()[:, None, :]  # (rows, members, classes): 3x too sure
    temperature = fit_temperature("multiclass", network, y)
    assert temperature == pytest.approx(3.0, rel=0.1)
    before = metrics.get("log_loss").fn(y, Head("multiclass").output(network).numpy())
    after = metrics.get("log_loss").fn(y, Head("multiclass", temperature).output(network).numpy())
    assert after < before - 0.05
    # the most probable class is unchanged for one network: accuracy is the same
    assert (Head("multiclass", temperature).output(network).argmax(1) == network[:, 0].argmax(1)).all()


def test_a_calibrated_network_keeps_a_temperature_near_one():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2.0, (4000, 1))
    y = (rng.random(4000) < 1 / (1 + np.exp(-logits[:, 0]))).astype(int)
    assert fit_temperature("binary", torch.from_numpy(logits).float()[:, None, :], y) == pytest.approx(1.0, abs=0.1)


def test_a_small_flawless_validation_split_does_not_sharpen_beyond_what_it_supports():
    """27 rows, all right: the log loss keeps falling as the temperature drops, and the fit alone went
    to its bound; sharpening stops where the mean confidence is Laplace's (27 + 1) / (27 + 2)."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 27)
    logits = rng.normal(0, 0.3, (27, 3))
    logits[np.arange(27), y] += 2.0  # right, at about 0.75 confidence
    network = torch.from_numpy(logits).float()[:, None, :]
    temperature = fit_temperature("multiclass", network, y)
    assert 0.05 < temperature < 1.0
    confidence = Head("multiclass", temperature).output(network).max(1).values.mean().item()
    assert confidence == pytest.approx(28 / 29, abs=1e-4)
    # a split with mistakes and an underconfident network still sharpens freely
    y_big = rng.integers(0, 3, 3000)
    sharp = rng.normal(0, 1.0, (3000, 3))
    sharp[np.arange(3000), y_big] += 3.0
    labels = _labels_from(sharp, rng)
    assert fit_temperature("multiclass", torch.from_numpy(sharp / 2.5).float()[:, None, :], labels) == pytest.approx(
        0.4, rel=0.1
    )


def test_the_threshold_is_tuned_for_f1_on_a_rare_class():
    rng = np.random.default_rng(2)
    y = (rng.random(2000) < 0.08).astype(int)
    score = np.clip(0.25 * y + rng.normal(0.15, 0.1, 2000), 0.001, 0.999)  # the positives rarely pass 0.5
    proba = np.stack([1 - score, score], 1)
    f1 = metrics.get("f1_macro")
    threshold, at_half, best = fit_threshold(proba, y, f1)
    assert threshold < 0.45 and best > at_half + 0.1
    assert best == pytest.approx(f1.score(y, proba, threshold))
    assert f1.score(y, proba) == pytest.approx(at_half)  # without a threshold: the most probable class


def test_label_metrics_follow_the_threshold_and_others_do_not():
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.7, 0.3], [0.65, 0.35], [0.2, 0.8]])
    assert metrics.get("accuracy").score(y, proba) == 0.75  # row 2 called negative
    assert metrics.get("accuracy").score(y, proba, 0.32) == 1.0
    assert metrics.get("accuracy").score(y, proba, 0.2) == 0.75  # row 1 now called positive
    assert metrics.get("roc_auc").score(y, proba, 0.32) == metrics.get("roc_auc").score(y, proba)
    assert list(metrics.predicted(proba, 0.32)) == [0, 0, 1, 1]


def _imbalanced(n: int = 1600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    p = 1 / (1 + np.exp(-(1.2 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2] - 2.8)))
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    frame["target"] = np.where(rng.random(n) < p, "fraud", "ok")
    return frame


def _config(**model) -> dict:
    return {
        "name": "decide",
        "problem": {"task": "classification", "target": "target", "metric": "f1_macro"},
        "model": {"hidden": 32, **model},
        "training": {"epochs": 12, "early_stopping": 0},
    }


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, with_onnx):
    return Pipeline.from_dict(_config(), _imbalanced()).run(tmp_path_factory.mktemp("runs"))


def test_a_run_records_its_decision_and_predict_and_the_server_use_it(tuned):
    decision = tuned.metrics["decision"]
    # the classes sort as [fraud, ok]: the threshold is on the probability of `ok`, the common class,
    # and a rare-class F1 wants `ok` called only when the model is sure
    assert decision["threshold"] is not None and 0.5 < decision["threshold"] < 1
    assert decision["validation_f1_macro"]["at_threshold"] >= decision["validation_f1_macro"]["at_0.5"]
    assert decision["validation_log_loss"]["after"] <= decision["validation_log_loss"]["before"]
    manifest = json.loads((tuned.folder / "model" / "model.json").read_text())
    assert manifest["decision"]["threshold"] == decision["threshold"]
    assert "model.onnx" in manifest["files"]  # the temperature is inside the exported graph, checked against torch

    model = load_model(tuned.folder / "model")
    rows = _imbalanced(300, seed=5).drop(columns="target")
    out = model.predict(rows)
    assert model.classes == ["fraud", "ok"]
    expected = np.where(out["proba_ok"] >= decision["threshold"], "ok", "fraud")
    assert (out["prediction"] == expected).all()
    between = (out["proba_ok"] < decision["threshold"]) & (out["proba_ok"] > 0.5)
    assert between.any()  # rows whose label the threshold decides: the check above means something

    from loopback import running

    with running(tuned.folder / "model") as url:
        answer = httpx.post(f"{url}/predict", json={"instances": rows.to_dict("records")}, timeout=30).json()
    assert answer["predictions"] == list(out["prediction"])
    assert np.allclose([p["fraud"] for p in answer["probabilities"]], out["proba_fraud"], atol=1e-4)


def test_test_metrics_are_scored_at_the_threshold(tuned):
    details = tuned.metrics["details"]["test"]
    matrix = np.array(details["confusion_matrix"])
    recall = np.diag(matrix) / matrix.sum(1)
    assert tuned.metrics["test"]["balanced_accuracy"] == pytest.approx(recall.mean(), abs=1e-6)


def test_a_fixed_threshold_and_no_calibration(tmp_path):
    result = Pipeline.from_dict(_config(threshold=0.3, calibrate=False), _imbalanced()).run(tmp_path)
    assert result.metrics["decision"]["threshold"] == 0.3
    assert result.metrics["decision"]["temperature"] == 1.0


def test_accuracy_keeps_the_most_probable_class(tmp_path):
    config = _config()
    config["problem"]["metric"] = "accuracy"
    result = Pipeline.from_dict(config, _imbalanced()).run(tmp_path)
    assert result.metrics["decision"]["threshold"] is None


@pytest.mark.parametrize("value", [1.5, 0.0, "high"])
def test_a_threshold_outside_zero_and_one_is_a_config_error(value):
    with pytest.raises(ConfigError, match=r"model\.threshold"):
        Pipeline.from_dict(_config(threshold=value), _imbalanced(50))


@pytest.mark.parametrize(("key", "value"), [("threshold", 7), ("temperature", -1.0), ("threshold", "0.5")])
def test_a_model_json_with_an_impossible_decision_is_refused(tuned, tmp_path, key, value):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tuned.folder / "model", folder)
    manifest = json.loads((folder / "model.json").read_text())
    manifest["decision"][key] = value
    manifest["manifest_sha256"] = manifest_digest(manifest)
    (folder / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=rf"decision\.{key}"):
        load_model(folder)


def test_a_model_without_a_decision_loads_as_before(tuned, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tuned.folder / "model", folder)
    manifest = json.loads((folder / "model.json").read_text())
    del manifest["decision"]
    manifest["manifest_sha256"] = manifest_digest(manifest)
    (folder / "model.json").write_text(json.dumps(manifest))
    model = load_model(folder)
    assert model.threshold is None and model.head.temperature == 1.0
    assert Decision.from_dict(None).temperature == 1.0
