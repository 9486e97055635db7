"""The inference API: Open Inference Protocol v2 (`/v2/...`), plain JSON (`/predict`) and MLflow's
scoring payloads (`/invocations`), on FastAPI.

A client's mistake is answered 4xx with {"error": "..."} (400 bad input, 404 unknown model or
version, 401 no token, 413 too large, 415 not JSON, 503 busy or not ready); requests are parsed
in a thread pool and batched onto the model's one thread (batching.py).
"""

from __future__ import annotations

import gc
import json
import uuid
import zlib
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from dlpipe import __version__
from dlpipe.serve import v2
from dlpipe.serve.batching import Batcher, BatchStats
from dlpipe.serve.inputs import RequestError, frame_from_columns, frame_from_records, frame_from_split, schema
from dlpipe.serve.operations import Guard, Metrics
from dlpipe.serve.runtime import Prediction, Runtime

MAX_BODY = 32 * 1024 * 1024  # bytes, after decompression
MAX_FORM_PARTS = 10_000  # fields and files in one multipart form


@dataclass
class Settings:
    max_body: int = MAX_BODY
    max_batch_size: int = 32  # rows per model call
    max_delay_ms: float = 0.0  # how long a batch waits for more rows
    max_queue: int = 256  # requests waiting; beyond it, 503
    token: str | None = None  # bearer token for every route but health


