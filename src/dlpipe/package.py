"""The model folder: save it atomically, load it with its hashes checked, predict with it.

model.safetensors holds the weights; model.json the resolved pipeline, the preprocessing state,
the metrics, library versions and the sha256 of every other file. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
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
from dlpipe.metrics import predicted
from dlpipe.prepare.preprocessor import Preprocessor

if TYPE_CHECKING:
    import torch

FORMAT = "dlpipe-model"
# 2: encoders are a list in input-group order (`encoders.0.`), no longer keyed by type (`encoders.numeric.`)
FORMAT_VERSION = 2
WEIGHTS = "model.safetensors"
MANIFEST = "model.json"
REFERENCE = "reference.parquet"
ONNX = "model.onnx"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON without its own digest: model.json is checked too."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False, default=json_default)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def strict_json(value: Any) -> Any:
    """`value` with NaN and infinities as None, so the JSON written is strict (an undefined metric is null)."""
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    return value


def json_default(value: Any) -> Any:
    """What json.dumps cannot write by itself: numpy scalars and paths."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def find_model_folder(path: str | Path) -> Path:
    """A model folder, the `model/` inside a run folder, or a registry reference (`models:/NAME@ALIAS`,
    `models:/NAME/VERSION`, looked up in DLPIPE_REGISTRY or ./dlpipe-registry)."""
    from dlpipe.registry import Registry, is_reference, registry_root

    if is_reference(path):
        return Registry(registry_root()).resolve(str(path))
    path = Path(path)
    if (path / MANIFEST).is_file():
        return path
    if (path / "model" / MANIFEST).is_file():
        return path / "model"
    if not path.exists():
        raise ArtifactError("model not found", where=str(path), fix="pass a model folder or a run folder")
    raise ArtifactError(f"no {MANIFEST} here: not a dlpipe model or run folder", where=str(path))


def read_manifest(folder: Path) -> dict[str, Any]:
    """model.json, with every listed file present, inside the folder, and matching its sha256."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(), parse_constant=_refuse_constant)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError(f"{MANIFEST} is unreadable: {exc}", where=str(folder)) from None
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != FORMAT
        or not isinstance(manifest.get("files"), dict)
        or not isinstance(manifest.get("format_version"), int)
    ):
        raise ArtifactError(f"{MANIFEST} is not a dlpipe model manifest", where=str(folder))
    if manifest.get("manifest_sha256") != manifest_digest(manifest):
        raise ArtifactError(
            f"{MANIFEST} does not match its manifest_sha256: the file was changed or damaged",
            where=str(folder),
            fix="use an intact copy of the model",
        )
    if manifest["format_version"] > FORMAT_VERSION:
        raise ArtifactError(
            f"model format {manifest['format_version']} is newer than this dlpipe reads ({FORMAT_VERSION})",
            where=str(folder),
            fix="upgrade dlpipe",
        )
    root = folder.resolve()
    if (folder / MANIFEST).resolve().parent != root:
        raise ArtifactError(f"{MANIFEST} is a link to a file outside the model folder", where=str(folder))
    if WEIGHTS not in manifest["files"]:  # every file a loader reads is listed, so hashed
        raise ArtifactError(f"{MANIFEST} does not list {WEIGHTS}", where=str(folder))
    for name, expected in manifest["files"].items():
        file = (folder / name).resolve()
        if file.parent != root:
            raise ArtifactError(f"{MANIFEST} names a file outside the model folder: {name!r}", where=str(folder))
        if not file.is_file():
            raise ArtifactError(f"{name} is missing", where=str(folder))
        if sha256(file) != expected:
            raise ArtifactError(
                f"{name} does not match the sha256 in {MANIFEST}: the file was changed or damaged",
                where=str(folder),
                fix="use an intact copy of the model",
            )
    if ONNX in manifest["files"]:
        check_onnx(folder, manifest["files"])
    return manifest


def check_onnx(folder: Path, files: dict[str, str]) -> None:
    """Refuse a model.onnx that keeps tensors in files model.json does not list ("external data"):
    ONNX Runtime would read whatever path the graph names (`../secret.bin`, `/etc/passwd`)."""
    import onnx

    try:
        proto = onnx.load(str(folder / ONNX), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and onnx's own: the file is not an ONNX model
        raise ArtifactError(f"{ONNX} is unreadable: {type(exc).__name__}", where=str(folder)) from None
    nodes = [*proto.graph.node, *(node for function in proto.functions for node in function.node)]
    for tensor in _onnx_tensors(proto.graph.initializer, proto.graph.sparse_initializer, nodes):
        if tensor.external_data or tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = next((entry.value for entry in tensor.external_data if entry.key == "location"), "")
            if location not in files:
                raise ArtifactError(
                    f"{ONNX} reads tensor {tensor.name!r} from {location!r}, which is not a file of the model "
                    f"folder listed in {MANIFEST}: refused",
                    where=str(folder),
                    fix="export the model again, with its tensors inside model.onnx",
                )


def _onnx_tensors(dense: Any, sparse: Any, nodes: Any) -> Any:
    """Every TensorProto of a graph: initializers, constants in node attributes, subgraphs' too."""
    yield from dense
    for tensor in sparse:
        yield from (tensor.values, tensor.indices)
    for node in nodes:
        for attr in node.attribute:
            yield from [attr.t] if attr.HasField("t") else []
            yield from attr.tensors
            for tensor in [*([attr.sparse_tensor] if attr.HasField("sparse_tensor") else []), *attr.sparse_tensors]:
                yield from (tensor.values, tensor.indices)
            for graph in [*([attr.g] if attr.HasField("g") else []), *attr.graphs]:
                yield from _onnx_tensors(graph.initializer, graph.sparse_initializer, graph.node)


def copy_model(folder: Path, manifest: dict[str, Any], target: Path) -> None:
    """Copy a verified model folder's model.json and the files it lists, nothing else: a stray file
    or link in a folder handed over (`notes -> ~/.ssh/id_rsa`) does not travel into a registry or an export."""
    target.mkdir(parents=True, exist_ok=True)
    for name in [MANIFEST, *manifest["files"]]:
        shutil.copy2(folder / name, target / name)


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
