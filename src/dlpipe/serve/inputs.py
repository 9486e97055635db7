"""What a request may send: one value per feature and row, checked against the model's schema
before any of it reaches the model. Every refusal is a `RequestError` naming the feature (and the
row) at fault; the server answers it with 4xx, never 500.

Images and audio arrive as their file's content (base64 text in JSON, raw bytes in binary
tensors or multipart uploads); the server never opens a path a request names.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from dlpipe.prepare.preprocessor import Preprocessor

MEDIA = ("image", "audio")
NUMBER_TYPES = ("numeric",)
# the Open Inference Protocol datatype each feature type is sent as
DATATYPES = {
    "numeric": "FP64",
    "binary": "BOOL",
    "category": "BYTES",
    "text": "BYTES",
    "datetime": "BYTES",
    "image": "BYTES",
    "audio": "BYTES",
}
MAX_ROWS = 100_000  # rows in one request


class RequestError(Exception):
    """A client's mistake: answered with `status` and {"error": message}."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Feature:
    name: str
    type: str

    @property
    def datatype(self) -> str:
        return DATATYPES.get(self.type, "BYTES")


def schema(preprocessor: Preprocessor) -> list[Feature]:
    """The model's features in training order."""
    return [Feature(c.name, c.type) for c in preprocessor.columns]


def frame_from_records(records: Any, features: list[Feature], where: str = "instances") -> pd.DataFrame:
    """Rows as mappings of feature to value (`/predict`'s instances, MLflow's dataframe_records)."""
    if not isinstance(records, list) or not records:
        raise RequestError(f"{where} must be a non-empty list of rows, each a mapping of feature to value")
    if len(records) > MAX_ROWS:
        raise RequestError(f"{where} holds {len(records)} rows; at most {MAX_ROWS} per request", status=413)
    known = {f.name for f in features}
    for i, row in enumerate(records):
        if not isinstance(row, dict):
            raise RequestError(f"{where}[{i}] must be a mapping of feature to value, not {_kind(row)}")
        unknown = [k for k in row if k not in known]
        if unknown:
            raise RequestError(f"{where}[{i}]: unknown feature {unknown[0]!r} (the model takes {_names(features)})")
        missing = [f.name for f in features if f.name not in row]
        if missing:
            raise RequestError(f"{where}[{i}]: missing feature {missing[0]!r}; send null for a missing value")
    columns = {f.name: [row[f.name] for row in records] for f in features}
    return frame_from_columns(columns, features, where)


def frame_from_split(payload: Any, features: list[Feature]) -> pd.DataFrame:
    """MLflow's `dataframe_split`: {"columns": [...], "data": [[...], ...]}."""
    if not isinstance(payload, dict) or not isinstance(payload.get("columns"), list):
        raise RequestError('dataframe_split must be {"columns": [...], "data": [[...], ...]}')
    names, data = payload["columns"], payload.get("data")
    if not isinstance(data, list) or not data:
        raise RequestError("dataframe_split.data must be a non-empty list of rows")
    records = []
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(names):
            raise RequestError(f"dataframe_split.data[{i}] must be a list of {len(names)} values, one per column")
        records.append(dict(zip(names, row, strict=True)))
    return frame_from_records(records, features, "dataframe_split")


def frame_from_columns(columns: dict[str, list[Any]], features: list[Feature], where: str) -> pd.DataFrame:
    """Check every value against its feature's type; media values are decoded from base64."""
    checked: dict[str, Any] = {}
    for feature in features:
        values = [_check(feature, v, i, where) for i, v in enumerate(columns[feature.name])]
        if feature.type in NUMBER_TYPES:
            checked[feature.name] = np.array([np.nan if v is None else v for v in values], dtype=float)
        else:
            checked[feature.name] = np.array(values, dtype=object)
    return pd.DataFrame(checked, copy=False)


def _check(feature: Feature, value: Any, row: int, where: str) -> Any:
    """One value, as the feature type takes it, or a RequestError naming feature and row."""
    at = f"{where}: feature {feature.name!r}, row {row}"
    if value is None:
        return None
    kind = feature.type
    if kind in NUMBER_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RequestError(f"{at}: expected a number or null, received {_kind(value)}")
        if math.isinf(value):
            raise RequestError(f"{at}: infinity is not a usable value (send null for a missing one)")
        return None if math.isnan(value) else float(value)
    if kind == "binary":
        if isinstance(value, bool | int | float | str):
            return str(value) if not isinstance(value, bool) else ("true" if value else "false")
        raise RequestError(f"{at}: expected true/false (or one of the training values), received {_kind(value)}")
    if kind in MEDIA:
        if isinstance(value, bytes):
            content = value
        elif isinstance(value, str):
            try:
                content = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise RequestError(f"{at}: not valid base64 (send the {kind} file's content base64-encoded)") from None
        else:
            raise RequestError(f"{at}: expected the {kind} file's content as base64 text, received {_kind(value)}")
        if not content:
            raise RequestError(f"{at}: empty {kind} data")
        return content
    if isinstance(value, str):
        return value
    if kind == "category" and isinstance(value, int | float) and not isinstance(value, bool):
        return value  # a category with numeric levels
    raise RequestError(f"{at}: expected text, received {_kind(value)}")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _names(features: list[Feature]) -> str:
    shown = ", ".join(repr(f.name) for f in features[:12])
    return shown + (f" and {len(features) - 12} more" if len(features) > 12 else "")


def as_python(array: np.ndarray) -> list[Any]:
    """A tensor's values as JSON-ready Python values (bytes stay bytes)."""
    return [v.item() if isinstance(v, np.generic) else v for v in array.tolist()]
