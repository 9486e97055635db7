"""A real server on loopback for the tests: uvicorn in a thread, on a free port."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from dlpipe.serve.app import Settings, create_app
from dlpipe.serve.runtime import Runtime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(model: Path, runtime: str = "auto", settings: Settings | None = None, store: str | None = None):
    """Serve `model` until the block ends (logging predictions to `store`, if given); yields the base URL."""
    port = free_port()
    loaded = Runtime(model, runtime=runtime, threads=1)
    recorder = None
    if store is not None:
        from dlpipe.serve.server import make_recorder
        from dlpipe.spec import Monitoring

        recorder = make_recorder(loaded, Monitoring(store=store))
    app = create_app(loaded, settings, recorder)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def wine_config(epochs: int = 5, **sections: dict) -> dict:
    """A wine classifier that trains in a second or two: the model most serving tests serve."""
    return {
        "name": "wine",
        "problem": {"task": "classification", "target": "target"},
        "data": {"source": {"builtin": "wine"}},
        "training": {"epochs": epochs, "early_stopping": 0},
        **sections,
    }