def create_app(runtime: Runtime, settings: Settings | None = None) -> FastAPI:
    """The app serving one loaded model."""
    settings = settings or Settings()
    features = schema(runtime.model.preprocessor)
    metrics = Metrics(runtime.name, runtime.version, runtime.kind)
    batcher = Batcher(
        runtime.predict,
        max_batch_size=settings.max_batch_size,
        max_delay_ms=settings.max_delay_ms,
        max_queue=settings.max_queue,
        stats=BatchStats(on_batch=metrics.batch.observe, on_queued=metrics.queued.observe),
    )
    # ready: what probes see (false from a stop signal on); started: the model can take requests,
    # which stays true while the requests in flight drain
    state = {"ready": False, "started": False}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        batcher.start()
        await batcher.run(runtime.warm_up)  # the first request should not pay for lazy set-up
        # the ~250,000 objects the imports made live as long as the server: outside the collector,
        # a full collection costs ~10 ms instead of ~130 ms (benchmarks/README.md, serve.py)
        gc.collect()
        gc.freeze()
        state["ready"] = state["started"] = True
        yield
        state["ready"] = state["started"] = False
        await batcher.stop()

    app = FastAPI(
        title=f"dlpipe: {runtime.name}",
        version=__version__,
        description="Predictions from a dlpipe model: Open Inference Protocol v2, plain JSON, MLflow payloads.",
        lifespan=lifespan,
    )
    app.state.ready = state
    app.add_middleware(Guard, metrics=metrics, token=settings.token)

    async def model_call(frame: Any) -> Prediction:
        if not state["started"]:
            raise RequestError("the model is not ready", status=503)
        result = await batcher.submit(frame)
        metrics.rows.inc(len(frame))
        return result

    def check_model(name: str, version: str | None = None) -> None:
        if name != runtime.name:
            raise RequestError(f"unknown model {name!r}; this server has {runtime.name!r}", status=404)
        if version is not None and version != runtime.version:
            raise RequestError(f"model {name!r} has no version {version!r} (it has {runtime.version!r})", status=404)

    # --- errors: a JSON body with "error", never a traceback ---

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
        headers = {"Retry-After": "1"} if exc.status == 503 else None
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}"}, status_code=400)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)

    # --- Open Inference Protocol v2 ---

    @app.get("/v2/health/live", tags=["v2"])
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready", tags=["v2"])
    async def ready() -> Response:
        return _ready_response(state["ready"])

    @app.get("/v2", tags=["v2"])
    async def server_metadata() -> dict[str, Any]:
        return {"name": "dlpipe", "version": __version__, "extensions": ["binary_tensor_data"]}

    def model_metadata() -> dict[str, Any]:
        return {
            "name": runtime.name,
            "versions": [runtime.version],
            "platform": f"dlpipe_{runtime.kind}",
            "inputs": [{"name": f.name, "datatype": f.datatype, "shape": [-1, 1]} for f in features],
            "outputs": v2.describe_outputs(runtime.classes),
        }

    @app.get("/v2/models/{name}", tags=["v2"])
    async def metadata(name: str) -> dict[str, Any]:
        check_model(name)
        return model_metadata()

    @app.get("/v2/models/{name}/versions/{version}", tags=["v2"])
    async def version_metadata(name: str, version: str) -> dict[str, Any]:
        check_model(name, version)
        return model_metadata()

    @app.get("/v2/models/{name}/ready", tags=["v2"])
    async def model_ready(name: str) -> Response:
        check_model(name)
        return _ready_response(state["ready"])

    @app.get("/v2/models/{name}/versions/{version}/ready", tags=["v2"])
    async def version_ready(name: str, version: str) -> Response:
        check_model(name, version)
        return _ready_response(state["ready"])

    async def infer(request: Request, name: str, version: str | None) -> Response:
        check_model(name, version)
        body = await read_body(request, settings.max_body)
        header = request.headers.get(v2.HEADER_LENGTH)

        parsed = await run_in_threadpool(v2.parse, body, header, features)
        result = await model_call(parsed.frame)
        tensors = v2.output_tensors(result.predictions, result.probabilities, runtime.classes)
        content, headers = await run_in_threadpool(v2.response, parsed, runtime.name, runtime.version, tensors)
        return Response(content, headers=headers)

    infer_body = _body(_infer_schema(features))

    @app.post("/v2/models/{name}/infer", tags=["v2"], openapi_extra=infer_body)
    async def infer_latest(request: Request, name: str) -> Response:
        return await infer(request, name, None)

    @app.post("/v2/models/{name}/versions/{version}/infer", tags=["v2"], openapi_extra=infer_body)
    async def infer_version(request: Request, name: str, version: str) -> Response:
        return await infer(request, name, version)

    # --- plain JSON and MLflow ---

    row = _row_schema(features)

    @app.post(
        "/predict",
        tags=["json"],
        openapi_extra=_body({"type": "object", "required": ["instances"], "properties": {"instances": _rows(row)}}),
    )
    async def predict(request: Request) -> dict[str, Any]:
        """`{"instances": [{feature: value, ...}, ...]}` -> predictions, probabilities, ids.

        Or a form (multipart or URL-encoded): one field per feature (files for images and audio);
        a feature sent k times gives k rows.
        """
        if _content_type(request) in ("multipart/form-data", "application/x-www-form-urlencoded"):
            columns = await read_form(request, settings.max_body, features)
            frame = await run_in_threadpool(frame_from_columns, columns, features, "form")
            return plain(runtime, frame, await model_call(frame))
        doc = await read_json(request, settings.max_body)
        if not isinstance(doc, dict) or "instances" not in doc:
            raise RequestError('send {"instances": [{"feature": value, ...}, ...]}')

        frame = await run_in_threadpool(frame_from_records, doc["instances"], features)
        return plain(runtime, frame, await model_call(frame))

    split = {
        "type": "object",
        "required": ["columns", "data"],
        "properties": {"columns": {"type": "array", "items": {"type": "string"}}, "data": {"type": "array"}},
    }
    payloads = [
        {"type": "object", "required": [key], "properties": {key: value}}
        for key, value in (("dataframe_split", split), ("dataframe_records", _rows(row)), ("instances", _rows(row)))
    ]

    @app.post("/invocations", tags=["json"], openapi_extra=_body({"oneOf": payloads}))
    async def invocations(request: Request) -> dict[str, Any]:
        """MLflow's scoring payloads: `dataframe_split`, `dataframe_records` (or `instances`)."""
        doc = await read_json(request, settings.max_body)
        keys = [k for k in ("dataframe_split", "dataframe_records", "instances") if isinstance(doc, dict) and k in doc]
        if len(keys) != 1:
            raise RequestError("send exactly one of dataframe_split, dataframe_records, instances")

        payload = doc[keys[0]]
        if keys[0] == "dataframe_split":
            frame = await run_in_threadpool(frame_from_split, payload, features)
        else:
            frame = await run_in_threadpool(frame_from_records, payload, features, keys[0])
        return {"predictions": plain(runtime, frame, await model_call(frame))["predictions"]}

    @app.get("/metrics", tags=["operations"])
    async def prometheus() -> Response:
        """Prometheus metrics: requests by route and status, latency, queue time, batch sizes, the model."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI request body (the routes read their bodies themselves, to answer mistakes in kind)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _row_schema(features: list[Any]) -> dict[str, Any]:
    """One row: each feature's value (numbers, text, true/false, or base64 file content), or null."""
    kinds = {"numeric": ["number", "null"], "binary": ["boolean", "string", "number", "null"]}
    return {
        "type": "object",
        "required": [f.name for f in features],
        "properties": {f.name: {"type": kinds.get(f.type, ["string", "null"])} for f in features},
    }


