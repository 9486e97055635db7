"""The inference API on a real server: OIP v2 (JSON and binary, with tritonclient), /predict,
/invocations, and a client's mistakes answered 4xx with a JSON error, never 500."""

from __future__ import annotations

import gzip
import json
import struct

import httpx
import numpy as np
import pandas as pd
import pytest

from conftest import dlpipe
from dlpipe.pipeline import Pipeline
from loopback import running, wine_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wine(with_onnx, tmp_path_factory):
    """A trained wine model, its test rows, and what `dlpipe predict` says about them."""
    folder = tmp_path_factory.mktemp("wine")
    config = wine_config(epochs=15)
    result = Pipeline.from_dict(config).run(folder / "runs")
    rows = Pipeline.from_dict(config).prepare().splits["test"].frame.drop(columns=["target"]).reset_index(drop=True)
    rows.to_csv(folder / "rows.csv", index=False)
    done = dlpipe("predict", str(result.folder), str(folder / "rows.csv"), "-o", str(folder / "predicted.csv"))
    assert done.returncode == 0, done.stderr
    predicted = pd.read_csv(folder / "predicted.csv")
    with running(result.model_folder) as url:
        yield url, rows, predicted, result.model_folder


def test_health_and_metadata(wine):
    url, rows, _, _ = wine
    assert httpx.get(f"{url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{url}/v2/health/ready").json() == {"ready": True}
    assert httpx.get(f"{url}/v2").json()["extensions"] == ["binary_tensor_data"]
    meta = httpx.get(f"{url}/v2/models/wine").json()
    assert [i["name"] for i in meta["inputs"]] == list(rows.columns)
    assert {i["datatype"] for i in meta["inputs"]} == {"FP64"} and meta["platform"] == "dlpipe_onnx"
    assert [o["name"] for o in meta["outputs"]] == ["prediction", "probabilities"]
    assert httpx.get(f"{url}/v2/models/wine/versions/1/ready").json() == {"ready": True}
    assert httpx.get(f"{url}/docs").status_code == 200
    assert "/v2/models/{name}/infer" in httpx.get(f"{url}/openapi.json").json()["paths"]
    for path in ("/v2/models/beer", "/v2/models/wine/versions/7", "/v2/models/beer/ready"):
        response = httpx.get(url + path)
        assert response.status_code == 404 and "error" in response.json()


def test_predict_matches_dlpipe_predict(wine):
    url, rows, predicted, _ = wine
    body = {"instances": rows.to_dict(orient="records")}
    out = httpx.post(f"{url}/predict", json=body).json()
    assert out["predictions"] == predicted["prediction"].tolist()
    assert out["model"] == "wine" and out["version"] == "1" and len(set(out["ids"])) == len(rows)
    for row, expected in zip(out["probabilities"], predicted.itertuples(), strict=True):
        assert row["class_0"] == pytest.approx(expected.proba_class_0, abs=1e-5)
        assert sum(row.values()) == pytest.approx(1.0)


def test_invocations_take_mlflow_payloads(wine):
    url, rows, predicted, _ = wine
    split = json.loads(rows.to_json(orient="split", index=False))
    for body in ({"dataframe_split": split}, {"dataframe_records": rows.to_dict(orient="records")}):
        out = httpx.post(f"{url}/invocations", json=body).json()
        assert out["predictions"] == predicted["prediction"].tolist()


def v2_body(rows: pd.DataFrame) -> dict:
    return {
        "id": "req-1",
        "inputs": [
            {"name": c, "datatype": "FP64", "shape": [len(rows), 1], "data": rows[c].tolist()} for c in rows.columns
        ],
    }


