"""The `monitoring:` section: where the server logs predictions and how `dlpipe monitor` judges them
(command-line flags win)."""

from __future__ import annotations

import os
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
FLAGS = {"monitoring.store": "--store URL", "monitoring.webhook": "--webhook URL"}  # what passes each again


def expand(value: str | None, where: str) -> str | None:
    """`${NAME}` replaced by the environment variable: how a pipeline file (and the model.json that
    copies it) names a database password or a webhook's secret without holding it."""
    if value is None:
        return None
    from dlpipe.redact import is_redacted

    if is_redacted(value):
        from dlpipe.errors import ConfigError

        raise ConfigError(
            f"{value} holds a secret that was redacted (***) when the model or run was saved",
            where=where,
            fix=f"pass {FLAGS.get(where, 'the URL')} again, or write the secret as ${{VAR}} in the pipeline file",
        )

    def lookup(match: re.Match) -> str:
        name = match.group(1)
        if name not in os.environ:
            from dlpipe.errors import ConfigError

            raise ConfigError(f"the environment variable {name} is not set", where=where)
        return os.environ[name]

    return VARIABLE.sub(lookup, value)


class Monitoring(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    store: str | None = Field(
        "sqlite:///dlpipe-monitor.db",
        description="SQLAlchemy URL of the prediction store (SQLite in WAL mode, PostgreSQL); null logs nothing; "
        "${VAR} reads the environment (for a password)",
    )
    window: int = Field(1000, ge=10, le=10_000_000, strict=True, description="rows per monitoring window")
    drift_share: float = Field(
        0.5, gt=0.0, le=1.0, description="dataset drift when at least this share of the features drift"
    )
    tolerance: float = Field(
        0.05, ge=0.0, description="performance alert when the live metric is worse than the test metric by more"
    )
    consecutive: int = Field(2, ge=1, le=100, strict=True, description="windows in a row before an alert fires")
    min_labels: int = Field(
        30, ge=1, strict=True, description="labelled rows a window needs before its live performance is judged"
    )
    webhook: str | None = Field(
        None, description="http(s) URL that receives active alerts as JSON (POST); ${VAR} reads the environment"
    )
    queue_rows: int = Field(
        100_000,
        ge=1,
        le=100_000_000,
        strict=True,
        description="rows the background writer may hold; beyond, counted lost",
    )
    raw_media: bool = Field(False, description="store image and audio bytes and long texts as sent, not as a hash")
    max_text_chars: int = Field(2000, ge=0, strict=True, description="longer texts are stored as a hash")

    @field_validator("webhook")
    @classmethod
    def _webhook_is_http(cls, value: str | None) -> str | None:
        if value is not None and (not re.match(r"^(https?://|\$\{)", value) or re.search(r"\s", value)):
            raise ValueError("the webhook is an http:// or https:// URL without spaces (or ${VAR})")
        return value
