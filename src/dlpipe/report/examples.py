"""The test rows a person should look at: the misclassified ones the model was surest of (or, for
regression, the largest errors), recorded at evaluation in `examples.json` with each input shown
by value (a thumbnail, a text snippet, a number), so the report needs no user file to be rebuilt
and names none."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlpipe.metrics import predicted as decided

if TYPE_CHECKING:
    from dlpipe.prepare.preprocessor import Column

EXAMPLES = "examples.json"
SHOWN = 8  # rows kept: a screenful
THUMB = 64  # pixels, the longer side of a thumbnail
SNIPPET = 240  # characters of a text kept
VALUE = 40  # characters of any other value kept
COLUMNS = 12  # input columns shown per row of a wide table


def worst_rows(
    y: np.ndarray, output: np.ndarray, classes: list[str] | None, threshold: float | None = None
) -> list[tuple[int, dict[str, Any]]]:
    """(row, what the report says of it): wrong predictions (a binary model's at `threshold` when
    given) by the probability the model gave its wrong answer, or the largest absolute errors; at
    most SHOWN."""
    if classes is None:
        error = np.abs(np.asarray(output, float) - np.asarray(y, float))
        rows = np.argsort(-error, kind="stable")[:SHOWN]
        return [
            (int(i), {"actual": float(y[i]), "predicted": float(output[i]), "error": float(error[i])}) for i in rows
        ]
    predicted = decided(output, threshold)
    confidence = output[np.arange(len(y)), predicted]
    wrong = np.flatnonzero(predicted != y)
    rows = wrong[np.argsort(-confidence[wrong], kind="stable")][:SHOWN]
    return [
        (
            int(i),
            {
                "true": classes[int(y[i])],
                "predicted": classes[int(predicted[i])],
                "probability": float(confidence[i]),
                "true_probability": float(output[i, int(y[i])]),
            },
        )
        for i in rows
    ]


def record(
    y: np.ndarray,
    output: np.ndarray,
    classes: list[str] | None,
    frame: pd.DataFrame,
    inputs: dict[str, np.ndarray],
    columns: list[Column],
    threshold: float | None = None,
) -> dict[str, Any]:
    """What examples.json holds: the worst rows with their inputs shown by value, and how many test
    rows there were and were wrong."""
    rows = []
    for i, facts in worst_rows(y, output, classes, threshold):
        shown = {c.name: show(c, frame[c.name].iloc[i], inputs, i) for c in columns[:COLUMNS]}
        rows.append({**facts, "inputs": shown})
    out: dict[str, Any] = {"task": "regression" if classes is None else "classification", "rows": rows}
    out["test_rows"] = len(y)
    if classes is not None:
        out["wrong"] = int((decided(output, threshold) != y).sum())
    out["columns_left_out"] = max(len(columns) - COLUMNS, 0)
    return out


def show(column: Column, value: Any, inputs: dict[str, np.ndarray], row: int) -> dict[str, str]:
    """One input as the report shows it: {"image": data URI} or {"text": a short, plain string}."""
    if column.type == "image":
        uri = image_uri(value)
        return {"image": uri} if uri else {"text": "(image not readable)"}
    if column.type == "audio":
        spectrogram = inputs.get(f"audio:{column.name}")
        return {"image": spectrogram_uri(spectrogram[row, 0])} if spectrogram is not None else {"text": "(audio)"}
    limit = SNIPPET if column.type == "text" else VALUE
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        text = "missing"
    elif isinstance(value, float | np.floating):
        text = f"{value:.4g}"
    else:
        text = str(value)
    text = " ".join(text.split())
    return {"text": text if len(text) <= limit else text[: limit - 1] + "…"}


def image_uri(value: Any) -> str | None:
    """A thumbnail of an image file (at most THUMB pixels a side) as a PNG or JPEG data URI, whichever
    is smaller; None when it cannot be read."""
    from PIL import Image, ImageOps

    try:
        with Image.open(value) as image:
            image.draft("RGB", (THUMB * 2, THUMB * 2))  # a large JPEG decodes at a fraction of its size
            image = ImageOps.exif_transpose(image)
            image.thumbnail((THUMB, THUMB))
            image = image.convert("L" if image.mode in ("1", "L", "I", "I;16", "F") else "RGB")
            return _smallest_uri(image)
    except Exception:  # Pillow raises many kinds; a file gone since training is not worth a failed report
        return None


def spectrogram_uri(spectrogram: np.ndarray) -> str:
    """A log-mel spectrogram (mels, frames) as a greyscale PNG, low frequencies at the bottom."""
    from PIL import Image

    low, high = float(spectrogram.min()), float(spectrogram.max())
    scaled = (spectrogram - low) / (high - low or 1.0) * 255
    image = Image.fromarray(np.flipud(scaled).astype(np.uint8), "L")
    mels, frames = spectrogram.shape  # time and pitch are no square grid: each axis shrunk on its own
    image = image.resize((min(frames, THUMB * 2), min(mels, THUMB)), Image.Resampling.BOX)
    return _smallest_uri(image)


def _smallest_uri(image: Any) -> str:
    encoded = []
    for kind, options in (("png", {"optimize": True}), ("jpeg", {"quality": 80})):
        buffer = io.BytesIO()
        image.save(buffer, kind, **options)
        encoded.append((len(buffer.getvalue()), kind, buffer.getvalue()))
    _, kind, data = min(encoded)
    return f"data:image/{kind};base64," + base64.b64encode(data).decode("ascii")
