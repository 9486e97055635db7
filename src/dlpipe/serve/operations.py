"""What operators need around the API: Prometheus metrics and optional bearer-token auth, as one
ASGI middleware (cheaper per request than Starlette's BaseHTTPMiddleware)."""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# liveness and readiness probes never need a token; exact paths, so `/v2/health/%2e%2e/...` is no way round it
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """The server's Prometheus metrics, in a registry of its own."""

    def __init__(self, name: str, version: str, runtime: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dlpipe_requests", "Requests by route and status", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "dlpipe_request_seconds", "Time to answer, by route", ["route"], buckets=LATENCY, registry=self.registry
        )
        self.queued = Histogram(
            "dlpipe_queue_seconds", "Time a request waited for the model", buckets=LATENCY, registry=self.registry
        )
        self.batch = Histogram(
            "dlpipe_batch_rows",
            "Rows per model call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
            registry=self.registry,
        )
        self.rows = Counter("dlpipe_predicted_rows", "Rows predicted", registry=self.registry)
        self.monitor_stored = Counter(
            "dlpipe_monitor_rows_stored", "Prediction rows written to the monitoring store", registry=self.registry
        )
        self.monitor_lost = Counter(
            "dlpipe_monitor_rows_lost", "Prediction rows not stored, by reason", ["reason"], registry=self.registry
        )
        for reason in ("queue_full", "shutdown", "rejected"):
            self.monitor_lost.labels(reason)
        self.monitor_errors = Counter(
            "dlpipe_monitor_store_errors", "Failed writes to the monitoring store (retried)", registry=self.registry
        )
        self.monitor_pending = Gauge(
            "dlpipe_monitor_rows_pending", "Rows waiting for the monitoring writer", registry=self.registry
        )
        self.info = Gauge(
            "dlpipe_model_info", "The model served", ["name", "version", "runtime"], registry=self.registry
        )
        self.info.labels(name, version, runtime).set(1)
        self.swaps = Counter("dlpipe_model_swaps", "Switches to another model version", registry=self.registry)
        self.shadow_errors = Counter(
            "dlpipe_shadow_errors",
            "Requests the shadow model failed (the client never sees them)",
            registry=self.registry,
        )

    def swapped(self, old: Any, new: Any) -> None:
        """A registry alias moved: the info gauge names the version served now."""
        self.info.labels(old.name, old.version, old.kind).set(0)
        self.info.labels(new.name, new.version, new.kind).set(1)
        self.swaps.inc()

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class Guard:
    """Checks the bearer token (when one is set) and records every request's route, status and time."""

    def __init__(self, app: Any, metrics: Metrics, token: str | None) -> None:
        self.app, self.metrics = app, metrics
        self.token = token.encode() if token else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        if self.token is not None and scope["path"] not in OPEN_PATHS and not self._allowed(scope):
            await _unauthorised(sending)
        else:
            await self.app(scope, receive, sending)
        route = scope.get("route")
        path = getattr(route, "path", "unmatched")
        self.metrics.requests.labels(path, str(status)).inc()
        self.metrics.latency.labels(path).observe(time.perf_counter() - start)

    def _allowed(self, scope: dict[str, Any]) -> bool:
        for key, value in scope.get("headers", []):
            if key == b"authorization":
                scheme, _, given = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token or b"")
        return False


async def _unauthorised(send: Any) -> None:
    body = json.dumps({"error": "missing or wrong bearer token (send Authorization: Bearer <token>)"}).encode()
    headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def read_token(env: str = "DLPIPE_TOKEN", path: str | None = None) -> str | None:
    """The token from a file (first line) or an environment variable; None turns auth off."""
    import os

    if path:
        with open(path, encoding="utf-8") as f:
            token = f.readline().strip()
        if not token:
            from dlpipe.errors import ConfigError

            raise ConfigError("the token file is empty", where=path)
        return token
    return os.environ.get(env) or None
