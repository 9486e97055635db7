"""The prediction store on a real PostgreSQL server: the same tables, feedback upserts, and a
10,000-request load test through the server that loses no row."""

from __future__ import annotations

import json
import time

import pytest
from sklearn.datasets import load_wine

from dlpipe.monitor.report import monitor
from dlpipe.monitor.store import Store
from dlpipe.pipeline import Pipeline
from loopback import load, running, wine_config
from postgres import postgres_url  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow


def test_store_round_trip(postgres_url):  # noqa: F811
    store = Store(postgres_url)
    now = time.time()
    rows = [
        {
            "id": f"pg-{i}",
            "time": now + i,
            "model": "pg-model",
            "version": "1",
            "inputs": json.dumps({"x": i}),
            "prediction": json.dumps("a"),
            "probabilities": json.dumps([0.4, 0.6]),
            "latency_ms": 2.0,
        }
        for i in range(3)
    ]
    store.add_predictions(rows)
    assert store.add_feedback([("pg-1", "b"), ("pg-2", "a")], now) == 2
    assert store.add_feedback([("pg-1", "a")], now + 1) == 1
    frame = store.predictions("pg-model")
    assert frame["id"].tolist() == ["pg-0", "pg-1", "pg-2"]
    assert frame["label"].tolist()[1:] == ['"a"', '"a"'] and frame["label"].isna().tolist()[0]
    assert Store(postgres_url.replace("postgresql+psycopg", "postgresql")).count("pg-model") == 3
    assert "dlpipe@" in store.url and "***" not in store.url  # no password to mask here


def test_ten_thousand_requests_lose_no_row_on_postgres(postgres_url, tmp_path):  # noqa: F811
    result = Pipeline.from_dict(wine_config(name="wine-pg")).run(tmp_path / "runs")
    frame = load_wine(as_frame=True).frame.drop(columns=["target"])
    bodies = [json.dumps({"instances": [row]}).encode() for row in frame.head(100).to_dict(orient="records")]
    with running(result.model_folder, store=postgres_url) as url:
        statuses = load(url, bodies, requests=10_000, concurrency=64)
        store = Store(postgres_url)
        deadline = time.time() + 60
        while store.count("wine-pg") < 10_000:
            assert time.time() < deadline, "rows are missing"
            time.sleep(0.1)
    assert statuses == {200: 10_000} and store.count("wine-pg") == 10_000
    report = monitor(result.model_folder, store=postgres_url, window=1000, notify=False)
    assert report["rows"] == 10_000 and len(report["windows"]) == 10
