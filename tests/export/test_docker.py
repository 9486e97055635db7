"""`dlpipe export`: an ONNX file, and a Docker folder whose command serves the model (run here,
outside Docker: there is no Docker engine on this machine)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from importlib import metadata

import httpx
import onnxruntime
import pytest

from conftest import dlpipe
from dlpipe.pipeline import Pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(with_onnx, tmp_path_factory):
    config = {
        "name": "Wine",
        "problem": {"task": "classification", "target": "target"},
        "data": {"source": {"builtin": "wine"}},
        "training": {"epochs": 3, "early_stopping": 0},
    }
    return Pipeline.from_dict(config).run(tmp_path_factory.mktemp("runs")).folder


def test_onnx_export_is_the_packaged_graph(run, tmp_path):
    done = dlpipe("export", str(run), "--format", "onnx", "-o", str(tmp_path / "wine.onnx"))
    assert done.returncode == 0, done.stderr
    assert "numeric float32[-1, 13, 2]" in done.stderr
    session = onnxruntime.InferenceSession(str(tmp_path / "wine.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["numeric"] and session.get_inputs()[0].shape[0] == "batch"
    assert dlpipe("export", str(run), "--format", "onnx", "-o", str(tmp_path / "x.txt")).returncode == 2


def test_docker_folder_pins_what_is_installed_and_its_command_serves(run, tmp_path):
    out = tmp_path / "image"
    done = dlpipe("export", str(run), "--format", "docker", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert {"Dockerfile", "requirements.txt", ".dockerignore"} <= {p.name for p in out.iterdir()}
    assert (out / "model" / "model.onnx").exists() and (out / "dlpipe" / "cli.py").exists()
    pins = [line for line in (out / "requirements.txt").read_text().splitlines() if "==" in line]
    assert any(p.startswith("torch==") for p in pins) and any(p.startswith("onnxruntime==") for p in pins)
    for pin in pins:
        name, version = pin.split("==")
        assert metadata.version(name) == version
    dockerfile = (out / "Dockerfile").read_text()
    command = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1))
    assert command[:4] == ["python", "-m", "dlpipe.cli", "serve"]
    # the image's command, from the folder, on this machine (host and port swapped for loopback)
    port = _free_port()
    command = [sys.executable, *command[1:]]
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    env = {**os.environ, "PYTHONPATH": str(out), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(command, cwd=out, env=env, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        meta = httpx.get(f"{url}/v2/models/Wine").json()
        assert meta["name"] == "Wine" and meta["platform"] == "dlpipe_onnx"
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(60)
    assert dlpipe("export", str(run), "--format", "docker", "-o", str(out)).returncode == 2  # not over a folder


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
