"""The model folder's manifest: model.json read and checked before any file of the folder is used.

Every file a loader reads is listed in model.json with its sha256, and model.json carries the digest
of itself; a listed name or an ONNX external-data path may not reach outside the folder. Copies
(the registry, exports) take model.json and the files it lists, nothing else.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from dlpipe.errors import ArtifactError

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


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON without its own digest: model.json is checked too."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False, default=json_default)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


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
