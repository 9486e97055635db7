"""The `tracking:` section: where a run also logs itself, for people who watch runs in MLflow or
TensorBoard. Both are optional dependencies, checked when a run starts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Tracking(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    mlflow: str | None = Field(
        None,
        description="MLflow tracking URI (sqlite:///mlflow.db, http://host:5000, a folder; relative paths are "
        "relative to this file); ${VAR} reads the environment; needs `pip install mlflow-skinny`",
    )
    experiment: str | None = Field(None, min_length=1, description="the MLflow experiment; default the pipeline's name")
    tensorboard: str | None = Field(
        None,
        min_length=1,
        description="a folder for TensorBoard scalars (relative to this file); a run writes DIR/<name>/<run-id>/",
    )