def _rows(row: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "minItems": 1, "items": row}


def _infer_schema(features: list[Any]) -> dict[str, Any]:
    tensor = {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string", "enum": [f.name for f in features]},
            "datatype": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "data": {"type": "array"},
            "parameters": {"type": "object"},
        },
    }
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "items": tensor},
            "outputs": {"type": "array"},
        },
    }


def plain(runtime: Runtime, frame: Any, result: Prediction) -> dict[str, Any]:
    """Predictions (and per-class probabilities), the model, and one id per row."""
    out: dict[str, Any] = {"predictions": result.predictions.tolist()}
    if result.probabilities is not None and runtime.classes is not None:
        out["probabilities"] = [
            dict(zip(runtime.classes, map(float, row), strict=True)) for row in result.probabilities
        ]
    out |= {"model": runtime.name, "version": runtime.version, "ids": [uuid.uuid4().hex for _ in range(len(frame))]}
    return out


def _ready_response(ready: bool) -> Response:
    if ready:
        return JSONResponse({"ready": True})
    return JSONResponse({"ready": False, "error": "the model is not ready"}, status_code=503)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, decompressed (gzip or deflate), refused with 413 past `limit` bytes either way."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(f"the body is {declared} bytes; the limit is {limit}", status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"the body exceeds the limit of {limit} bytes", status=413)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise RequestError(f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or none", status=415)
    # 32 + MAX_WBITS reads gzip and zlib headers alike; max_length stops a decompression bomb early
    inflater = zlib.decompressobj(32 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise RequestError(f"the body is not valid {encoding} data: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise RequestError(f"the body decompresses past the limit of {limit} bytes", status=413)
    return out


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "application/json").split(";")[0].strip().lower()


async def read_form(request: Request, limit: int, features: list[Any]) -> dict[str, list[Any]]:
    """A multipart form as columns: text fields as text (numbers parsed), files as their content."""
    from starlette.datastructures import UploadFile

    request._body = await read_body(request, limit)  # the limit applies; form() then reads this
    try:
        form = await request.form(max_files=MAX_FORM_PARTS, max_fields=MAX_FORM_PARTS)
    except Exception as exc:  # python-multipart's and Starlette's parse errors alike
        raise RequestError(f"the multipart form cannot be read: {exc}") from None
    by_name = {f.name: f for f in features}
    unknown = [k for k in form if k not in by_name]
    if unknown:
        raise RequestError(f"form: unknown feature {unknown[0]!r}")
    columns: dict[str, list[Any]] = {}
    for feature in features:
        values = form.getlist(feature.name)
        if not values:
            raise RequestError(f"form: missing feature {feature.name!r}")
        column = []
        for value in values:
            if isinstance(value, UploadFile):
                column.append(await value.read())
            elif feature.type == "numeric":
                column.append(_form_number(value, feature.name))
            else:
                column.append(value if value != "" else None)
        columns[feature.name] = column
    counts = {len(v) for v in columns.values()}
    if len(counts) > 1:
        raise RequestError("form: every feature must be sent the same number of times (once per row)")
    return columns


def _form_number(value: str, name: str) -> float | None:
    if value.strip() == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise RequestError(f"form: feature {name!r}: {value[:40]!r} is not a number") from None


async def read_json(request: Request, limit: int) -> Any:
    kind = _content_type(request)
    if kind not in ("application/json", ""):
        raise RequestError(f"send JSON (Content-Type application/json), not {kind}", status=415)
    body = await read_body(request, limit)
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError(f"the body is not valid JSON: {exc}") from None
