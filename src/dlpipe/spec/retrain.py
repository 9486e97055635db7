"""The `retrain:` section: how `dlpipe retrain` builds and judges a challenger."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Retrain(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    min_improvement: float = Field(
        0.002, ge=0.0, description="the challenger must beat the champion on the holdout by this much (metric units)"
    )
    holdout: float = Field(0.2, gt=0.0, lt=0.9, description="share of the newest rows both models are scored on")
    feedback: bool = Field(True, description="add the feedback-labelled predictions of the monitoring store")
    warm_start: bool = Field(
        False, description="train on from the champion (its preprocessing, architecture and weights), not from scratch"
    )
