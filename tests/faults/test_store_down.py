"""The prediction store locked or gone while a real server answers on loopback: every prediction is
still answered, the rows that wait, fail or are dropped show in /metrics, and the rows resume being
stored when the store returns."""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
import pandas as pd
import pytest

from dlpipe.manifest import REFERENCE
from dlpipe.monitor.store import Store
from dlpipe.pipeline import Pipeline
from loopback import running, wine_config
from postgres import cluster_or_skip

QUEUE = 30  # rows the server buffers for the store; the rest are counted lost


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return Pipeline.from_dict(wine_config(epochs=3)).run(tmp_path_factory.mktemp("wine")).model_folder


@pytest.fixture(scope="module")
def body(model) -> dict:
    """Two rows of wine's columns."""
    rows = pd.read_parquet(model / REFERENCE).filter(regex="^(?!proba_|prediction$|target$)").head(2)
    return {"instances": rows.to_dict("records")}


def metrics(client: httpx.Client) -> dict[str, float]:
    """The monitoring writer's figures from /metrics."""
    found = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("dlpipe_monitor_"):
            name, value = line.rsplit(" ", 1)
            found[name.removesuffix("_total").replace('_total{reason="', "{").replace('"}', "}")] = float(value)
    return found


def wait_for(found, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not found():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def predict(client: httpx.Client, body: dict, requests: int) -> None:
    """`requests` predictions of two rows each, every one answered in full."""
    for _ in range(requests):
        answer = client.post("/predict", json=body)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["predictions"]) == 2


def outage(url: str, model, body: dict, take_down, bring_back) -> dict[str, float]:
    """5 requests with the store up, 20 while it is down (40 rows into a buffer of 30), then up again:
    what /metrics said while it was down."""
    with running(model, store=url, queue_rows=QUEUE) as base, httpx.Client(base_url=base, timeout=30) as client:
        predict(client, body, 5)
        wait_for(lambda: metrics(client)["dlpipe_monitor_rows_stored"] == 10)
        take_down()
        predict(client, body, 20)
        wait_for(lambda: metrics(client)["dlpipe_monitor_store_errors"] >= 1)
        down = metrics(client)
        bring_back()
        wait_for(lambda: metrics(client)["dlpipe_monitor_rows_pending"] == 0)
        after = metrics(client)
    assert down["dlpipe_monitor_rows_pending"] == QUEUE and down["dlpipe_monitor_rows_lost{queue_full}"] == 10
    assert after["dlpipe_monitor_rows_stored"] == 10 + QUEUE and after["dlpipe_monitor_rows_lost{queue_full}"] == 10
    rows = Store(url).predictions("wine")
    assert len(rows) == 10 + QUEUE and rows["id"].is_unique
    assert {json.dumps(json.loads(r)) for r in rows["prediction"]} <= {'"class_0"', '"class_1"', '"class_2"'}
    return down


@pytest.mark.slow
def test_a_locked_sqlite_store(model, body, tmp_path):
    path = tmp_path / "predictions.db"
    holder = sqlite3.connect(path, isolation_level=None)  # another process's writer, say `dlpipe feedback`

    def lock() -> None:
        holder.execute("BEGIN EXCLUSIVE")  # the writer waits 5 s (busy_timeout), fails, and retries

    down = outage(f"sqlite:///{path}", model, body, lock, lambda: holder.execute("ROLLBACK"))
    holder.close()
    assert down["dlpipe_monitor_rows_stored"] == 10


@pytest.mark.slow
def test_a_stopped_postgresql_store(model, body):
    cluster = cluster_or_skip()
    cluster.start()
    try:
        down = outage(cluster.url, model, body, cluster.stop, cluster.start)
    finally:
        cluster.remove()
    assert down["dlpipe_monitor_rows_stored"] == 10
