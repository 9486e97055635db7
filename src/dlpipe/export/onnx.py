"""ONNX: the network and its output transform as one graph with a dynamic batch axis, checked
against eager PyTorch before it is kept, and run with ONNX Runtime.

Inputs are the preprocessed arrays, one per input group, named by the group (`numeric`,
`category`, `image:photo`, ...); the output `output` is class probabilities (batch, classes) or
standardised regression values (batch,). Preprocessing stays in Python: it is the same code for
both runtimes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    import onnxruntime

    from dlpipe.model import Head, Net

OUTPUT = "output"
PARITY = 1e-4  # largest difference from eager PyTorch allowed on the example rows


class ExportFailed(Exception):
    """The network could not be exported, or the export did not reproduce it."""


def export_onnx(net: Net, head: Head, example: dict[str, np.ndarray], path: Path) -> dict[str, Any]:
    """Write `path` and return its description: inputs (dtype, shape), output, opset and the
    largest difference from eager PyTorch. Raises ExportFailed and leaves no file when the
    export fails or disagrees with PyTorch."""
    graph = _Graph(net, head).eval()
    rows = len(next(iter(example.values())))
    # two rows at least: torch.export fixes a dimension it sees as 1
    repeat = np.arange(max(2, rows)) % rows
    inputs = tuple(torch.from_numpy(np.ascontiguousarray(example[k][repeat])) for k in net.keys)
    batch = torch.export.Dim("batch", min=1)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet("torch.onnx"):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                graph,
                inputs,
                dynamo=True,
                input_names=list(net.keys),
                output_names=[OUTPUT],
                dynamic_shapes=(tuple({0: batch} for _ in inputs),),
                verbose=False,
            )
            program.save(str(tmp))
        session = onnx_session(tmp)
        worst = 0.0
        for take in (slice(None), slice(0, 1)):  # the example batch, and one row
            feed = {k: x[take].numpy() for k, x in zip(net.keys, inputs, strict=True)}
            with torch.inference_mode():
                eager = graph(*(torch.from_numpy(v) for v in feed.values())).numpy()
            got = session.run([OUTPUT], feed)[0]
            worst = max(worst, float(np.abs(got.astype(np.float64) - eager).max()))
        if not worst <= PARITY:
            raise ExportFailed(f"ONNX Runtime differs from PyTorch by {worst:.2g} (allowed {PARITY:g})")
        tmp.replace(path)
    except ExportFailed:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as exc:  # the exporter's many failure types: unsupported operators, missing onnxscript
        tmp.unlink(missing_ok=True)
        raise ExportFailed(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from None
    return {
        "file": path.name,
        "inputs": {
            k: {"dtype": str(x.numpy().dtype), "shape": [-1, *x.shape[1:]]}
            for k, x in zip(net.keys, inputs, strict=True)
        },
        "output": OUTPUT,
        "opset": _opset(path),
        "max_abs_diff": worst,
    }


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """The exporter logs a line per optional library it skips (torchvision, ...): noise for a user."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


class _Graph(torch.nn.Module):
    """Net then the head's output transform, taking the input groups positionally (ONNX inputs)."""

    def __init__(self, net: Net, head: Head) -> None:
        super().__init__()
        self.net, self.head = net, head

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.head.output(self.net(dict(zip(self.net.keys, inputs, strict=True))))


def _opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def onnx_session(path: Path, threads: int = 1) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session on the CPU with an explicit thread count (never more than asked)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
