"""The model folder: save it atomically, load it with its hashes checked, predict with it.

model.safetensors holds the weights; model.json the resolved pipeline, the preprocessing state,
the metrics, library versions and the sha256 of every other file. Nothing is pickled.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlpipe import __version__
from dlpipe.errors import ArtifactError, ConfigError, DataError
from dlpipe.features.base import Problems
from dlpipe.manifest import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    ONNX,
    REFERENCE,
    WEIGHTS,
    find_model_folder,
    json_default,
    manifest_digest,
    read_manifest,
    sha256,
)
from dlpipe.metrics import predicted
from dlpipe.prepare.preprocessor import Preprocessor

if TYPE_CHECKING:
    import torch


def library_versions() -> dict[str, str]:
    import sklearn
    import torch

    return {
        "dlpipe": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
    }


def save_model(
    folder: Path,
    *,
    net: torch.nn.Module,
    preprocessor: Preprocessor,
    head_kind: str,
    pipeline: dict[str, Any],
    decision: dict[str, Any] | None = None,
    metrics: dict[str, Any],
    reference: pd.DataFrame,
    example: dict[str, np.ndarray] | None = None,
    embeddings: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write the model folder in a temporary sibling and rename it into place: never half-written.

    With `example` (a few preprocessed rows) the network is also exported to model.onnx, checked
    against PyTorch on those rows; when that fails the manifest says why and serving uses PyTorch.
    `embeddings` (column -> the reference rows' encoder outputs) are what monitoring compares
    text, image and audio inputs with. `decision` (dlpipe.decide) is the classifier's temperature
    and threshold, in model.onnx's output and in every label `predict` gives.
    """
    from safetensors.torch import save_file

    from dlpipe.decide import Decision

    folder = Path(folder)
    chosen = Decision.from_dict(decision)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".model-", dir=folder.parent))
    try:
        save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(tmp / WEIGHTS))
        reference.to_parquet(tmp / REFERENCE, index=False)
        files = [WEIGHTS, REFERENCE]
        if embeddings:
            from safetensors.numpy import save_file as save_arrays

            from dlpipe.monitor.embeddings import FILE

            save_arrays({k: np.ascontiguousarray(v) for k, v in embeddings.items()}, str(tmp / FILE))
            files.append(FILE)
        onnx: dict[str, Any] | None = None
        if example is not None and onnx_wanted():
            from dlpipe.export.onnx import ExportFailed, export_onnx

            try:
                onnx = export_onnx(net, chosen.head(head_kind), example, tmp / ONNX)
                files.append(ONNX)
            except ExportFailed as exc:
                onnx = {"error": str(exc)}
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": pipeline["name"],
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "head": head_kind,
            "decision": decision or {},
            "pipeline": pipeline,
            "preprocessor": preprocessor.to_dict(),
            "metrics": metrics,
            "versions": library_versions(),
            "files": {name: sha256(tmp / name) for name in files},
        }
        if onnx is not None:
            manifest["onnx"] = onnx
        manifest = strict_json(manifest)
        manifest["manifest_sha256"] = manifest_digest(manifest)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, allow_nan=False, default=json_default))
        tmp.chmod(0o755)  # mkdtemp makes it private; a model folder is meant to be shared
        for file in tmp.iterdir():
            file.chmod(0o644)
        old = folder.with_name(f".{folder.name}-replaced-{os.getpid()}")
        if folder.exists():
            os.replace(folder, old)  # set aside, not deleted, until the new folder is in place
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def model_summary(
    net: torch.nn.Module, head_kind: str, preprocessor: Preprocessor, frame: pd.DataFrame
) -> dict[str, Any]:
    """What metrics.json says of the model: its parameters by part and its latency on `frame`."""
    return {"parameters": net.parameter_counts(), "latency": measure_latency(net, head_kind, preprocessor, frame)}


def measure_latency(
    net: torch.nn.Module, head_kind: str, preprocessor: Preprocessor, frame: pd.DataFrame, repeats: int = 5
) -> dict[str, float]:
    """Milliseconds per row from raw rows to outputs (preprocessing included, as `Model.predict` does),
    the median of `repeats` calls: one row at a time, and all of `frame` as one batch."""
    import time

    from dlpipe.evaluate import predict_outputs, to_tensors
    from dlpipe.model import Head

    head = Head(head_kind)

    def call(rows: pd.DataFrame) -> float:
        started = time.perf_counter()
        predict_outputs(net, head, to_tensors(preprocessor.transform(rows)))
        return (time.perf_counter() - started) * 1000

    call(frame)  # the first call pays for lazy set-up (caches, allocator): not what a server sees
    single = [call(frame.iloc[[i % len(frame)]]) for i in range(repeats)]
    batch = [call(frame) / len(frame) for _ in range(repeats)]
    return {
        "single_row_ms": round(float(np.median(single)), 3),
        "batch_row_ms": round(float(np.median(batch)), 3),
        "batch_rows": len(frame),
    }


