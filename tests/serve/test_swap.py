"""A server on `models:/NAME@champion` follows the alias: a promotion swaps versions while a client
keeps sending, with no failed request; named versions are reachable; reload is for the token holder."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from sklearn.datasets import load_iris

from conftest import tiny_config
from dlpipe.pipeline import Pipeline
from dlpipe.registry import Registry
from dlpipe.serve.app import Settings
from loopback import running

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    folder = tmp_path_factory.mktemp("swap")
    registry = Registry(folder / "reg")
    for epochs in (2, 12):  # two versions that answer differently
        config = tiny_config(training={"epochs": epochs})
        registry.register(Pipeline.from_dict(config).run(folder / "runs").model_folder)
    registry.set_alias("iris", 1)
    return registry


def test_a_promotion_swaps_without_a_failed_request(registry, monkeypatch):
    monkeypatch.setenv("DLPIPE_REGISTRY", str(registry.root))
    registry.set_alias("iris", 1)
    rows = load_iris(as_frame=True).frame.drop(columns=["target"]).head(5).to_dict(orient="records")
    seen: list[tuple[int, str | None]] = []
    stop = threading.Event()
    with running("models:/iris@champion", settings=Settings(token="t0ken", poll_seconds=0.1)) as url:
        headers = {"Authorization": "Bearer t0ken"}

        def client() -> None:
            with httpx.Client(headers=headers, timeout=30) as http:
                while not stop.is_set():
                    answer = http.post(f"{url}/predict", json={"instances": rows})
                    seen.append((answer.status_code, answer.json().get("version")))

        sender = threading.Thread(target=client)
        sender.start()
        time.sleep(0.5)
        registry.set_alias("iris", 2)
        deadline = time.time() + 30
        while not seen or seen[-1][1] != "2":
            assert time.time() < deadline, "the server did not swap"
            time.sleep(0.05)
        time.sleep(0.5)
        stop.set()
        sender.join()
        metrics = httpx.get(f"{url}/metrics", headers=headers).text
        old = httpx.post(f"{url}/v2/models/iris/versions/1/infer", headers=headers, json=_v2(rows))
        meta = httpx.get(f"{url}/v2/models/iris", headers=headers).json()
    assert {status for status, _ in seen} == {200}
    versions = [v for _, v in seen]
    assert versions[0] == "1" and versions[-1] == "2"
    assert versions == sorted(versions)  # once switched, never back
    assert "dlpipe_model_swaps_total 1.0" in metrics
    assert old.status_code == 200 and old.json()["model_version"] == "1" and meta["versions"] == ["2"]


def _v2(rows: list[dict]) -> dict:
    return {
        "inputs": [{"name": c, "datatype": "FP64", "shape": [len(rows)], "data": [r[c] for r in rows]} for c in rows[0]]
    }


def test_reload_needs_the_token_and_a_registry_source(registry, monkeypatch):
    monkeypatch.setenv("DLPIPE_REGISTRY", str(registry.root))
    registry.set_alias("iris", 1)
    with running("models:/iris@champion", settings=Settings(token="t0ken", poll_seconds=3600)) as url:
        assert httpx.post(f"{url}/admin/reload").status_code == 401
        registry.set_alias("iris", 2)
        answer = httpx.post(f"{url}/admin/reload", headers={"Authorization": "Bearer t0ken"})
        assert answer.json() == {"swapped": True, "version": "2"}
        missing = httpx.post(f"{url}/v2/models/iris/versions/9/infer", headers={"Authorization": "Bearer t0ken"})
        assert missing.status_code == 404
    with running("models:/iris@champion") as url:  # prediction routes open, admin routes shut
        refused = httpx.post(f"{url}/admin/reload")
        assert refused.status_code == 403 and "need a token" in refused.json()["error"]
    with running(registry.get("iris", 1).folder, settings=Settings(token="t")) as url:
        folder = httpx.post(f"{url}/admin/reload", headers={"Authorization": "Bearer t"})
        assert folder.status_code == 409


def test_a_shadow_model_answers_the_same_rows_for_the_log_only(registry, monkeypatch, tmp_path):
    from dlpipe.monitor.report import monitor
    from dlpipe.monitor.store import Store

    monkeypatch.setenv("DLPIPE_REGISTRY", str(registry.root))
    registry.set_alias("iris", 1)
    registry.set_alias("iris", 2, "challenger")
    store = f"sqlite:///{tmp_path / 'm.db'}"
    frame = load_iris(as_frame=True).frame
    rows = frame.drop(columns=["target"]).to_dict(orient="records")
    with running("models:/iris@champion", store=store, shadow="models:/iris@challenger") as url:
        answer = httpx.post(f"{url}/predict", json={"instances": rows}).json()
        assert answer["version"] == "1"
        names = load_iris().target_names
        labels = [{"id": i, "label": str(names[t])} for i, t in zip(answer["ids"], frame["target"], strict=True)]
        httpx.post(f"{url}/feedback", json=labels)
        deadline = time.time() + 30
        while Store(store).count("iris") < 2 * len(rows):
            assert time.time() < deadline, "the shadow's rows were not stored"
            time.sleep(0.05)
    assert Store(store).predictions("iris")["shadow_of"].isna().all()  # served answers unless asked
    shadow = Store(store).predictions("iris", shadow=True)
    assert sorted(shadow["shadow_of"]) == sorted(answer["ids"]) and set(shadow["version"]) == {"2"}
    assert shadow["label"].notna().all()  # the served answer's feedback label counts for the shadow too
    served, challenger = (monitor(f"models:/iris/{v}", store=store, notify=False) for v in (1, 2))
    assert served["rows"] == challenger["rows"] == len(rows)
    assert challenger["performance"]["labelled"] == len(rows)
    assert served["performance"]["metrics"]["accuracy"] != challenger["performance"]["metrics"]["accuracy"]


def test_a_request_half_sent_during_a_swap_is_answered(registry, monkeypatch):
    import json
    import socket

    monkeypatch.setenv("DLPIPE_REGISTRY", str(registry.root))
    registry.set_alias("iris", 1)
    row = load_iris(as_frame=True).frame.drop(columns=["target"]).head(1).to_dict(orient="records")
    body = json.dumps({"instances": row}).encode()
    with running("models:/iris@champion", settings=Settings(poll_seconds=0.1)) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            head = f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
            client.sendall(head.encode() + b"\r\n\r\n" + body[:10])
            time.sleep(0.3)
            registry.set_alias("iris", 2)  # the server swaps while the body is on its way
            deadline = time.time() + 30
            while httpx.post(f"{url}/predict", json={"instances": row}).json()["version"] != "2":
                assert time.time() < deadline
            time.sleep(0.5)  # the old slot would be retired by now if the request did not hold it
            client.sendall(body[10:])
            answer = _read_response(client)
    assert answer.startswith(b"HTTP/1.1 200") and b'"version":"1"' in answer


def test_a_shadow_that_disappears_does_not_stop_the_served_alias(tmp_path, monkeypatch):
    folder = Pipeline.from_dict(tiny_config()).run(tmp_path / "runs").model_folder
    registry = Registry(tmp_path / "reg")
    for _ in range(3):
        registry.register(folder)
    registry.set_alias("iris", 1)
    registry.set_alias("iris", 3, "challenger")
    monkeypatch.setenv("DLPIPE_REGISTRY", str(registry.root))
    store = f"sqlite:///{tmp_path / 'm.db'}"
    settings = Settings(token="t", poll_seconds=3600)
    with running("models:/iris@champion", settings=settings, store=store, shadow="models:/iris@challenger") as url:
        registry.delete("iris", 3, force=True)  # the challenger's alias goes with it
        registry.set_alias("iris", 2)
        answer = httpx.post(f"{url}/admin/reload", headers={"Authorization": "Bearer t"})
    assert answer.status_code == 200 and answer.json() == {"swapped": True, "version": "2"}


def _read_response(client) -> bytes:
    """One whole HTTP response: the head and its body may arrive in separate reads."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += client.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += client.recv(65536)
    return head + b"\r\n\r\n" + body
