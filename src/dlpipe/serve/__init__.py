"""`dlpipe serve`: the inference API for a model folder (app.py), its protocol (v2.py), request
checks (inputs.py) and the model runtime (runtime.py)."""

from __future__ import annotations

from pathlib import Path


def serve(
    model: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    runtime: str = "auto",
    threads: int | None = None,
    max_body_mb: float = 32,
) -> None:
    """Load the model and serve it with uvicorn until interrupted (SIGINT/SIGTERM drain, then exit)."""
    import uvicorn

    from dlpipe.serve.app import Settings, create_app
    from dlpipe.serve.runtime import Runtime

    loaded = Runtime(model, runtime=runtime, threads=threads)
    app = create_app(loaded, Settings(max_body=int(max_body_mb * 1024 * 1024)))
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30)
