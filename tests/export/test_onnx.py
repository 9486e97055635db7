"""model.onnx: written when a model is packaged, for every encoder, and equal to eager PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile
from PIL import Image

from conftest import EXAMPLES
from dlpipe import load_model
from dlpipe.export.onnx import onnx_session
from dlpipe.pipeline import Pipeline

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("with_onnx")]


def tabular(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "y": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
            "plan": rng.choice(["a", "b", "c"], n),
            "flag": rng.choice([True, False], n),
            "when": pd.date_range("2024-01-01", periods=n, freq="37h").astype(str),
        }
    )
    frame["target"] = np.where(frame["x"] + (frame["plan"] == "a") > 0.3, "yes", "no")
    model = {"ensemble": 2, "numeric_embedding": 8, "numeric_embedding_kind": "linear"}
    return frame, {"features": {"when": {"type": "datetime"}}, "model": model}


def periodic(tmp_path):
    frame, sections = tabular(tmp_path)
    return frame, {**sections, "model": {"numeric_embedding": 8, "numeric_embedding_kind": "periodic", "ensemble": 2}}


def texts(encoder):
    def make(tmp_path):
        frame = pd.read_csv(EXAMPLES / "support_tickets" / "tickets.csv").head(300)
        frame = frame[["message", "plan", "urgent"]].rename(columns={"urgent": "target"})
        return frame, {
            "features": {"message": {"type": "text", "encoder": encoder}},
            "model": {"combiner": "transformer"},
        }

    return make


def images(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        label = "dark" if i % 2 else "light"
        pixels = rng.integers(0, 100, (12, 12)) + (0 if label == "dark" else 150)
        Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / f"{i}.png")
        rows.append({"photo": str(tmp_path / f"{i}.png"), "target": label})
    return pd.DataFrame(rows), {"features": {"photo": {"type": "image", "size": 12}}}


def audio(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    t = np.arange(4000) / 8000
    for i in range(40):
        label = "high" if i % 2 else "low"
        tone = np.sin(2 * np.pi * (1500 if label == "high" else 300) * t) + 0.1 * rng.normal(size=t.size)
        soundfile.write(tmp_path / f"{i}.wav", tone.astype(np.float32), 8000)
        rows.append({"clip": str(tmp_path / f"{i}.wav"), "target": label})
    return pd.DataFrame(rows), {"features": {"clip": {"type": "audio", "sample_rate": 8000, "n_mels": 16}}}


CASES = {
    "tabular": tabular,
    "tabular-periodic": periodic,
    "text-bag": texts("bag"),
    "text-cnn": texts("cnn"),
    "text-transformer": texts("transformer"),
    "text-minilm": texts("minilm"),
    "image": images,
    "audio": audio,
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_packaged_onnx_graph_matches_pytorch(case, tmp_path):
    frame, sections = CASES[case](tmp_path)
    target = "target"
    config = {
        "name": case,
        "problem": {"task": "classification", "target": target},
        "data": {"source": "<in-memory table>"},
        "training": {"epochs": 2, "early_stopping": 0},
        **sections,
    }
    result = Pipeline.from_dict(config, data=frame).run(tmp_path / "runs")
    manifest = json.loads((result.model_folder / "model.json").read_text())
    assert "error" not in manifest["onnx"], manifest["onnx"]
    assert manifest["onnx"]["max_abs_diff"] <= 1e-4 and "model.onnx" in manifest["files"]

    # independently of the export's own check: other rows, other batch sizes
    model = load_model(result.folder)
    session = onnx_session(result.model_folder / "model.onnx")
    rows = frame.drop(columns=[target]).sample(7, random_state=1).reset_index(drop=True)
    inputs = model.preprocessor.transform(rows)
    for take in (slice(0, 1), slice(None)):
        feed = {k: np.ascontiguousarray(v[take]) for k, v in inputs.items()}
        got = session.run(["output"], feed)[0]
        eager = model.predict_output(rows.iloc[take].reset_index(drop=True))
        np.testing.assert_allclose(got, eager, atol=1e-4)
