"""A real server on loopback for the tests: uvicorn in a thread, on a free port."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
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
def running(
    model: Path | str,
    runtime: str = "auto",
    settings: Settings | None = None,
    store: str | None = None,
    shadow: str | None = None,
    queue_rows: int = 100_000,
):
    """Serve `model` until the block ends (logging predictions to `store`, if given, through a buffer
    of `queue_rows`); yields the base URL."""
    port = free_port()
    loaded = Runtime(model, runtime=runtime, threads=1)
    recorder = None
    if store is not None:
        from dlpipe.serve.server import make_recorder
        from dlpipe.spec import Monitoring

        recorder = make_recorder(loaded, Monitoring(store=store, queue_rows=queue_rows))
    source = str(model) if str(model).startswith("models:/") else None  # a server that follows an alias
    app = create_app(loaded, settings, recorder, source, shadow)
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


def load(url: str, bodies: list[bytes], requests: int, concurrency: int, path: str = "/predict") -> Counter:
    """`requests` POSTs of the bodies in turn over `concurrency` keep-alive connections; statuses counted
    ("wrong body" when an answer lacks one prediction per row sent)."""
    import asyncio
    import json

    port = int(url.rsplit(":", 1)[1])

    async def user(queue: asyncio.Queue, statuses: Counter) -> None:
        """One connection sending requests one after another: plain HTTP/1.1, so the client costs
        little beside the server on two cores (httpx took 4x longer)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while not queue.empty():
                body = bodies[queue.get_nowait() % len(bodies)]
                head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                answer = json.loads(await reader.readexactly(length))
                sent = len(json.loads(body)["instances"])
                statuses[status if len(answer.get("predictions", [])) == sent else "wrong body"] += 1
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            statuses[type(exc).__name__] += 1
        finally:
            writer.close()

    async def run() -> Counter:
        statuses: Counter = Counter()
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(requests):
            queue.put_nowait(i)
        await asyncio.gather(*(user(queue, statuses) for _ in range(concurrency)))
        return statuses

    return asyncio.run(run())
