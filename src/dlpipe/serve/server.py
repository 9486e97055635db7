"""Running the app: the model's `serving:` and `monitoring:` settings under the command line's
flags, uvicorn, and a graceful stop (not-ready at once, requests in flight finished, then exit)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from dlpipe.spec import Monitoring, Serving

if TYPE_CHECKING:
    from dlpipe.monitor.recorder import Recorder
    from dlpipe.serve.runtime import Runtime


def serving_settings(manifest: dict[str, Any], overrides: dict[str, Any]) -> Serving:
    """The model's `serving:` section with the flags given (not None) on top."""
    section = manifest.get("pipeline", {}).get("serving", {})
    return Serving(**{**section, **{k: v for k, v in overrides.items() if v is not None}})


class DrainingServer(uvicorn.Server):
    """uvicorn's server, reporting not-ready as soon as a stop signal arrives; uvicorn then stops
    accepting connections, finishes the requests in flight and runs the app's shutdown."""

    def __init__(self, config: uvicorn.Config, ready: dict[str, bool]) -> None:
        super().__init__(config)
        self.ready = ready

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.ready["ready"] = False
        super().handle_exit(sig, frame)


def monitoring_settings(manifest: dict[str, Any], store: str | None = None) -> Monitoring:
    """The model's `monitoring:` section, with the store the command line names (if any) on top."""
    section = dict(manifest.get("pipeline", {}).get("monitoring", {}))
    if store is not None:
        section["store"] = None if store.lower() in ("none", "off") else store
    return Monitoring(**section)


def make_recorder(runtime: Runtime, monitoring: Monitoring) -> Recorder | None:
    """The background writer of the prediction store; None when the store is off."""
    from dlpipe.monitor.recorder import Recorder

    if monitoring.store is None:
        return None
    recorder = Recorder(
        monitoring.store,
        runtime.name,
        runtime.version,
        {c.name: c.type for c in runtime.model.preprocessor.columns},
        queue_rows=monitoring.queue_rows,
        raw_media=monitoring.raw_media,
        max_text_chars=monitoring.max_text_chars,
        embed=runtime.embed,
    )
    store = recorder.store()  # a malformed URL or a missing driver is the user's to fix now, not a lost row later
    import sys

    print(f"logging predictions to {store.url} (dlpipe monitor reads them)", file=sys.stderr)
    return recorder


def serve(
    model: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    token: str | None = None,
    store: str | None = None,
    **overrides: Any,
) -> None:
    """Load the model and serve it until SIGTERM or SIGINT, logging predictions to the store."""
    from dlpipe.package import load_model
    from dlpipe.serve.app import Settings, create_app
    from dlpipe.serve.runtime import Runtime

    manifest = load_model(model).manifest
    settings = serving_settings(manifest, overrides)
    runtime = Runtime(model, runtime=settings.runtime, threads=settings.threads)
    if settings.shadow:
        from dlpipe.manifest import find_model_folder

        find_model_folder(settings.shadow)  # a shadow that cannot be found is the user's to fix now
    recorder = make_recorder(runtime, monitoring_settings(manifest, store))
    app = create_app(
        runtime,
        Settings(
            max_body=int(settings.max_body_mb * 1024 * 1024),
            max_batch_size=settings.max_batch_size,
            max_delay_ms=settings.max_delay_ms,
            max_queue=settings.max_queue,
            token=token,
        ),
        recorder,
        source=str(model) if str(model).startswith("models:/") else None,
        shadow=settings.shadow,
    )
    # keep-alive longer than clients' and load balancers' idle timeouts (often 60 s): a server that
    # closes an idle connection first races the client's next request on it (a reset, not a 4xx)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30, timeout_keep_alive=75
    )
    DrainingServer(config, app.state.ready).run()
