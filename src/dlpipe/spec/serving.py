"""The `serving:` section: how `dlpipe serve` runs this pipeline's model (command-line flags win)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Serving(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    max_batch_size: int = Field(32, ge=1, le=65_536, strict=True, description="rows per model call")
    max_delay_ms: float = Field(0.0, ge=0.0, le=10_000, description="how long a batch waits for more rows")
    max_queue: int = Field(256, ge=1, le=1_000_000, strict=True, description="requests waiting; beyond it, 503")
    max_body_mb: float = Field(32.0, gt=0.0, le=4096, description="largest request body, after decompression")
    runtime: Literal["auto", "onnx", "torch"] = Field("auto", description="auto: model.onnx when packaged")
    threads: int | None = Field(None, ge=1, le=1024, strict=True, description="threads for the model; the cores")
    shadow: str | None = Field(
        None, description="a model (folder or models:/ reference) that answers the same rows for the log only"
    )
