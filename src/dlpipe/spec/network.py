"""The `model:` and `training:` sections: the network, and how it is trained."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from dlpipe.spec.base import SEED_LIMIT, AtKey, Whole, _Strict
from dlpipe.spec.presets import NAMES as PRESET_NAMES
from dlpipe.spec.tuning import check_ray_keys


class ModelSpec(_Strict):
    preset: Literal[PRESET_NAMES] = Field(  # type: ignore[valid-type]
        "balanced", description="fast | balanced | best: a bundle of model and training settings; keys set win"
    )
    layers: Whole = Field(2, ge=1, le=16, description="hidden layers of the MLP")
    hidden: Whole = Field(128, ge=4, le=8192, description="width of each hidden layer")
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    norm: Literal["batch", "layer", "none"] = "batch"
    numeric_embedding: Annotated[Whole, Field(ge=0, le=512)] | Literal["auto"] = Field(
        "auto",
        description="per-feature numeric embedding size; 0 feeds raw values; auto: 16 from 10,000 training rows",
    )
    numeric_embedding_kind: Literal["linear", "periodic"] = Field(
        "periodic", description="linear: a linear map of each value; periodic (PLR): sin/cos at learned frequencies"
    )
    ensemble: Whole = Field(1, ge=1, le=64, description="networks trained together and averaged")
    skip: bool = Field(True, description="add a linear path from the encoded inputs to the output")
    linear_candidate: bool = Field(
        True,
        description="regression on tables: a ridge fit of the skip path alone (alpha by leave-one-out) competes "
        "with every epoch on validation, as epoch 0",
    )
    combiner: Literal["concat", "transformer"] = Field(
        "concat", description="how the encoders' outputs meet: side by side, or as tokens through a transformer"
    )
    category_embedding: Whole | None = Field(
        None, ge=1, le=512, description="embedding size; by cardinality when absent"
    )
    calibrate: bool = Field(
        True, description="classification: temperature scaling of the probabilities, fitted on the validation split"
    )
    threshold: Literal["auto"] | Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        "auto",
        description="binary: the positive class's probability from which it is predicted; auto tunes it on the "
        "validation split when the metric is f1_macro or balanced_accuracy, else 0.5",
    )


class Training(_Strict):
    epochs: Whole = Field(100, ge=1, le=100_000)
    batch_size: Whole | Literal["auto"] = Field(
        "auto", description="rows per step; auto: the power of two nearest training rows / 16, within 32..512"
    )
    learning_rate: float = Field(3e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    warmup: float = Field(0.05, ge=0.0, lt=1.0, description="fraction of steps with a linear learning-rate warm-up")
    early_stopping: Whole = Field(20, ge=0, description="epochs without improvement before stopping; 0 turns it off")
    seed: Whole = Field(42, ge=0, lt=SEED_LIMIT)
    threads: Whole | None = Field(
        None, ge=1, description="torch threads; auto: 1 under a million parameters, else all cores"
    )
    backend: Literal["local", "ray"] = Field(
        "local", description="local (this process) or ray: data-parallel on Ray Train (PyTorch DDP)"
    )
    workers: Whole | None = Field(None, ge=1, le=10_000, description="ray: training processes, one CPU each (2)")
    address: str | None = Field(
        None, description="ray: `auto` (a running cluster) or ray://host:port; absent starts a local Ray"
    )
    storage: str | None = Field(None, description="ray: where Ray keeps checkpoints; a path or URI every node reaches")

    @model_validator(mode="after")
    def _batch_size(self) -> Training:
        if self.batch_size != "auto" and not 1 <= self.batch_size <= 1_000_000:
            raise AtKey("batch_size", f"batch_size must be auto or between 1 and 1,000,000; received {self.batch_size}")
        return self

    @model_validator(mode="after")
    def _ray_settings(self) -> Training:
        check_ray_keys(self, ("workers", "address", "storage"))
        if self.backend == "ray" and self.workers is None:
            self.workers = 2
        if self.workers and self.batch_size != "auto" and self.batch_size < self.workers:
            raise AtKey(
                "batch_size", f"each of {self.workers} workers trains on a share of a batch; received {self.batch_size}"
            )
        return self
