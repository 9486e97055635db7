"""Batching, back-pressure, metrics and auth, on a real server."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from dlpipe.pipeline import Pipeline
from dlpipe.serve.app import Settings
from loopback import running, wine_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(with_onnx, tmp_path_factory):
    config = wine_config()
    result = Pipeline.from_dict(config).run(tmp_path_factory.mktemp("runs"))
    rows = Pipeline.from_dict(config).prepare().splits["test"].frame.drop(columns=["target"])
    return result.model_folder, rows.to_dict(orient="records")


async def _post_all(url: str, bodies: list[dict], headers: dict | None = None) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as client:
        return await asyncio.gather(*(client.post(f"{url}/predict", json=b, headers=headers) for b in bodies))


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_concurrent_requests_share_batches_counted_in_rows(model):
    folder, rows = model
    with running(folder, settings=Settings(max_batch_size=8, max_delay_ms=100)) as url:
        alone = [httpx.post(f"{url}/predict", json={"instances": [r]}).json()["predictions"][0] for r in rows[:16]]
        before = _metric(httpx.get(f"{url}/metrics").text, "dlpipe_batch_rows_count")
        answers = asyncio.run(_post_all(url, [{"instances": [r]} for r in rows[:16]]))
        assert [a.json()["predictions"][0] for a in answers] == alone  # each got its own rows back
        text = httpx.get(f"{url}/metrics").text
        calls = _metric(text, "dlpipe_batch_rows_count") - before
        assert calls <= 4  # 16 rows in batches of at most 8 rows: not one call per request
        big = httpx.post(f"{url}/predict", json={"instances": rows[:20]}).json()  # more rows than a batch
        assert big["predictions"][:16] == alone and len(big["predictions"]) == 20


def test_a_full_queue_answers_503_with_retry_after(model):
    folder, rows = model
    with running(folder, settings=Settings(max_batch_size=1, max_delay_ms=0, max_queue=1)) as url:
        answers = asyncio.run(_post_all(url, [{"instances": rows[:50]}] * 40))
        statuses = {a.status_code for a in answers}
        assert statuses <= {200, 503} and 503 in statuses and 200 in statuses
        busy = next(a for a in answers if a.status_code == 503)
        assert busy.headers["retry-after"] == "1" and "busy" in busy.json()["error"]
        assert httpx.post(f"{url}/predict", json={"instances": rows[:1]}).status_code == 200  # still serving


def test_metrics_count_requests_by_route_and_status(model):
    folder, rows = model
    with running(folder) as url:
        httpx.post(f"{url}/predict", json={"instances": rows[:3]})
        httpx.post(f"{url}/predict", json={"instances": []})
        httpx.get(f"{url}/v2/models/nope")
        text = httpx.get(f"{url}/metrics").text
    assert 'dlpipe_requests_total{route="/predict",status="200"} 1.0' in text
    assert 'dlpipe_requests_total{route="/predict",status="400"} 1.0' in text
    assert 'dlpipe_requests_total{route="/v2/models/{name}",status="404"} 1.0' in text
    assert 'dlpipe_model_info{name="wine",runtime="onnx",version="1"} 1.0' in text
    assert _metric(text, "dlpipe_predicted_rows_total") == 3
    assert "dlpipe_request_seconds_bucket" in text and "dlpipe_queue_seconds_count" in text


def test_a_token_guards_every_route_but_health(model):
    folder, rows = model
    with running(folder, settings=Settings(token="s3cret")) as url:
        assert httpx.get(f"{url}/v2/health/ready").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            response = httpx.post(f"{url}/predict", json={"instances": rows[:1]}, headers=headers)
            assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
            assert httpx.get(f"{url}/metrics", headers=headers).status_code == 401
        ok = httpx.post(f"{url}/predict", json={"instances": rows[:1]}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
