"""Serving: `dlpipe serve` against a minimal FastAPI server calling the same model eagerly.

One run trains a small model (scikit-learn's wine: 13 numeric columns, 3 classes; 5 epochs,
packaged with model.onnx as users get it) into a temporary folder, then serves it three ways, one
server at a time, each a child process on loopback with one model thread (`OMP_NUM_THREADS=1`):

* minimal: a FastAPI app written by this script, run by uvicorn, that loads the model with
  `dlpipe.load_model` and for each request builds the DataFrame and calls `model.predict(frame)`
  (eager PyTorch) inside an `async` route, so requests run strictly one at a time on the event loop;
* dlpipe: `dlpipe serve MODEL --threads 1` with its defaults (ONNX Runtime, `--max-batch-size 32`,
  `--max-delay-ms 0`: a batch is whatever queued while the model was busy);
* dlpipe with `--max-delay-ms 2` (a batch also waits up to 2 ms for more rows).

The load client is this process: plain HTTP/1.1 keep-alive connections on asyncio (httpx costs
about 4x more client CPU, which the servers would feel on two cores), each sending `POST /predict`
with one row (`{"instances": [row]}`, 100 distinct wine rows in turn) and waiting for the answer.
For each concurrency C in 1, 16, 64 it opens C connections, then sends the same N requests to
every server (3,000; `--quick` 200) after a warm-up, and records each request's latency (write to
last byte read). Every server is measured in each of 2 rounds (`--quick`: 1), the servers' order
alternating, each round a fresh child process; the figures pool the rounds. Reported: throughput
(requests/s over the measured phase), p50 and p99 latency, errors (non-200 answers, wrong bodies,
broken connections: all should be 0), and the ratios dlpipe / minimal. Aim (the serving issue):
>= 2x the minimal server's throughput at concurrency 64 with no worse p99.

Single-row overhead: in this process, one row through `Model.predict` (eager PyTorch, what the
minimal server calls) and through dlpipe's `Runtime.predict` (the server's model call: ONNX
Runtime), medians of many calls, against the p50 of one request at a time to `dlpipe serve`.

The client shares the two cores with the server, so the figures are for loopback on one machine;
the script prints the client's CPU time per request and the load average so a reader can judge.
This script reports, it does not assert, and always exits 0.

    OMP_NUM_THREADS=1 python benchmarks/serve.py            # about 2.5 minutes
    OMP_NUM_THREADS=1 python benchmarks/serve.py --quick    # smoke test (about 20 s)
    python benchmarks/serve.py --requests 10000 --delays 0,1,2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MINIMAL = "minimal FastAPI (eager)"
MINIMAL_APP = '''\
"""The minimal server: load the model, build the frame, call it, one request at a time."""
import os

import pandas as pd
import torch
from fastapi import FastAPI

import dlpipe

torch.set_num_threads(1)
model = dlpipe.load_model(os.environ["BENCH_MODEL"])
app = FastAPI()


@app.get("/health")
async def health() -> dict:
    return {"ok": True}


@app.post("/predict")
async def predict(body: dict) -> dict:
    # async route: the model runs on the event loop, so requests are served strictly one at a time
    frame = pd.DataFrame(body["instances"])
    return {"predictions": model.predict(frame)["prediction"].tolist()}
'''


@dataclass
class Settings:
    requests: int
    warm_up: int
    concurrency: list[int]
    delays: list[float]  # --max-delay-ms values for dlpipe (0 is its default)
    calls: int  # in-process calls for the single-row timing
    rounds: int  # every server measured once per round, the order alternating


@dataclass
class Level:
    """One concurrency level against one server."""

    concurrency: int
    seconds: float
    latencies: np.ndarray  # seconds, one per answered request
    errors: Counter = field(default_factory=Counter)
    client_cpu: float = 0.0
    per_round: list[float] = field(default_factory=list)  # throughput of each round, when pooled

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if len(self.latencies) else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(folder: Path) -> Path:
    """The wine classifier, packaged with model.onnx."""
    from dlpipe.pipeline import Pipeline

    os.environ["DLPIPE_ONNX"] = "on"
    config = {
        "name": "wine",
        "problem": {"task": "classification", "target": "target"},
        "data": {"source": {"builtin": "wine"}},
        "training": {"epochs": 5, "early_stopping": 0},
    }
    return Path(Pipeline.from_dict(config).run(folder).model_folder)


def wine_rows(n: int) -> list[dict[str, float]]:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.drop(columns=["target"])
    return frame.iloc[np.arange(n) % len(frame)].to_dict(orient="records")


@contextlib.contextmanager
def server(command: list[str], ready_path: str, port: int, env: dict[str, str], log: Path) -> Iterator[str]:
    """A child server until the block ends (terminated, then killed if it lingers), whatever happens."""
    with log.open("w") as err:
        child = subprocess.Popen(command, env=env, stdout=err, stderr=subprocess.STDOUT, cwd=log.parent)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while True:
            if child.poll() is not None:
                raise RuntimeError(f"the server exited ({child.returncode}): {log.read_text()[-2000:]}")
            if time.time() > deadline:
                raise RuntimeError(f"the server did not become ready: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + ready_path, timeout=1) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        yield url
    finally:
        child.terminate()
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)


async def load(port: int, bodies: list[bytes], requests: int, concurrency: int) -> Level:
    """`requests` single-row requests over `concurrency` keep-alive connections; each latency recorded."""
    errors: Counter = Counter()
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(concurrency)]
    head = b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    messages = [head + f"Content-Length: {len(b)}\r\n\r\n".encode() + b for b in bodies]

    async def user(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while not queue.empty():
                i = queue.get_nowait()
                start = time.perf_counter()
                writer.write(messages[i % len(messages)])
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line[:15].lower() == b"content-length:":
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                elapsed = time.perf_counter() - start
                if status != 200:
                    errors[f"HTTP {status}"] += 1
                elif len(json.loads(body).get("predictions", [])) != 1:
                    errors["wrong body"] += 1
                else:
                    latencies.append(elapsed)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            errors[type(exc).__name__] += 1
        finally:
            writer.close()

    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(user(r, w) for r, w in connections))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    if not queue.empty():
        errors["not sent (every connection failed)"] += queue.qsize()
    return Level(concurrency, seconds, np.asarray(latencies), errors, cpu)


def measure_server(url: str, bodies: list[bytes], settings: Settings) -> list[Level]:
    port = int(url.rsplit(":", 1)[1])
    asyncio.run(load(port, bodies, settings.warm_up, max(settings.concurrency)))
    asyncio.run(load(port, bodies, max(1, settings.warm_up // 4), 1))
    return [asyncio.run(load(port, bodies, settings.requests, c)) for c in settings.concurrency]


def time_calls(call: Any, calls: int) -> float:
    """Median seconds of one call, after a few warm-up calls."""
    for _ in range(20):
        call()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def in_process(folder: Path, row: dict[str, float], calls: int) -> dict[str, float]:
    """Median seconds for one row: Model.predict (eager PyTorch) and dlpipe's Runtime.predict (ONNX)."""
    import pandas as pd
    import torch

    import dlpipe
    from dlpipe.serve.runtime import Runtime

    torch.set_num_threads(1)
    model = dlpipe.load_model(folder)
    runtime = Runtime(folder, threads=1)
    return {
        "Model.predict (eager PyTorch)": time_calls(lambda: model.predict(pd.DataFrame([row])), calls),
        f"Runtime.predict ({runtime.kind})": time_calls(lambda: runtime.predict(pd.DataFrame([row])), calls),
    }


