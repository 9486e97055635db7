"""The inference API: Open Inference Protocol v2 (`/v2/...`), plain JSON (`/predict`) and MLflow's
scoring payloads (`/invocations`), on FastAPI.

A client's mistake is answered 4xx with {"error": "..."} (400 bad input, 404 unknown model or
version, 401 no token, 413 too large, 415 not JSON, 503 busy or not ready); requests are parsed
in a thread pool and batched onto the model's one thread (batching.py).
"""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from dlpipe import __version__
from dlpipe.errors import DlpipeError
from dlpipe.serve import v2
from dlpipe.serve.batching import BatchStats
from dlpipe.serve.inputs import RequestError, frame_from_columns, frame_from_records, frame_from_split, schema
from dlpipe.serve.models import ModelSet, Slot, SlotSettings, call, holding
from dlpipe.serve.operations import Guard, Metrics
from dlpipe.serve.reading import content_type, read_body, read_form, read_json
from dlpipe.serve.runtime import Prediction, Runtime

if TYPE_CHECKING:
    from dlpipe.monitor.recorder import Recorder

MAX_BODY = 32 * 1024 * 1024  # bytes, after decompression


@dataclass
class Settings:
    max_body: int = MAX_BODY
    max_batch_size: int = 32  # rows per model call
    max_delay_ms: float = 0.0  # how long a batch waits for more rows
    max_queue: int = 256  # requests waiting; beyond it, 503
    token: str | None = None  # bearer token for every route but health
    poll_seconds: float = 2.0  # how often a server following a registry alias checks it


