"""The server logs every prediction to the store and takes feedback joined on the rows' ids."""

from __future__ import annotations

import json

import httpx
import pytest

from dlpipe.monitor.store import Store
from dlpipe.pipeline import Pipeline
from loopback import running, wine_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wine(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wine")
    config = wine_config()
    result = Pipeline.from_dict(config).run(folder / "runs")
    rows = Pipeline.from_dict(config).prepare().splits["test"].frame.drop(columns=["target"]).reset_index(drop=True)
    store = f"sqlite:///{folder / 'monitor.db'}"
    with running(result.model_folder, store=store) as url:
        yield url, rows, Store(store)


def _stored(store: Store, ids: list[str]):
    frame = store.predictions("wine")
    return frame.set_index("id").loc[ids]


def _wait_for(store: Store, ids: list[str], seconds: float = 20):
    import time

    deadline = time.time() + seconds
    while not set(ids) <= set(store.predictions("wine")["id"]):
        assert time.time() < deadline, "the rows were not stored"
        time.sleep(0.05)


def test_every_route_logs_its_rows_with_the_ids_it_returns(wine):
    url, rows, store = wine
    records = rows.head(3).to_dict(orient="records")
    plain = httpx.post(f"{url}/predict", json={"instances": records}).json()
    mlflow = httpx.post(f"{url}/invocations", json={"dataframe_records": records}).json()
    inputs = [{"name": c, "datatype": "FP64", "shape": [2, 1], "data": rows[c].head(2).tolist()} for c in rows]
    v2 = httpx.post(f"{url}/v2/models/wine/infer", json={"inputs": inputs}).json()
    ids = plain["ids"] + mlflow["ids"] + v2["parameters"]["ids"]
    assert len(set(ids)) == 8
    _wait_for(store, ids)
    stored = _stored(store, plain["ids"])
    assert [json.loads(v) for v in stored["prediction"]] == plain["predictions"]
    assert json.loads(stored["inputs"].iloc[0]) == pytest.approx(records[0])
    probabilities = json.loads(stored["probabilities"].iloc[0])
    assert probabilities == pytest.approx(list(plain["probabilities"][0].values()), abs=1e-6)
    assert (stored["version"] == "1").all() and (stored["latency_ms"] > 0).all()


def test_a_requests_rows_are_stored_in_the_order_they_were_sent(wine):
    """The rows of one request share one time and the store breaks ties by id: random ids gave the
    monitor a different row order, and so a different drift score, for the same traffic."""
    url, rows, store = wine
    records = rows.head(20).to_dict(orient="records")
    ids = httpx.post(f"{url}/predict", json={"instances": records}).json()["ids"]
    assert ids == sorted(ids) and len(set(ids)) == len(records) == 20 and all(len(i) == 32 for i in ids)
    _wait_for(store, ids)
    logged = store.predictions("wine")
    assert logged["id"][logged["id"].isin(ids)].tolist() == ids


def test_client_ids_and_feedback_join(wine):
    url, rows, store = wine
    records = rows.head(2).to_dict(orient="records")
    out = httpx.post(f"{url}/predict", json={"instances": records, "ids": ["order-1", "order-2"]}).json()
    assert out["ids"] == ["order-1", "order-2"]
    assert httpx.post(f"{url}/feedback", json={"id": "order-1", "label": "class_0"}).json() == {"received": 1}
    many = [{"id": "order-2", "label": " class_2."}, {"id": "order-1", "label": "class_1"}]
    assert httpx.post(f"{url}/feedback", json=many).json() == {"received": 2}
    _wait_for(store, out["ids"])
    labels = _stored(store, out["ids"])["label"].map(json.loads).tolist()
    assert labels == ["class_1", "class_2"]  # cleaned as training cleaned labels; the newer label wins


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"id": "x", "label": "class_9"}, "unknown class 'class_9'"),
        ({"id": "", "label": "class_0"}, "id must be a non-empty string"),
        ({"id": "x"}, 'must be {"id": ..., "label": ...}'),
        ([{"id": "x", "label": "class_0"}, {"id": "y", "label": None}], "feedback[1]: label must be one of"),
        ([], "non-empty list"),
        ({"id": "x", "label": " "}, "label is empty"),
        ({"id": "x", "label": ""}, "label is empty"),
        ("class_0", 'must be {"id"'),
    ],
)
def test_bad_feedback_is_a_400_naming_the_item(wine, body, expected):
    url, _, _ = wine
    response = httpx.post(f"{url}/feedback", json=body)
    assert response.status_code == 400 and expected in response.json()["error"]


def test_nan_label_is_a_400(wine):
    url, _, _ = wine
    response = httpx.post(
        f"{url}/feedback", content=b'{"id": "x", "label": NaN}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and "label is empty" in response.json()["error"]


def test_bad_client_ids_are_refused(wine):
    url, rows, _ = wine
    records = rows.head(2).to_dict(orient="records")
    for ids, expected in [(["a"], "list of 2 strings"), (["a", "a"], "distinct"), (["a", 3], "ids[1]")]:
        response = httpx.post(f"{url}/predict", json={"instances": records, "ids": ids})
        assert response.status_code == 400 and expected in response.json()["error"]


def test_metrics_count_stored_rows(wine):
    url, rows, store = wine
    ids = httpx.post(f"{url}/predict", json={"instances": rows.head(5).to_dict(orient="records")}).json()["ids"]
    _wait_for(store, ids)
    text = httpx.get(f"{url}/metrics").text
    assert 'dlpipe_monitor_rows_lost_total{reason="queue_full"} 0.0' in text
    lines = text.splitlines()
    stored = next(float(line.split()[-1]) for line in lines if line.startswith("dlpipe_monitor_rows_stored"))
    assert stored == store.count("wine") and "dlpipe_monitor_rows_pending 0.0" in text


def test_a_server_without_a_store_refuses_feedback(tmp_path):
    result = Pipeline.from_dict(wine_config()).run(tmp_path / "runs")
    with running(result.model_folder) as url:
        response = httpx.post(f"{url}/feedback", json={"id": "x", "label": "class_0"})
    assert response.status_code == 404 and "no monitoring store" in response.json()["error"]
