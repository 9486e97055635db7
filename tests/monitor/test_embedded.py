"""Text and image inputs: stored as a hash (or the text) with the model's embedding, never the raw
bytes; their drift measured by a domain classifier on embeddings against the model folder's."""

from __future__ import annotations

import base64
import io
import json
import time

import httpx
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dlpipe.monitor.embeddings import FILE
from dlpipe.monitor.report import monitor
from dlpipe.monitor.store import Store
from dlpipe.pipeline import Pipeline
from loopback import running

pytestmark = pytest.mark.slow
TOPICS = {
    "billing": "invoice refund charge payment card bill price",
    "delivery": "parcel courier late address shipping tracking box",
}
OTHER = "weather rain sunny cloud forecast storm wind snow"


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _image(rng: np.random.Generator, label: str, stripes: bool = False) -> np.ndarray:
    pixels = rng.integers(0, 120, (12, 12)) + (0 if label == "dark" else 120)
    if stripes:  # a new kind of picture: the same brightness, a pattern training never showed
        pixels[::2] = 255 - pixels[::2]
    return pixels


def _sentence(rng: np.random.Generator, words: str) -> str:
    return " ".join(rng.choice(words.split(), 8))


def _wait(store: Store, model: str, rows: int) -> None:
    deadline = time.time() + 60
    while store.count(model) < rows:
        assert time.time() < deadline, "rows were not stored"
        time.sleep(0.05)


def test_image_rows_store_hash_and_embedding_and_drift_is_measured(tmp_path):
    # 1,200 pictures give an 840-row reference, and the unchanged window has 800 rows: the domain
    # classifier's AUC on unchanged data then spreads about 0.015 round 0.5 (20 fresh windows: at
    # most 0.530), where 300 pictures (212 reference rows) and 200-row windows passed 0.55 in 4 of 30
    rng = np.random.default_rng(0)
    rows = []
    for i in range(1200):
        label = "dark" if i % 2 else "light"
        Image.fromarray(_image(rng, label).astype(np.uint8)).save(tmp_path / f"{i}.png")
        rows.append({"photo": f"{i}.png", "target": label})
    pd.DataFrame(rows).to_csv(tmp_path / "index.csv", index=False)
    config = {
        "name": "shades",
        "problem": {"task": "classification", "target": "target"},
        "data": {"source": str(tmp_path / "index.csv")},
        "features": {"photo": {"type": "image", "size": 12}},
        "training": {"epochs": 3, "early_stopping": 0},
    }
    model = Pipeline.from_dict(config).run(tmp_path / "runs").model_folder
    assert FILE in json.loads((model / "model.json").read_text())["files"]
    store = f"sqlite:///{tmp_path / 'm.db'}"
    with running(model, store=store) as url:
        for stripes, requests in ((False, 4), (True, 2)):
            for _ in range(requests):
                images = [_image(rng, rng.choice(["dark", "light"]), stripes) for _ in range(200)]
                instances = [{"photo": base64.b64encode(_png(p)).decode()} for p in images]
                assert httpx.post(f"{url}/predict", json={"instances": instances}).status_code == 200
        _wait(Store(store), "shades", 1200)
    stored = json.loads(Store(store).predictions("shades")["inputs"][0])["photo"]
    assert set(stored) == {"sha256", "bytes", "embedding"} and len(stored["embedding"]) > 8
    report = monitor(model, store=store, window=800, notify=False)
    same, striped = (w["features"]["photo"] for w in report["windows"])
    print(f"domain classifier AUC: unchanged {same['score']:.4f}, striped {striped['score']:.4f}")
    assert same["method"] == "domain_classifier" and not same["drift"] and same["score"] < 0.55
    assert striped["drift"] and striped["score"] > 0.9


def test_text_drift_on_embeddings(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.choice(list(TOPICS), 600)
    frame = pd.DataFrame({"message": [_sentence(rng, TOPICS[t]) for t in labels], "topic": labels})
    frame.to_csv(tmp_path / "tickets.csv", index=False)
    config = {
        "name": "tickets",
        "problem": {"task": "classification", "target": "topic"},
        "data": {"source": str(tmp_path / "tickets.csv")},
        "features": {"message": {"type": "text", "encoder": "bag"}},
        "training": {"epochs": 4, "early_stopping": 0},
    }
    model = Pipeline.from_dict(config).run(tmp_path / "runs").model_folder
    store = f"sqlite:///{tmp_path / 'm.db'}"
    with running(model, store=store) as url:
        same = [_sentence(rng, TOPICS[t]) for t in rng.choice(list(TOPICS), 300)]
        other = [_sentence(rng, OTHER + " " + TOPICS["billing"]) for _ in range(300)]
        ids = [
            httpx.post(f"{url}/predict", json={"instances": [{"message": t} for t in texts]}).json()["ids"]
            for texts in (same, other)
        ]
        _wait(Store(store), "tickets", 600)
    logged = Store(store).predictions("tickets").set_index("id")
    stored = json.loads(logged.loc[ids[0][0], "inputs"])["message"]
    assert stored["text"] == same[0] and len(stored["embedding"]) > 8
    windows = monitor(model, store=store, window=300, notify=False)["windows"]
    assert [w["features"]["message"]["drift"] for w in windows] == [False, True]
