"""`dlpipe serve` as a user runs it: a child process on loopback, its flags, and a graceful stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from dlpipe.pipeline import Pipeline
from loopback import free_port, load, wine_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(with_onnx, tmp_path_factory):
    config = wine_config(serving={"max_batch_size": 64})
    return Pipeline.from_dict(config).run(tmp_path_factory.mktemp("runs")).folder


def start(*args: str, env: dict | None = None, cwd: Path | None = None) -> tuple[subprocess.Popen, str]:
    """`dlpipe serve` in a child process (in `cwd`, where the default prediction store goes)."""
    port = free_port()
    command = [sys.executable, "-m", "dlpipe.cli", "serve", *args, "--port", str(port)]
    child = subprocess.Popen(
        command,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd or tempfile.mkdtemp(prefix="dlpipe-serve-"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return child, url
        except httpx.TransportError:
            time.sleep(0.1)
        if child.poll() is not None:
            raise AssertionError(child.stderr.read())
    child.kill()
    raise AssertionError("the server did not become ready")


def rows(n: int) -> list[dict]:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.drop(columns=["target"])
    return frame.iloc[np.arange(n) % len(frame)].to_dict(orient="records")


def test_sigterm_finishes_the_request_in_flight_then_exits(model):
    import json

    child, url = start(str(model))
    data = json.dumps({"instances": rows(20_000)}).encode()
    sent_part, signalled = threading.Event(), threading.Event()

    def body():  # the request is surely in flight: half sent when the signal arrives
        yield data[: len(data) // 2]
        sent_part.set()
        signalled.wait(30)
        yield data[len(data) // 2 :]

    answer: dict = {}

    def big_request() -> None:
        headers = {"Content-Type": "application/json"}
        answer["response"] = httpx.post(f"{url}/predict", content=body(), headers=headers, timeout=120)

    sender = threading.Thread(target=big_request)
    sender.start()
    assert sent_part.wait(30)
    time.sleep(0.2)
    child.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    signalled.set()
    sender.join(120)
    # uvicorn drains, then re-raises the signal so the parent sees how the server ended
    assert child.wait(60) in (0, -signal.SIGTERM)
    response = answer["response"]
    assert response.status_code == 200 and len(response.json()["predictions"]) == 20_000


def test_token_file_and_flags(model, tmp_path):
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    child, url = start(str(model), "--token-file", str(token), "--runtime", "torch")
    try:
        assert httpx.post(f"{url}/predict", json={"instances": rows(2)}).status_code == 401
        ok = httpx.post(f"{url}/predict", json={"instances": rows(2)}, headers={"Authorization": "Bearer t0ken"})
        assert ok.status_code == 200
        meta = httpx.get(f"{url}/v2/models/wine", headers={"Authorization": "Bearer t0ken"}).json()
        assert meta["platform"] == "dlpipe_torch"
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(60)


def test_a_missing_model_is_a_clear_error(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "dlpipe.cli", "serve", str(tmp_path / "nothing")], capture_output=True, text=True
    )
    assert done.returncode == 2 and "model not found" in done.stderr


def test_ten_thousand_requests_at_concurrency_64_have_no_errors_and_lose_no_row(model, tmp_path):
    import json

    from dlpipe.monitor.store import Store

    child, url = start(str(model), "--max-delay-ms", "2", cwd=tmp_path)
    bodies = [json.dumps({"instances": [row]}).encode() for row in rows(100)]

    try:
        statuses = load(url, bodies, requests=10_000, concurrency=64)
        metrics = httpx.get(f"{url}/metrics").text
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(60)
    assert statuses == {200: 10_000}
    assert Store(f"sqlite:///{tmp_path / 'dlpipe-monitor.db'}").count("wine") == 10_000
    assert 'dlpipe_monitor_rows_lost_total{reason="queue_full"} 0.0' in metrics
    calls = sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("dlpipe_batch_rows_count"))
    assert calls < 10_000  # concurrent requests shared model calls


def test_predictions_go_to_the_default_store_and_a_stop_writes_them_all(model, tmp_path):
    from dlpipe.monitor.store import Store

    child, url = start(str(model), cwd=tmp_path)
    ids = []
    for _ in range(30):
        ids += httpx.post(f"{url}/predict", json={"instances": rows(2)}).json()["ids"]
    child.send_signal(signal.SIGTERM)
    assert child.wait(30) in (0, -signal.SIGTERM)
    stored = Store(f"sqlite:///{tmp_path / 'dlpipe-monitor.db'}").predictions("wine")
    assert sorted(stored["id"]) == sorted(ids)