def create_app(
    runtime: Runtime,
    settings: Settings | None = None,
    recorder: Recorder | None = None,
    source: str | None = None,
    shadow: str | None = None,
) -> FastAPI:
    """The app serving a loaded model; with a `recorder`, every prediction is logged for monitoring.
    With a registry reference as `source` (`models:/NAME@champion`) it follows the alias: it checks
    every `settings.poll_seconds` and on POST /admin/reload, and swaps to the version named. A
    `shadow` model (a folder or reference) answers the same rows for the log only."""
    settings = settings or Settings()
    features = schema(runtime.model.preprocessor)  # the OpenAPI description's; requests use their slot's
    name = runtime.name
    metrics = Metrics(runtime.name, runtime.version, runtime.kind)
    if recorder is not None:
        from dlpipe.monitor.recorder import Counters

        recorder.counters = Counters(
            stored=metrics.monitor_stored.inc,
            lost=lambda reason, n: metrics.monitor_lost.labels(reason).inc(n),
            errors=metrics.monitor_errors.inc,
        )
        metrics.monitor_pending.set_function(lambda: recorder.pending)
    models = ModelSet(
        runtime,
        source,
        SlotSettings(
            runtime=runtime.kind if runtime.kind == "torch" else "auto",
            threads=runtime.threads,
            max_batch_size=settings.max_batch_size,
            max_delay_ms=settings.max_delay_ms,
            max_queue=settings.max_queue,
            stats=BatchStats(on_batch=metrics.batch.observe, on_queued=metrics.queued.observe),
        ),
        shadow=shadow if recorder is not None else None,  # a shadow's answers only matter in the log
    )
    models.on_swap.append(lambda old, new: metrics.swapped(old.runtime, new.runtime))
    # ready: what probes see (false from a stop signal on); started: the model can take requests,
    # which stays true while the requests in flight drain
    state = {"ready": False, "started": False}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        if recorder is not None:
            recorder.start()
        await models.start(settings.poll_seconds)  # warmed: the first request should not pay for lazy set-up
        # the ~250,000 objects the imports made live as long as the server: outside the collector,
        # a full collection costs ~10 ms instead of ~130 ms (benchmarks/README.md, serve.py)
        gc.collect()
        gc.freeze()
        state["ready"] = state["started"] = True
        yield
        state["ready"] = state["started"] = False
        if tasks:  # the shadow's answers to requests already served go to the log too
            await asyncio.wait(list(tasks), timeout=30)
        await models.stop()
        if recorder is not None:
            await run_in_threadpool(recorder.stop)  # writes what is buffered

    app = FastAPI(
        title=f"dlpipe: {name}",
        version=__version__,
        description="Predictions from a dlpipe model: Open Inference Protocol v2, plain JSON, MLflow payloads.",
        lifespan=lifespan,
    )
    app.state.ready = state
    app.add_middleware(Guard, metrics=metrics, token=settings.token)

    async def model_call(
        slot: Slot, frame: Any, started: float, ids: list[str] | None = None
    ) -> tuple[Prediction, list[str]]:
        """The prediction for a request's rows, and the rows' ids (the client's, or new ones), logged."""
        if not state["started"]:
            raise RequestError("the model is not ready", status=503)
        result = await call(slot, frame)
        metrics.rows.inc(len(frame))
        ids = ids or new_ids(len(frame))
        if recorder is not None:
            from dlpipe.monitor.recorder import Entry

            latency = (time.perf_counter() - started) * 1000
            entry = Entry(ids, frame, result.predictions, result.probabilities, time.time(), latency, slot.version)
            entry.embed, entry.types = slot.runtime.embed, slot.types  # this version's, whatever a swap does
            recorder.record(entry)
            if models.shadow is not None:
                tasks.add(task := asyncio.get_running_loop().create_task(mirror(models.shadow, frame, ids)))
                task.add_done_callback(tasks.discard)
        return result, ids

    tasks: set[asyncio.Task] = set()
    baselines: dict[Any, Any] = {}  # model folder -> its monitoring baseline, for /dashboard

    async def mirror(shadow: Slot, frame: Any, ids: list[str]) -> None:
        """The shadow model's answer to the same rows, logged beside the served one; never returned."""
        from dlpipe.monitor.recorder import Entry

        started = time.perf_counter()
        try:
            with holding(shadow):
                result = await call(shadow, frame)
        except Exception:
            metrics.shadow_errors.inc()
            return
        latency = (time.perf_counter() - started) * 1000
        entry = Entry(ids, frame, result.predictions, result.probabilities, time.time(), latency, shadow.version)
        entry.shadow, entry.embed, entry.types = True, shadow.runtime.embed, shadow.types
        recorder.record(entry)

    async def check_model(asked: str, version: str | None = None) -> Slot:
        """The slot a request names: the served version, or (from the registry) another one."""
        if asked != name:
            raise RequestError(f"unknown model {asked!r}; this server has {name!r}", status=404)
        if version is None:
            return models.current
        return await models.version(name, version)

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

    def model_metadata(slot: Slot) -> dict[str, Any]:
        return {
            "name": name,
            "versions": [slot.version],
            "platform": f"dlpipe_{slot.runtime.kind}",
            "inputs": [{"name": f.name, "datatype": f.datatype, "shape": [-1, 1]} for f in slot.features],
            "outputs": v2.describe_outputs(slot.runtime.classes),
        }

    @app.get("/v2/models/{name}", tags=["v2"])
    async def metadata(name: str) -> dict[str, Any]:
        return model_metadata(await check_model(name))

    @app.get("/v2/models/{name}/versions/{version}", tags=["v2"])
    async def version_metadata(name: str, version: str) -> dict[str, Any]:
        return model_metadata(await check_model(name, version))

    @app.get("/v2/models/{name}/ready", tags=["v2"])
    async def model_ready(name: str) -> Response:
        await check_model(name)
        return _ready_response(state["ready"])

    @app.get("/v2/models/{name}/versions/{version}/ready", tags=["v2"])
    async def version_ready(name: str, version: str) -> Response:
        await check_model(name, version)
        return _ready_response(state["ready"])

    async def infer(request: Request, name: str, version: str | None) -> Response:
        started = time.perf_counter()
        with holding(await check_model(name, version)) as slot:
            body = await read_body(request, settings.max_body)
            header = request.headers.get(v2.HEADER_LENGTH)

            parsed = await run_in_threadpool(v2.parse, body, header, slot.features)
            result, ids = await model_call(slot, parsed.frame, started)
            tensors = v2.output_tensors(result.predictions, result.probabilities, slot.runtime.classes)
            content, headers = await run_in_threadpool(v2.response, parsed, name, slot.version, tensors, ids)
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
        started = time.perf_counter()
        with holding(models.current) as slot:
            if content_type(request) in ("multipart/form-data", "application/x-www-form-urlencoded"):
                columns = await read_form(request, settings.max_body, slot.features)
                frame = await run_in_threadpool(frame_from_columns, columns, slot.features, "form")
                return plain(slot.runtime, *await model_call(slot, frame, started))
            doc = await read_json(request, settings.max_body)
            if not isinstance(doc, dict) or "instances" not in doc:
                raise RequestError('send {"instances": [{"feature": value, ...}, ...]} (and optionally "ids": [...])')

            frame = await run_in_threadpool(frame_from_records, doc["instances"], slot.features)
            ids = client_ids(doc.get("ids"), len(frame)) if "ids" in doc else None
            return plain(slot.runtime, *await model_call(slot, frame, started, ids))

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
        started = time.perf_counter()
        with holding(models.current) as slot:
            doc = await read_json(request, settings.max_body)
            keys = [
                k for k in ("dataframe_split", "dataframe_records", "instances") if isinstance(doc, dict) and k in doc
            ]
            if len(keys) != 1:
                raise RequestError("send exactly one of dataframe_split, dataframe_records, instances")

            payload = doc[keys[0]]
            if keys[0] == "dataframe_split":
                frame = await run_in_threadpool(frame_from_split, payload, slot.features)
            else:
                frame = await run_in_threadpool(frame_from_records, payload, slot.features, keys[0])
            answer = plain(slot.runtime, *await model_call(slot, frame, started))
        return {"predictions": answer["predictions"], "ids": answer["ids"]}

    feedback_body = {"type": "object", "required": ["id", "label"], "properties": {"id": {"type": "string"}}}

    @app.post(
        "/feedback",
        tags=["monitoring"],
        openapi_extra=_body({"oneOf": [feedback_body, {"type": "array", "minItems": 1, "items": feedback_body}]}),
    )
    async def feedback(request: Request) -> dict[str, Any]:
        """Ground truth for earlier predictions: `{"id": ..., "label": ...}` or a list of them."""
        from dlpipe.monitor.feedback import parse_feedback

        if recorder is None:
            raise RequestError("this server logs no predictions (no monitoring store), so it takes no feedback", 404)
        doc = await read_json(request, settings.max_body)
        labels = parse_feedback(doc, models.current.runtime.classes)
        try:
            stored = await run_in_threadpool(recorder.store().add_feedback, labels, time.time())
        except Exception as exc:
            problem = type(exc).__name__
            raise RequestError(f"the monitoring store is unavailable ({problem}); retry later", 503) from None
        return {"received": stored}

    @app.get("/dashboard", tags=["monitoring"], response_class=HTMLResponse)
    async def dashboard(window: int | None = None) -> HTMLResponse:
        """The monitoring dashboard of this model's logged predictions (`?window=N` rows per window)."""
        from dlpipe.monitor.dashboard import render
        from dlpipe.monitor.report import Baseline, clean_json, monitor

        if recorder is None:
            raise RequestError("this server logs no predictions (no monitoring store), so it has no dashboard", 404)
        if window is not None and not 10 <= window <= 10_000_000:
            raise RequestError("window must be between 10 and 10,000,000 rows")
        try:
            folder = models.current.runtime.model.folder
            if folder not in baselines:  # read (and hash-checked) once per version, not per page view
                baselines[folder] = await run_in_threadpool(Baseline.from_folder, folder)
            report = await run_in_threadpool(monitor, baselines[folder], recorder.store(), None, window, False)
        except DlpipeError as exc:
            raise RequestError(exc.render(), 503) from None
        return HTMLResponse(render(clean_json(report)))

    @app.post("/admin/reload", tags=["operations"])
    async def reload() -> dict[str, Any]:
        """Check the registry alias the server follows now and swap to the version it names (token only)."""
        if settings.token is None:
            raise RequestError("admin routes need a token: start the server with --token-file or DLPIPE_TOKEN", 403)
        if not models.follows_registry:
            raise RequestError("this server serves a folder, not a registry alias: nothing to reload", 409)
        try:
            swapped = await models.refresh()
        except DlpipeError as exc:
            raise RequestError(exc.render(), 409) from None
        return {"swapped": swapped, "version": models.current.version}

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)  # the OpenAPI says text, as sent
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