def test_v2_json_infer_echoes_the_id(wine):
    url, rows, predicted, _ = wine
    out = httpx.post(f"{url}/v2/models/wine/infer", json=v2_body(rows)).json()
    assert out["id"] == "req-1" and out["model_name"] == "wine"
    outputs = {o["name"]: o for o in out["outputs"]}
    assert outputs["prediction"]["data"] == predicted["prediction"].tolist()
    probabilities = np.asarray(outputs["probabilities"]["data"]).reshape(outputs["probabilities"]["shape"])
    np.testing.assert_allclose(probabilities[:, 0], predicted["proba_class_0"], atol=1e-5)


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_gets_the_predictions_of_dlpipe_predict(wine, binary):
    tritonclient = pytest.importorskip("tritonclient.http")
    url, rows, predicted, _ = wine
    client = tritonclient.InferenceServerClient(url.removeprefix("http://"))
    assert client.is_server_live() and client.is_model_ready("wine")
    inputs = []
    for column in rows.columns:
        tensor = tritonclient.InferInput(column, [len(rows), 1], "FP64")
        tensor.set_data_from_numpy(rows[[column]].to_numpy(np.float64), binary_data=binary)
        inputs.append(tensor)
    outputs = [tritonclient.InferRequestedOutput(n, binary_data=binary) for n in ("prediction", "probabilities")]
    result = client.infer("wine", inputs, outputs=outputs, request_id="t-1")
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("prediction").reshape(-1)]
    assert labels == predicted["prediction"].tolist()
    np.testing.assert_allclose(result.as_numpy("probabilities")[:, 0], predicted["proba_class_0"], atol=1e-5)
    assert result.get_response()["id"] == "t-1"


def binary_request(rows: pd.DataFrame, tamper: int = 0) -> tuple[bytes, dict]:
    """A binary-extension request; `tamper` shifts the declared size of the first tensor."""
    tensors, chunks = [], []
    for i, column in enumerate(rows.columns):
        raw = rows[column].to_numpy(np.float64).tobytes()
        size = len(raw) + (tamper if i == 0 else 0)
        parameters = {"binary_data_size": size}
        tensors.append({"name": column, "datatype": "FP64", "shape": [len(rows), 1], "parameters": parameters})
        chunks.append(raw)
    head = json.dumps({"inputs": tensors}).encode()
    return head + b"".join(chunks), {"Inference-Header-Content-Length": str(len(head))}


BAD = {
    "malformed JSON": ("/v2/models/wine/infer", b"{not json", {}, 400),
    "inputs not a list": ("/v2/models/wine/infer", b'{"inputs": 3}', {}, 400),
    "unknown model": ("/v2/models/beer/infer", b'{"inputs": []}', {}, 404),
    "unknown version": ("/v2/models/wine/versions/9/infer", b'{"inputs": []}', {}, 404),
    "predict without instances": ("/predict", b'{"rows": []}', {}, 400),
    "predict empty": ("/predict", b'{"instances": []}', {}, 400),
    "predict row not a mapping": ("/predict", b'{"instances": [3]}', {}, 400),
    "not JSON content type": ("/predict", b"a,b", {"Content-Type": "text/csv"}, 415),
    "unsupported encoding": ("/predict", b"{}", {"Content-Encoding": "br"}, 415),
    "bad gzip": ("/predict", b"not gzip", {"Content-Encoding": "gzip"}, 400),
    "header length not a number": ("/v2/models/wine/infer", b"{}", {"Inference-Header-Content-Length": "x"}, 400),
    "header length past the body": ("/v2/models/wine/infer", b"{}", {"Inference-Header-Content-Length": "99"}, 400),
    "invocations with two payloads": ("/invocations", b'{"instances": [], "dataframe_records": []}', {}, 400),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_request_is_a_4xx_json_error(wine, case):
    url, rows, _, _ = wine
    path, body, headers, status = BAD[case]
    response = httpx.post(url + path, content=body, headers={"Content-Type": "application/json", **headers})
    assert response.status_code == status, response.text
    assert isinstance(response.json()["error"], str)
    assert httpx.post(f"{url}/predict", json={"instances": rows.head(1).to_dict(orient="records")}).status_code == 200


def tensor_cases(rows: pd.DataFrame) -> dict:
    one = rows.head(2)
    good = v2_body(one)

    def changed(index: int = 0, **fields) -> dict:
        body = json.loads(json.dumps(good))
        body["inputs"][index].update(fields)
        return body

    dropped = json.loads(json.dumps(good))
    dropped["inputs"].pop()
    doubled = json.loads(json.dumps(good))
    doubled["inputs"].append(doubled["inputs"][0])
    extra = json.loads(json.dumps(good))
    extra["inputs"].append({"name": "colour", "datatype": "FP64", "shape": [2, 1], "data": [1, 2]})
    return {
        "wrong datatype": changed(datatype="BYTES"),
        "unknown datatype": changed(datatype="FP128"),
        "shape/data mismatch": changed(shape=[3, 1]),
        "negative dimension": changed(shape=[-2, 1]),
        "huge dimension": changed(shape=[10**12, 1]),
        "two columns": changed(shape=[2, 2]),
        "rows disagree": changed(1, shape=[1, 1], data=[0.5]),
        "text in a number": changed(data=["a", "b"]),
        "infinity": changed(data=[1e309, 1.0]),
        "nested too deep": changed(data=[[[1.0]], [[2.0]]]),
        "missing feature": dropped,
        "feature twice": doubled,
        "unknown feature": extra,
        "no data": changed(data=None) | {},
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong datatype",
        "unknown datatype",
        "shape/data mismatch",
        "negative dimension",
        "huge dimension",
        "two columns",
        "rows disagree",
        "text in a number",
        "infinity",
        "nested too deep",
        "missing feature",
        "feature twice",
        "unknown feature",
    ],
)
def test_a_bad_tensor_is_a_4xx_naming_the_input(wine, case):
    url, rows, _, _ = wine
    body = tensor_cases(rows)[case]
    response = httpx.post(f"{url}/v2/models/wine/infer", content=json.dumps(body).replace("Infinity", "1e309"))
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert "input" in error or "feature" in error