def measure(settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {"servers": {}}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    rows = wine_rows(100)
    bodies = [json.dumps({"instances": [row]}).encode() for row in rows]
    with tempfile.TemporaryDirectory(prefix="dlpipe-serve-bench-") as tmp:
        start = time.perf_counter()
        folder = train(Path(tmp) / "runs")
        out["train"] = time.perf_counter() - start
        out["onnx"] = (folder / "model.onnx").exists()
        (Path(tmp) / "bench_minimal.py").write_text(MINIMAL_APP)

        def commands(port: int) -> dict[str, tuple[list[str], str, dict[str, str]]]:
            """Each server's command line, readiness path and environment."""
            minimal = [sys.executable, "-m", "uvicorn", "bench_minimal:app", "--port", str(port)]
            minimal += ["--log-level", "warning", "--timeout-keep-alive", "75"]
            out = {MINIMAL: (minimal, "/health", {**env, "BENCH_MODEL": str(folder)})}
            for delay in settings.delays:
                command = [sys.executable, "-m", "dlpipe.cli", "serve", str(folder), "--port", str(port)]
                command += ["--threads", "1", "--max-delay-ms", f"{delay:g}"]
                out["dlpipe" if delay == 0 else f"dlpipe --max-delay-ms {delay:g}"] = (command, "/v2/health/ready", env)
            return out

        names = list(commands(0))
        for r in range(settings.rounds):
            for i, name in enumerate(names if r % 2 == 0 else names[::-1]):  # alternate the order
                port = free_port()
                command, ready, child_env = commands(port)[name]
                with server(command, ready, port, child_env, Path(tmp) / f"server-{r}-{i}.log") as url:
                    out["servers"].setdefault(name, []).append(measure_server(url, bodies, settings))
        out["direct"] = in_process(folder, rows[0], settings.calls)
    return out


def pooled(rounds: list[list[Level]]) -> list[Level]:
    """Each concurrency level over all rounds: requests / seconds summed, latencies together."""
    levels = []
    for same in zip(*rounds, strict=True):
        errors: Counter = Counter()
        for level in same:
            errors.update(level.errors)
        levels.append(
            Level(
                same[0].concurrency,
                sum(v.seconds for v in same),
                np.concatenate([v.latencies for v in same]),
                errors,
                sum(v.client_cpu for v in same),
                [v.throughput for v in same],
            )
        )
    return levels


def report(settings: Settings, out: dict[str, Any]) -> str:
    import torch

    servers = {name: pooled(rounds) for name, rounds in out["servers"].items()}
    lines = [
        f"serving: wine classifier (13 numeric columns, 3 classes), model.onnx packaged: {out['onnx']}; "
        f"trained in {out['train']:.1f} s",
        f"{settings.requests} single-row POST /predict per concurrency level and round after {settings.warm_up} warm-up"
        f" requests, {settings.rounds} round(s), the servers' order alternating; each server a child process,"
        " OMP_NUM_THREADS=1, dlpipe with --threads 1; figures pool the rounds",
        f"python {platform.python_version()}, torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} cores, "
        f"1-minute load {os.getloadavg()[0]:.2f} (the client shares the cores with the server)",
        "",
        f"{'server':<28}{'concurrency':>12}{'requests/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'client CPU us/req':>19}   requests/s per round",
    ]
    for name, levels in servers.items():
        for level in levels:
            client = level.client_cpu / max(1, len(level.latencies)) * 1e6
            lines.append(
                f"{name:<28}{level.concurrency:>12}{level.throughput:>12,.0f}{level.percentile(50):>9.2f}"
                f"{level.percentile(99):>9.2f}{sum(level.errors.values()):>8}{client:>19.0f}   "
                + " ".join(f"{v:,.0f}" for v in level.per_round)
            )
    for name, levels in servers.items():
        for level in levels:
            if level.errors:
                lines.append(f"errors, {name} at concurrency {level.concurrency}: {dict(level.errors)}")

    minimal = servers[MINIMAL]
    lines += ["", f"{'ratio to minimal':<28}{'concurrency':>12}{'throughput':>12}{'p50':>9}{'p99':>9}"]
    for name, levels in servers.items():
        if levels is minimal:
            continue
        for ours, theirs in zip(levels, minimal, strict=True):
            lines.append(
                f"{name:<28}{ours.concurrency:>12}{ours.throughput / theirs.throughput:>11.2f}x"
                f"{ours.percentile(50) / theirs.percentile(50):>8.2f}x"
                f"{ours.percentile(99) / theirs.percentile(99):>8.2f}x"
            )
    top = max(settings.concurrency)
    ours_top = {n: next(v for v in levels if v.concurrency == top) for n, levels in servers.items()}
    theirs_top = ours_top.pop(MINIMAL)
    lines.append("")
    for name, level in ours_top.items():
        throughput = level.throughput / theirs_top.throughput
        p99 = level.percentile(99) / theirs_top.percentile(99)
        met = "met" if throughput >= 2 and p99 <= 1 else "missed"
        lines.append(
            f"ratio dlpipe / minimal throughput at concurrency {top}: {throughput:.2f}x, p99 ratio {p99:.2f}x "
            f"({name}; aim >= 2x with p99 ratio <= 1: {met})"
        )

    single = next(v for v in servers["dlpipe"] if v.concurrency == 1) if 1 in settings.concurrency else None
    lines += ["", f"one row in this process, median of {settings.calls} calls:"]
    for what, seconds in out["direct"].items():
        lines.append(f"  {what:<32}{seconds * 1000:8.3f} ms")
    if single is not None:
        direct = out["direct"]["Model.predict (eager PyTorch)"]
        p50 = single.percentile(50) / 1000
        lines.append(
            f"single-row overhead: dlpipe p50 at concurrency 1 {p50 * 1000:.3f} ms / Model.predict "
            f"{direct * 1000:.3f} ms = {p50 / direct:.2f}x ({(p50 - direct) * 1000:+.3f} ms)"
        )
        server_side = p50 - min(out["direct"].values())
        lines.append(f"  HTTP, JSON, batching, client beyond the fastest in-process call: {server_side * 1000:.3f} ms")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=None, help="requests per concurrency level (default 3000)")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated levels (default 1,16,64)")
    parser.add_argument(
        "--delays",
        default="0,2",
        help="dlpipe's --max-delay-ms values, comma-separated (default 0,2; 0 is dlpipe's default)",
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds over all servers (default 2)")
    parser.add_argument("--quick", action="store_true", help="a small, fast run for smoke tests (under a minute)")
    args = parser.parse_args(argv)
    requests = args.requests or (200 if args.quick else 3000)
    rounds = args.rounds or (1 if args.quick else 2)
    return Settings(
        requests=requests,
        warm_up=100 if args.quick else 500,
        concurrency=[int(c) for c in args.concurrency.split(",")],
        delays=sorted({float(d) for d in args.delays.split(",")} | {0.0}),
        calls=200 if args.quick else 2000,
        rounds=max(1, rounds),
    )


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    try:
        print(report(settings, measure(settings)))
        print(f"\nwall time {time.perf_counter() - start:.0f} s")
    except Exception:  # a report, not a test: show what failed, still exit 0
        traceback.print_exc()
        print("benchmark failed; no result", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