def plain(runtime: Runtime, result: Prediction, ids: list[str]) -> dict[str, Any]:
    """Predictions (and per-class probabilities), the model, and one id per row."""
    out: dict[str, Any] = {"predictions": result.predictions.tolist()}
    if result.probabilities is not None and runtime.classes is not None:
        out["probabilities"] = [
            dict(zip(runtime.classes, map(float, row), strict=True)) for row in result.probabilities
        ]
    out |= {"model": runtime.name, "version": runtime.version, "ids": ids}
    return out


def new_ids(rows: int) -> list[str]:
    """Fresh ids for a request's rows: one random prefix, then the row's position in fixed-width hex.
    The store orders rows of one time by id, so a request's rows come back in the order they were sent."""
    prefix = uuid.uuid4().hex[:24]  # 96 random bits per request; the ids stay 32 hex characters
    return [f"{prefix}{i:08x}" for i in range(rows)]


def client_ids(ids: Any, rows: int) -> list[str]:
    """The ids a client chose for its rows (to join its own feedback later): distinct short strings."""
    from dlpipe.monitor.store import MAX_ID

    if not isinstance(ids, list) or len(ids) != rows:
        raise RequestError(f"ids must be a list of {rows} strings, one per instance")
    for i, value in enumerate(ids):
        if not isinstance(value, str) or not 0 < len(value) <= MAX_ID:
            raise RequestError(f"ids[{i}] must be a non-empty string of at most {MAX_ID} characters")
    if len(set(ids)) != len(ids):
        raise RequestError("ids must be distinct")
    return ids


def _ready_response(ready: bool) -> Response:
    if ready:
        return JSONResponse({"ready": True})
    return JSONResponse({"ready": False, "error": "the model is not ready"}, status_code=503)