@pytest.mark.parametrize("tamper", [-8, 8])
def test_binary_sizes_that_disagree_with_the_body_are_refused(wine, tamper):
    url, rows, _, _ = wine
    body, headers = binary_request(rows.head(3), tamper)
    response = httpx.post(f"{url}/v2/models/wine/infer", content=body, headers=headers)
    assert response.status_code == 400 and "bytes" in response.json()["error"]


def test_bad_base64_and_bytes_lengths_are_refused(wine):
    from dlpipe.serve.inputs import Feature, RequestError, frame_from_columns
    from dlpipe.serve.v2 import _from_binary

    with pytest.raises(RequestError, match="not valid base64"):
        frame_from_columns({"photo": ["***"]}, [Feature("photo", "image")], "instances")
    with pytest.raises(RequestError, match="claims 100 bytes"):
        _from_binary(struct.pack("<I", 100) + b"abc", "BYTES", 1, "photo")


def test_oversize_and_gzip_bomb_bodies_are_413(wine):
    from dlpipe.serve.app import Settings

    _, rows, _, model = wine
    with running(model, settings=Settings(max_body=8192)) as url:
        headers = {"Content-Type": "application/json"}
        big = httpx.post(f"{url}/predict", content=b"{" + b" " * 10_000 + b"}", headers=headers)
        assert big.status_code == 413
        bomb = gzip.compress(b'{"instances": [' + b" " * 5_000_000 + b"]}")  # 5 MB in under 8 KB
        assert len(bomb) < 8192
        response = httpx.post(
            f"{url}/predict", content=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
        )
        assert response.status_code == 413 and "decompresses" in response.json()["error"]
        small = gzip.compress(json.dumps({"instances": rows.head(2).to_dict(orient="records")}).encode())
        response = httpx.post(
            f"{url}/predict", content=small, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
        )
        assert response.status_code == 200 and len(response.json()["predictions"]) == 2


def test_predict_takes_a_form_of_numbers(wine):
    url, rows, predicted, _ = wine
    form = {column: [str(v) for v in rows[column].head(2)] for column in rows.columns}
    response = httpx.post(f"{url}/predict", data=form)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == predicted["prediction"].tolist()[:2]
    form["alcohol"] = ["strong", "weak"]
    response = httpx.post(f"{url}/predict", data=form)
    assert response.status_code == 400 and "'alcohol'" in response.json()["error"]


def test_nan_for_a_number_is_a_missing_value(wine):
    url, rows, _, _ = wine
    row = rows.head(1).to_dict(orient="records")[0]
    body = json.dumps({"instances": [row | {"alcohol": None}]}).replace("null", "NaN")
    response = httpx.post(f"{url}/predict", content=body, headers={"Content-Type": "application/json"})
    with_null = httpx.post(f"{url}/predict", json={"instances": [row | {"alcohol": None}]})
    assert response.status_code == 200 and response.json()["probabilities"] == with_null.json()["probabilities"]
