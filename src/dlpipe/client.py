"""`dlpipe.Client(url).predict(df)`: a running `dlpipe serve` from Python, without writing JSON.

Image and audio values go as their content: pass bytes, or a `pathlib.Path` and the client reads
the file (the server never opens paths). Missing values (None, NaN) are sent as null.
"""

from __future__ import annotations

import base64
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from dlpipe.errors import DlpipeError


class ServerError(DlpipeError):
    """The server refused a request (4xx: the message says what to fix) or failed (5xx)."""

    def __init__(self, status: int, message: str, url: str) -> None:
        self.status = status
        super().__init__(f"{status}: {message}", where=url)


class Client:
    """A client for the `/predict` route of a dlpipe server."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def ready(self) -> bool:
        """Whether the server is up and its model warmed up."""
        import httpx

        try:
            return self.http.get("/v2/health/ready").status_code == 200
        except httpx.TransportError:
            return False

    def predict(self, data: pd.DataFrame | list[dict[str, Any]]) -> pd.DataFrame:
        """One row per input row: `prediction`, `proba_<class>` per class for classifiers, and the
        `id` the server logged the prediction under (for feedback)."""
        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        instances = [{k: _json_value(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
        response = self.http.post("/predict", json={"instances": instances})
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text[:300]}
        if response.status_code != 200:
            raise ServerError(response.status_code, str(body.get("error", body)), self.url)
        out = pd.DataFrame({"prediction": body["predictions"]}, index=frame.index)
        for i, probabilities in enumerate(body.get("probabilities", [])):
            for cls, p in probabilities.items():
                out.loc[out.index[i], f"proba_{cls}"] = p
        out["id"] = body["ids"]
        return out

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, os.PathLike):
        return base64.b64encode(Path(value).read_bytes()).decode("ascii")
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()  # numpy scalars
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NaT or value is pd.NA:
        return None
    return value
