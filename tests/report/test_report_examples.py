"""examples.json: the worst test rows, their inputs by value (thumbnails, snippets), and the report's
rendering of them, which lets no markup and no non-image URI through."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pandas as pd
from PIL import Image

from dlpipe.prepare.preprocessor import Column
from dlpipe.report.examples import SHOWN, THUMB, record, worst_rows
from dlpipe.report.sections import examples_section

CLASSES = ["cat", "dog", "fox"]


def _decoded(uri: str) -> Image.Image:
    assert uri.startswith(("data:image/png;base64,", "data:image/jpeg;base64,"))
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def test_the_misclassified_rows_the_model_was_surest_of_come_first():
    y = np.array([0, 1, 2, 0, 1])
    output = np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1], [0.1, 0.5, 0.4]])
    rows = worst_rows(y, output, CLASSES)
    assert [i for i, _ in rows] == [3, 1]  # wrong at 0.7, then at 0.6; the right ones left out
    assert rows[0][1] == {"true": "cat", "predicted": "dog", "probability": 0.7, "true_probability": 0.2}


def test_regression_shows_the_largest_errors_and_at_most_a_screenful():
    y = np.zeros(50)
    output = np.arange(50.0) - 25
    rows = worst_rows(y, output, None)
    assert len(rows) == SHOWN and rows[0][0] == 0 and rows[0][1]["error"] == 25.0


def test_inputs_are_recorded_by_value_small_and_safe(tmp_path):
    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 500, 3), dtype=np.uint8)).save(photo)
    frame = pd.DataFrame(
        {
            "photo": [str(photo), str(tmp_path / "gone.png")],
            "review": ["<script>alert(1)</script> " + "long words " * 100, None],
            "price": [12.3456789, float("nan")],
            "plan": pd.Series(["pro", pd.NA], dtype="string"),
        }
    )
    spectrograms = np.random.default_rng(1).normal(size=(2, 1, 40, 200)).astype(np.float32)
    columns = [Column("photo", "image", ""), Column("review", "text", ""), Column("price", "numeric", "")]
    columns.append(Column("plan", "category", ""))
    columns.append(Column("clip", "audio", ""))
    frame["clip"] = ["a.wav", "b.wav"]
    examples = record(
        np.array([0, 1]),
        np.array([[0.2, 0.8], [0.9, 0.1]]),
        ["no", "yes"],
        frame,
        {"audio:clip": spectrograms},
        columns,
    )
    assert examples["wrong"] == 2 and examples["test_rows"] == 2
    first = examples["rows"][0]["inputs"]  # the 0.9-sure mistake (row 1) before the 0.8-sure one
    assert first["photo"] == {"text": "(image not readable)"}
    assert first["price"] == first["plan"] == first["review"] == {"text": "missing"}
    shown = examples["rows"][1]["inputs"]
    assert max(_decoded(shown["photo"]["image"]).size) == THUMB
    assert _decoded(shown["clip"]["image"]).size == (2 * THUMB, 40)
    assert len(shown["review"]["text"]) <= 240 and shown["price"] == {"text": "12.35"}
    text = json.dumps(examples)
    assert str(tmp_path) not in text  # no path to the user's files

    html = examples_section(examples)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert html.count('<img class="thumb"') == 3  # one photo (the other is gone), two recordings


def test_only_image_data_uris_become_images():
    examples = {
        "task": "classification",
        "wrong": 1,
        "test_rows": 1,
        "rows": [
            {
                "true": "a",
                "predicted": "<b>",
                "probability": 0.9,
                "true_probability": 0.1,
                "inputs": {"x": {"image": "javascript:alert(1)"}, "y": {"image": 'data:image/png;base64,"onerror="x'}},
            }
        ],
    }
    html = examples_section(examples)
    assert "<img" not in html and "javascript" not in html and "onerror" not in html
    assert "&lt;b&gt;" in html


def test_a_binary_models_mistakes_are_judged_at_its_threshold():
    y = np.array([0, 1, 0])
    output = np.array([[0.6, 0.4], [0.8, 0.2], [0.9, 0.1]])
    assert [i for i, _ in worst_rows(y, output, ["no", "yes"])] == [1]  # argmax: only row 1 is wrong
    rows = worst_rows(y, output, ["no", "yes"], threshold=0.3)  # row 0 says yes at 0.4 >= 0.3
    assert [i for i, _ in rows] == [1, 0] and rows[1][1]["predicted"] == "yes"
