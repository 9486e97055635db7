"""The model behind the server: preprocessing in Python, the network in ONNX Runtime (the packaged
model.onnx) or, when there is none, in eager PyTorch. Thread counts are set explicitly."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dlpipe.errors import ArtifactError
from dlpipe.features.base import Problems
from dlpipe.metrics import predicted
from dlpipe.serve.inputs import RequestError


@dataclass
class Prediction:
    predictions: np.ndarray  # class labels (object) or values (float)
    probabilities: np.ndarray | None  # (rows, classes) for classifiers


class Runtime:
    """A loaded model folder, ready to predict tables of raw feature values."""

    def __init__(self, model: str | Path, runtime: str = "auto", threads: int | None = None) -> None:
        from dlpipe.manifest import ONNX
        from dlpipe.package import load_model

        self.model = load_model(model)
        self.name = self.model.name
        self.version = str(self.model.manifest.get("version", "1"))
        self.threads = max(1, threads or os.cpu_count() or 1)
        onnx = self.model.folder / ONNX
        if runtime not in ("auto", "onnx", "torch"):
            raise ValueError(f"runtime is auto, onnx or torch; received {runtime!r}")
        if runtime == "onnx" and ONNX not in self.model.manifest["files"]:
            reason = self.model.manifest.get("onnx", {}).get("error", "it was packaged without one")
            raise ArtifactError(f"the model has no model.onnx ({reason})", fix="serve with --runtime torch")
        self.kind = "onnx" if runtime != "torch" and ONNX in self.model.manifest["files"] else "torch"
        self.session: Any = None
        if self.kind == "onnx":
            from dlpipe.export.onnx import onnx_session

            try:
                self.session = onnx_session(onnx, threads=self.threads)
            except Exception as exc:  # onnxruntime's own error types: a file it refuses is the model's fault
                raise ArtifactError(f"ONNX Runtime refuses model.onnx: {str(exc)[:200]}", where=str(onnx)) from None
        else:
            import torch

            torch.set_num_threads(self.threads)

    @property
    def classes(self) -> list[str] | None:
        return self.model.classes

    def outputs(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities or values in the target's units; a row that cannot be used is a RequestError."""
        problems = Problems()
        inputs = self.model.preprocessor.transform(frame, problems)
        if problems.rows:
            row, reason = next(iter(sorted(problems.rows.items())))
            raise RequestError(
                f"row {row}: {reason}" + (f" ({len(problems.rows)} rows unusable)" if len(problems.rows) > 1 else "")
            )
        if self.session is not None:
            feed = {k: np.ascontiguousarray(v) for k, v in inputs.items()}
            out = self.session.run(["output"], feed)[0].astype(np.float64)
        else:
            from dlpipe.evaluate import predict_outputs, to_tensors

            out = predict_outputs(self.model.net, self.model.head, to_tensors(inputs))
        return out if self.classes else self.model.preprocessor.decode_regression(out)

    def predict(self, frame: pd.DataFrame) -> Prediction:
        out = self.outputs(frame)
        if self.classes is None:
            return Prediction(np.asarray(out, dtype=np.float64), None)
        labels = np.asarray(self.classes, dtype=object)[predicted(out, self.model.threshold)]
        return Prediction(labels, out)

    def embed(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """The encoders' outputs for the text, image and audio columns (for monitoring), in PyTorch."""
        from dlpipe.monitor.embeddings import embed_frame

        return embed_frame(self.model.net, self.model.preprocessor, frame)

    def warm_up(self) -> None:
        """One prediction on a reference row, so the first request does not pay for lazy setup."""
        reference = self.model.folder / "reference.parquet"
        if not reference.exists():
            return
        frame = pd.read_parquet(reference).head(1)
        media = [c.name for c in self.model.preprocessor.columns if c.type in ("image", "audio")]
        if media:
            return  # reference rows name files of the training machine: nothing to open here
        self.outputs(frame[[c.name for c in self.model.preprocessor.columns]])
