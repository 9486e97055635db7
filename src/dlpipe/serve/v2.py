"""The Open Inference Protocol v2 (KServe, Triton, MLServer) over REST, with Triton's binary tensor
data extension: a JSON header of `Inference-Header-Content-Length` bytes, then each binary tensor's
raw bytes in order (BYTES elements as a 4-byte little-endian length and the bytes).

One input tensor per feature, shape [N] or [N, 1]; outputs `prediction` (class label as BYTES, or
the value as FP64) and, for classifiers, `probabilities` (FP64, [N, classes]).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dlpipe.serve.inputs import MAX_ROWS, Feature, RequestError, as_python, frame_from_columns

HEADER_LENGTH = "inference-header-content-length"
# datatype -> numpy dtype of its binary form (BYTES is length-prefixed, handled apart)
NUMPY = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
NUMERIC = {k for k in NUMPY if k != "BOOL"}
# the datatypes each feature type accepts
ACCEPTS = {
    "numeric": NUMERIC,
    "binary": {"BOOL", "BYTES", *NUMERIC},
    "category": {"BYTES", *NUMERIC},
}


@dataclass
class Request:
    id: str | None
    frame: pd.DataFrame
    outputs: list[str] | None  # requested output names; None: all
    binary: set[str] = field(default_factory=set)  # outputs to send as binary data


def parse(body: bytes, header_length: str | None, features: list[Feature]) -> Request:
    """An inference request (JSON, or JSON + binary tensors) as a checked table of features."""
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise RequestError(f"Inference-Header-Content-Length is not a number: {header_length[:40]!r}") from None
        if not 0 < size <= len(body):
            raise RequestError(f"Inference-Header-Content-Length {size} does not fit a body of {len(body)} bytes")
        head, binary = body[:size], body[size:]
    else:
        head, binary = body, b""
    try:
        doc = json.loads(head)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError(f"the request is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise RequestError('an inference request is a JSON object with "inputs": a list of tensors')
    by_name = {f.name: f for f in features}
    columns: dict[str, list[Any]] = {}
    rows: int | None = None
    offset = 0
    for i, tensor in enumerate(doc["inputs"]):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise RequestError(f"inputs[{i}] must be an object with a name, datatype, shape and data")
        name = tensor["name"]
        feature = by_name.get(name)
        if feature is None:
            raise RequestError(f"unknown input {name!r}; the model takes {', '.join(map(repr, by_name))}")
        if name in columns:
            raise RequestError(f"input {name!r} is sent twice")
        count = _rows_of(tensor, name)
        if rows is not None and count != rows:
            raise RequestError(f"input {name!r} has {count} rows; the inputs before it have {rows}")
        rows = count
        datatype = tensor.get("datatype")
        _check_datatype(feature, datatype)
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise RequestError(
                    f"input {name!r}: binary_data_size {size!r} does not fit the {len(binary) - offset} bytes left"
                )
            values = _from_binary(binary[offset : offset + size], datatype, count, name)
            offset += size
        else:
            if "data" not in tensor:
                raise RequestError(f"input {name!r} has no data (and no binary_data_size)")
            values = _flatten(tensor["data"], name)
            if len(values) != count:
                raise RequestError(
                    f"input {name!r}: shape {tensor['shape']} needs {count} values, data has {len(values)}"
                )
        columns[name] = [_text_of(v, feature) for v in values]
    if offset != len(binary):
        raise RequestError(f"the binary data is {len(binary)} bytes; the inputs' binary_data_size add up to {offset}")
    missing = [f.name for f in features if f.name not in columns]
    if missing:
        raise RequestError(f"missing input {missing[0]!r}: send one tensor per feature")
    frame = frame_from_columns(columns, features, "inputs")
    request_id = doc.get("id")
    return Request(
        id=request_id if isinstance(request_id, str) else None,
        frame=frame,
        outputs=_requested(doc),
        binary=_binary_outputs(doc),
    )


def _rows_of(tensor: dict[str, Any], name: str) -> int:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise RequestError(f"input {name!r}: shape must be a list of whole numbers, e.g. [2] or [2, 1]")
    if not shape or len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
        raise RequestError(f"input {name!r}: shape {shape} must be [rows] or [rows, 1] (one value per row)")
    if not 1 <= shape[0] <= MAX_ROWS:
        status = 413 if shape[0] > MAX_ROWS else 400
        raise RequestError(f"input {name!r}: {shape[0]} rows; send 1 to {MAX_ROWS}", status=status)
    return shape[0]


def _check_datatype(feature: Feature, datatype: Any) -> None:
    accepted = ACCEPTS.get(feature.type, {"BYTES"})
    if datatype not in accepted:
        raise RequestError(
            f"input {feature.name!r} ({feature.type}) takes datatype {' or '.join(sorted(accepted))}; "
            f"received {datatype!r}"
        )


def _flatten(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise RequestError(f"input {name!r}: data must be a list")
    out: list[Any] = []
    for item in data:
        if isinstance(item, list):
            if not all(not isinstance(v, list) for v in item):
                raise RequestError(f"input {name!r}: data nests deeper than its shape")
            out.extend(item)
        else:
            out.append(item)
    return out


def _from_binary(raw: bytes, datatype: str, count: int, name: str) -> list[Any]:
    if datatype == "BYTES":
        values, at = [], 0
        while at < len(raw):
            if at + 4 > len(raw):
                raise RequestError(f"input {name!r}: binary BYTES data ends inside an element's length")
            (length,) = struct.unpack_from("<I", raw, at)
            at += 4
            if at + length > len(raw):
                raise RequestError(f"input {name!r}: a BYTES element claims {length} bytes; {len(raw) - at} remain")
            values.append(raw[at : at + length])
            at += length
        if len(values) != count:
            raise RequestError(f"input {name!r}: {len(values)} BYTES elements for {count} rows")
        return values
    dtype = np.dtype(NUMPY[datatype])
    if len(raw) != count * dtype.itemsize:
        raise RequestError(
            f"input {name!r}: {count} {datatype} values need {count * dtype.itemsize} bytes; received {len(raw)}"
        )
    return as_python(np.frombuffer(raw, dtype=dtype.newbyteorder("<")))


def _text_of(value: Any, feature: Feature) -> Any:
    """BYTES elements of text-like features as text; media stay bytes."""
    if isinstance(value, bytes) and feature.type not in ("image", "audio"):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(f"input {feature.name!r}: a BYTES element is not UTF-8 text") from None
    return value


def _requested(doc: dict[str, Any]) -> list[str] | None:
    outputs = doc.get("outputs")
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise RequestError('"outputs" must be a list of objects with a name')
    return [o["name"] for o in outputs]


def _binary_outputs(doc: dict[str, Any]) -> set[str]:
    everything = bool((doc.get("parameters") or {}).get("binary_data_output"))
    chosen = set()
    for o in doc.get("outputs") or []:
        wanted = (o.get("parameters") or {}).get("binary_data")
        if wanted or (wanted is None and everything):
            chosen.add(o["name"])
    return chosen | ({"*"} if everything and not doc.get("outputs") else set())


def output_tensors(
    predictions: np.ndarray, probabilities: np.ndarray | None, classes: list[str] | None
) -> dict[str, tuple[str, list[int], np.ndarray]]:
    """name -> (datatype, shape, values) of every output the model gives."""
    rows = len(predictions)
    if classes is None:
        return {"prediction": ("FP64", [rows, 1], predictions.astype(np.float64))}
    out = {"prediction": ("BYTES", [rows, 1], predictions)}
    if probabilities is not None:
        out["probabilities"] = ("FP64", [rows, len(classes)], probabilities.astype(np.float64))
    return out


def describe_outputs(classes: list[str] | None) -> list[dict[str, Any]]:
    if classes is None:
        return [{"name": "prediction", "datatype": "FP64", "shape": [-1, 1]}]
    return [
        {"name": "prediction", "datatype": "BYTES", "shape": [-1, 1]},
        {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(classes)]},
    ]


def response(
    request: Request,
    model: str,
    version: str,
    tensors: dict[str, tuple[str, list[int], np.ndarray]],
    ids: list[str] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers: JSON, or JSON + binary outputs when asked for; the rows'
    ids (for feedback) in the response's parameters."""
    names = request.outputs if request.outputs is not None else list(tensors)
    unknown = [n for n in names if n not in tensors]
    if unknown:
        raise RequestError(f"unknown output {unknown[0]!r}; the model gives {', '.join(map(repr, tensors))}")
    outputs, chunks = [], []
    for name in names:
        datatype, shape, values = tensors[name]
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        if name in request.binary or "*" in request.binary:
            raw = _to_binary(values, datatype)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = [_json_value(v) for v in np.asarray(values).reshape(-1).tolist()]
        outputs.append(entry)
    doc: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": outputs}
    if request.id is not None:
        doc["id"] = request.id
    if ids is not None:
        doc["parameters"] = {"ids": ids}
    head = json.dumps(doc, allow_nan=False).encode()
    if not chunks:
        return head, {"content-type": "application/json"}
    return head + b"".join(chunks), {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(head)),
    }


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _to_binary(values: np.ndarray, datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for v in np.asarray(values, dtype=object).reshape(-1):
            raw = v if isinstance(v, bytes) else str(v).encode()
            parts.append(struct.pack("<I", len(raw)) + raw)
        return b"".join(parts)
    return np.ascontiguousarray(values, dtype=np.dtype(NUMPY[datatype]).newbyteorder("<")).tobytes()