def onnx_wanted() -> bool:
    """Packaging exports model.onnx unless DLPIPE_ONNX=off (faster packaging; serving then uses PyTorch)."""
    return os.environ.get("DLPIPE_ONNX", "on").strip().lower() not in ("off", "0", "false", "no")


def strict_json(value: Any) -> Any:
    """`value` with NaN and infinities as None, so the JSON written is strict (an undefined metric is null)."""
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    return value


class Model:
    """A loaded, verified model: `predict(frame)` returns labels (and probabilities) or values."""

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        from safetensors.torch import load_file

        from dlpipe.decide import Decision
        from dlpipe.model import Net
        from dlpipe.spec import ModelSpec

        self.folder = folder
        self.manifest = manifest
        self.name: str = manifest["name"]
        self.preprocessor = Preprocessor.from_dict(manifest["preprocessor"])
        try:
            decision = Decision.from_dict(manifest.get("decision"))
        except ValueError as exc:
            raise ArtifactError(f"{MANIFEST}: {exc}", where=str(folder)) from None
        self.head = decision.head(manifest["head"])
        self.threshold: float | None = decision.threshold
        self.net = Net(self.preprocessor, ModelSpec(**manifest["pipeline"].get("model", {})))
        try:
            weights = load_file(str(folder / WEIGHTS))
            if manifest["format_version"] < 2:
                weights = upgrade_v1_weights(weights, list(self.preprocessor.groups()))
            self.net.load_state_dict(weights)
        except (RuntimeError, OSError) as exc:
            raise ArtifactError(f"the weights do not fit the model: {str(exc)[:200]}", where=str(folder)) from None
        self.net.eval()

    @property
    def classes(self) -> list[str] | None:
        return self.preprocessor.classes

    @property
    def metrics(self) -> dict[str, Any]:
        return self.manifest.get("metrics", {})

    def predict_output(self, frame: pd.DataFrame, problems: Problems | None = None) -> np.ndarray:
        """Class probabilities, or regression values in the target's units.

        Rows with a value the model cannot use (an unreadable image) are listed in `problems`;
        their outputs are meaningless and `predict` blanks them.
        """
        from dlpipe.evaluate import predict_outputs, to_tensors

        if len(frame) == 0:
            raise DataError("nothing to predict: the table has no rows")
        out = predict_outputs(self.net, self.head, to_tensors(self.preprocessor.transform(frame, problems)))
        return out if self.classes else self.preprocessor.decode_regression(out)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`prediction`, plus `proba_<class>` per class for classifiers; one row per input row.

        A row with an unusable value (a missing or corrupt file) gets no prediction and a
        `problem` column saying why; the other rows are predicted as usual.
        """
        problems = Problems()
        out = self.predict_output(frame, problems)
        bad = ~problems.mask(len(frame))
        if not self.classes:
            result = pd.DataFrame({"prediction": np.where(bad, np.nan, out)}, index=frame.index)
        else:
            labels = np.asarray(self.classes, dtype=object)[predicted(out, self.threshold)]
            result = pd.DataFrame({"prediction": np.where(bad, None, labels)}, index=frame.index)
            for i, cls in enumerate(self.classes):
                result[f"proba_{cls}"] = np.where(bad, np.nan, out[:, i])
        if bad.any():
            result["problem"] = [problems.rows.get(i, "") for i in range(len(frame))]
        return result


def upgrade_v1_weights(weights: dict[str, torch.Tensor], groups: list[str]) -> dict[str, torch.Tensor]:
    """Format-1 weight names (`encoders.<type>.`) as format 2 has them (`encoders.<position>.`)."""
    upgraded = {}
    for name, tensor in weights.items():
        prefix, _, rest = name.partition(".")
        kind, _, tail = rest.partition(".")
        if prefix == "encoders" and kind in groups:
            name = f"encoders.{groups.index(kind)}.{tail}"
        upgraded[name] = tensor
    return upgraded


def load_model(path: str | Path) -> Model:
    """Load a model or run folder after checking every file's hash."""
    from pydantic import ValidationError

    folder = find_model_folder(path)
    manifest = read_manifest(folder)
    try:
        return Model(folder, manifest)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, ValidationError, ConfigError) as exc:
        raise ArtifactError(f"{MANIFEST} does not describe a usable model: {exc!r}"[:300], where=str(folder)) from None
