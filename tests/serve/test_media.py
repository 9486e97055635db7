"""An image model behind the server: file content as base64 in JSON or raw bytes in binary tensors,
the same predictions as `dlpipe predict` on the files; the server never opens a path it is sent."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import dlpipe
from dlpipe.pipeline import Pipeline
from loopback import running

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shades(with_onnx, tmp_path_factory):
    folder = tmp_path_factory.mktemp("shades")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(60):
        label = "dark" if i % 2 else "light"
        pixels = rng.integers(0, 120, (12, 12)) + (0 if label == "dark" else 120)
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
        rows.append({"photo": f"{i}.png", "target": label})
    pd.DataFrame(rows).to_csv(folder / "index.csv", index=False)
    config = {
        "name": "shades",
        "problem": {"task": "classification", "target": "target"},
        "data": {"source": str(folder / "index.csv")},
        "features": {"photo": {"type": "image", "size": 12}},
        "training": {"epochs": 3, "early_stopping": 0},
    }
    result = Pipeline.from_dict(config).run(folder / "runs")
    new = pd.DataFrame({"photo": [f"{i}.png" for i in range(50, 60)]})
    new.to_csv(folder / "new.csv", index=False)
    done = dlpipe("predict", str(result.folder), str(folder / "new.csv"), "-o", str(folder / "predicted.csv"))
    assert done.returncode == 0, done.stderr
    content = [(folder / p).read_bytes() for p in new["photo"]]
    with running(result.model_folder) as url:
        yield url, content, pd.read_csv(folder / "predicted.csv"), result.model_folder


def test_predict_takes_base64_images(shades):
    url, content, predicted, _ = shades
    instances = [{"photo": base64.b64encode(c).decode()} for c in content]
    out = httpx.post(f"{url}/predict", json={"instances": instances}).json()
    assert out["predictions"] == predicted["prediction"].tolist()


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_sends_image_bytes(shades, binary):
    tritonclient = pytest.importorskip("tritonclient.http")
    url, content, predicted, _ = shades
    client = tritonclient.InferenceServerClient(url.removeprefix("http://"))
    meta = client.get_model_metadata("shades")
    assert meta["inputs"] == [{"name": "photo", "datatype": "BYTES", "shape": [-1, 1]}]
    tensor = tritonclient.InferInput("photo", [len(content), 1], "BYTES")
    values = content if binary else [base64.b64encode(c).decode() for c in content]
    tensor.set_data_from_numpy(np.array(values, dtype=object).reshape(-1, 1), binary_data=binary)
    result = client.infer("shades", [tensor], outputs=[tritonclient.InferRequestedOutput("prediction", binary)])
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("prediction").reshape(-1)]
    assert labels == predicted["prediction"].tolist()


def test_a_path_in_a_request_is_never_opened(shades, tmp_path):
    url, _, _, _ = shades
    secret = tmp_path / "secret.png"
    Image.fromarray(np.zeros((12, 12), dtype=np.uint8)).save(secret)
    response = httpx.post(f"{url}/predict", json={"instances": [{"photo": str(secret)}]})
    assert response.status_code == 400 and "base64" in response.json()["error"]


def test_an_unreadable_image_fails_only_its_request(shades):
    url, content, predicted, _ = shades
    bad = base64.b64encode(b"\x89PNG but not really").decode()
    response = httpx.post(f"{url}/predict", json={"instances": [{"photo": bad}]})
    assert response.status_code == 400 and "not a readable image" in response.json()["error"]
    good = httpx.post(f"{url}/predict", json={"instances": [{"photo": base64.b64encode(content[0]).decode()}]})
    assert good.json()["predictions"] == predicted["prediction"].tolist()[:1]


def test_in_a_shared_batch_a_bad_image_fails_only_its_own_request(shades):
    import asyncio

    from dlpipe.serve.app import Settings

    _, content, predicted, folder = shades
    bad = {"instances": [{"photo": base64.b64encode(b"GIF89a broken").decode()}]}
    goods = [{"instances": [{"photo": base64.b64encode(c).decode()}]} for c in content[:5]]

    async def send(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(client.post(f"{url}/predict", json=b) for b in [*goods[:2], bad, *goods[2:]]))

    with running(folder, settings=Settings(max_batch_size=16, max_delay_ms=200)) as url:
        answers = asyncio.run(send(url))
    assert [a.status_code for a in answers] == [200, 200, 400, 200, 200, 200]
    good = [a.json()["predictions"][0] for i, a in enumerate(answers) if i != 2]
    assert good == predicted["prediction"].tolist()[:5]


def test_the_python_client_sends_files_as_content(shades, tmp_path):
    import dlpipe

    url, content, predicted, _ = shades
    paths = []
    for i, data in enumerate(content):
        (tmp_path / f"{i}.png").write_bytes(data)
        paths.append(tmp_path / f"{i}.png")
    with dlpipe.Client(url) as client:
        assert client.ready()
        out = client.predict(pd.DataFrame({"photo": paths}, index=range(100, 100 + len(paths))))
        assert out["prediction"].tolist() == predicted["prediction"].tolist()
        assert list(out.index) == list(range(100, 110)) and out["id"].is_unique
        assert {"proba_dark", "proba_light"} <= set(out.columns)
        with pytest.raises(dlpipe.client.ServerError, match=r"400: .*not a readable image"):
            client.predict([{"photo": b"not an image"}])


def test_predict_takes_a_multipart_upload(shades):
    url, content, predicted, _ = shades
    files = [("photo", (f"{i}.png", data, "image/png")) for i, data in enumerate(content[:3])]
    response = httpx.post(f"{url}/predict", files=files)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == predicted["prediction"].tolist()[:3]
    wrong = httpx.post(f"{url}/predict", files=[("picture", ("a.png", content[0], "image/png"))])
    assert wrong.status_code == 400 and "unknown feature 'picture'" in wrong.json()["error"]
    bad = httpx.post(f"{url}/predict", files=[("photo", ("a.png", b"not a png", "image/png"))])
    assert bad.status_code == 400 and "not a readable image" in bad.json()["error"]


def test_nan_is_refused_where_it_is_not_a_missing_number(shades):
    url, _, _, _ = shades
    body = b'{"instances": [{"photo": NaN}]}'  # Python's JSON reads the literal; an image is no number
    response = httpx.post(f"{url}/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "'photo'" in response.json()["error"]
