"""The pydantic models of `pipeline.yaml`: the single declaration of what the file may hold."""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    StrictInt,
    StrictStr,
    Tag,
    field_validator,
    model_validator,
)

from dlpipe.features import REGISTRY
from dlpipe.metrics import METRICS
from dlpipe.spec.base import SEED_LIMIT, AtKey, Whole, _Strict
from dlpipe.spec.monitoring import Monitoring
from dlpipe.spec.network import ModelSpec, Training
from dlpipe.spec.presets import apply_preset
from dlpipe.spec.retrain import Retrain
from dlpipe.spec.serving import Serving
from dlpipe.spec.tracking import Tracking
from dlpipe.spec.tuning import Duration, Tuning, check_space

# the registry is the one list of feature types: a new type needs no edit here
FeatureTypeName = Literal[(*REGISTRY, "ignore")]  # type: ignore[valid-type]

# --- problem ---------------------------------------------------------------------------------


class Problem(_Strict):
    task: Literal["classification", "regression"]
    # Strict: YAML reads `target: yes` as True, which a lax int would take as column position 1.
    target: StrictStr | StrictInt = Field(
        description="Target column name, or its position (0-based) in a file without header"
    )
    metric: str | None = Field(None, description="Drives early stopping and model choice; inferred when absent")
    goal: dict[str, float] = Field(default_factory=dict, description="Success criteria on the test set")

    @field_validator("target", mode="before")
    @classmethod
    def _target_not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(
                f"YAML reads yes/no/true/false/on/off as a boolean (here {value}), not a column name; "
                'quote the name, e.g. target: "yes"'
            )
        return value

    @model_validator(mode="after")
    def _metrics_fit_task(self) -> Problem:
        for where, name in [("metric", self.metric), *[(f"goal.{k}", k) for k in self.goal]]:
            if name is None:
                continue
            if name not in METRICS:
                raise AtKey(where, _unknown_metric(name))
            if self.task not in METRICS[name].tasks:
                raise AtKey(
                    where,
                    f"metric {name!r} does not fit task {self.task!r}; "
                    f"use one of {', '.join(m for m, s in METRICS.items() if self.task in s.tasks)}",
                )
        return self


def _unknown_metric(name: str) -> str:
    close = difflib.get_close_matches(name, list(METRICS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown metric {name!r}{hint} (known: {', '.join(METRICS)})"


# --- data ------------------------------------------------------------------------------------


class FileSource(_Strict):
    path: str
    format: Literal["csv", "tsv", "parquet", "jsonl"] | None = None
    header: bool | None = Field(None, description="Whether a CSV's first row names the columns; sniffed when absent")
    delimiter: str | None = Field(None, description="The one character between fields of a CSV; sniffed when absent")
    encoding: str | None = Field(None, description="Text encoding of a CSV; detected when absent")

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str | None) -> str | None:
        if value is not None and len(value) != 1:
            raise ValueError(f"delimiter must be exactly one character, e.g. ';' or '\\t'; received {value!r}")
        return value


class SqlSource(_Strict):
    sql: str
    url: str = Field(description="SQLAlchemy URL, e.g. sqlite:///data.db or postgresql://user@host/db")


class BuiltinSource(_Strict):
    builtin: Literal["iris", "wine", "breast_cancer", "digits", "diabetes"]


class FolderSource(_Strict):
    """Files of one kind: a folder with one subfolder per class, or a table with a column of paths.

    Exactly one of `images`, `audio`, `text` names the folder (or table).
    """

    images: str | None = None
    audio: str | None = None
    text: str | None = None

    @model_validator(mode="after")
    def _one(self) -> FolderSource:
        given = [k for k in ("images", "audio", "text") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a folder source names exactly one of images, audio, text; received {given or 'none'}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("images", "audio", "text") if getattr(self, k) is not None)

    @property
    def path(self) -> str:
        return getattr(self, self.kind)


def _source_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "path"
    if isinstance(value, dict):
        for key, tag in (
            ("builtin", "builtin"),
            ("sql", "sql"),
            ("path", "file"),
            ("images", "folder"),
            ("audio", "folder"),
            ("text", "folder"),
        ):
            if key in value:
                return tag
        return None
    if isinstance(value, BaseModel):
        return {FileSource: "file", SqlSource: "sql", BuiltinSource: "builtin", FolderSource: "folder"}.get(type(value))
    return None


Source = Annotated[
    Annotated[str, Tag("path")]
    | Annotated[FileSource, Tag("file")]
    | Annotated[SqlSource, Tag("sql")]
    | Annotated[BuiltinSource, Tag("builtin")]
    | Annotated[FolderSource, Tag("folder")],
    Discriminator(
        _source_kind,
        custom_error_type="source",
        custom_error_message="a source is a file path or a mapping with one of: path, sql, builtin, images, audio, text",  # noqa: E501
    ),
]


class Split(_Strict):
    method: Literal["random", "stratified", "group", "time", "column"] | None = Field(
        None, description="stratified by default for classification, random for regression"
    )
    validation: float = Field(0.15, gt=0.0, lt=1.0)
    test: float = Field(0.15, gt=0.0, lt=1.0)
    seed: Whole = Field(42, ge=0, lt=SEED_LIMIT)
    column: str | None = Field(None, description="The group, time or split column (method group/time/column)")

    @model_validator(mode="after")
    def _check(self) -> Split:
        if self.validation + self.test >= 1.0:
            raise AtKey(
                "test", f"validation + test must leave rows to train on; received {self.validation} + {self.test}"
            )
        if self.method in ("group", "time", "column") and not self.column:
            raise AtKey("method", f"method {self.method!r} needs `column:` naming the column to split by")
        if self.column and self.method not in ("group", "time", "column"):
            raise AtKey(
                "column",
                f"column {self.column!r} is only used by the group, time and column methods; "
                f"received method {self.method or 'default'}",
            )
        return self


class Data(_Strict):
    source: Source
    validation: Source | None = Field(None, description="A separate validation set (same columns)")
    test: Source | None = Field(None, description="A separate test set (same columns)")
    split: Split = Field(default_factory=Split)
    streaming: Literal["auto", "on", "off"] = Field(
        "auto",
        description="read the source in batches and train from a cache on disk (tables larger than memory); "
        "auto: for a CSV, Parquet or SQL source of more than 1,000,000 rows (a CSV over 200 MB)",
    )
    batch_rows: Whole = Field(65_536, ge=2, le=10_000_000, description="rows per batch read when streaming")


# --- features, model, training ---------------------------------------------------------------


class Augment(_Strict):
    """Training-only augmentation of images (flip, crop, rotate) and spectrograms (masks)."""

    flip: bool = Field(True, description="image: random horizontal flips")
    crop: float = Field(0.8, gt=0.0, le=1.0, description="image: random resized crops keep at least this area; 1 = off")
    rotate: float = Field(10.0, ge=0.0, le=180.0, description="image: random rotation up to this many degrees")
    time_mask: float = Field(0.1, ge=0.0, lt=1.0, description="audio: mask up to this share of the frames")
    freq_mask: float = Field(0.15, ge=0.0, lt=1.0, description="audio: mask up to this share of the mel bands")


class FeatureSpec(_Strict):
    type: FeatureTypeName | None = None
    missing: Literal["mean", "median", "constant", "most_frequent"] | None = Field(
        None, description="How missing values are filled (numeric: median by default)"
    )
    fill_value: float | str | None = None
    scale: Literal["standard", "robust", "quantile", "none"] | None = Field(None, description="numeric scaling")
    min_frequency: Whole | None = Field(None, ge=1, description="category levels rarer than this merge into one")
    max_levels: Whole | None = Field(None, ge=2, description="keep at most this many category levels")
    # rich types: images, text, audio
    encoder: Literal["cnn", "bag", "transformer", "minilm"] | None = Field(
        None, description="text: bag | cnn | transformer | minilm (pretrained, frozen); image and audio: cnn"
    )
    width: Whole | None = Field(None, ge=4, le=4096, description="encoder width (channels or embedding size)")
    depth: Whole | None = Field(None, ge=1, le=32, description="encoder depth (residual blocks or layers)")
    augment: bool | Augment | None = Field(None, description="training-only augmentation; on by default")
    size: list[Whole] | Whole | None = Field(None, description="image: [height, width] after resizing, or one side")
    channels: Literal[1, 3] | None = Field(None, description="image: 1 (greyscale) or 3 (RGB); from the data")
    vocab_size: Whole | None = Field(None, ge=10, le=1_000_000, description="text: tokens kept by the tokenizer")
    max_tokens: Whole | None = Field(None, ge=1, le=100_000, description="text: tokens per value; longer is cut")
    sample_rate: Whole | None = Field(None, ge=1000, le=192_000, description="audio: resampled to this rate (Hz)")
    n_mels: Whole | None = Field(None, ge=8, le=512, description="audio: mel bands of the spectrogram")
    duration: float | None = Field(None, gt=0.0, le=3600.0, description="audio: seconds per clip; from the data")

    @field_validator("size")
    @classmethod
    def _size(cls, value: list[int] | int | None) -> list[int] | None:
        if value is None:
            return None
        sides = [value, value] if isinstance(value, int) else value
        if len(sides) != 2 or not all(4 <= side <= 4096 for side in sides):
            raise ValueError(f"size is [height, width] (or one side), each 4..4096; received {value!r}")
        return sides

    @model_validator(mode="after")
    def _fill_value_fits(self) -> FeatureSpec:
        if self.missing == "constant" and self.fill_value is None:
            raise AtKey("missing", "constant needs `fill_value:`, the value to fill in")
        if self.fill_value is not None and self.missing != "constant":
            raise AtKey("fill_value", "is only used with `missing: constant`; add that, or remove fill_value")
        if self.type == "numeric" and isinstance(self.fill_value, str):
            try:
                # A quoted number ("0.5") is still a number; anything else would fail at training time.
                self.fill_value = float(self.fill_value)
            except ValueError:
                raise AtKey("fill_value", f"a numeric feature needs a number; received {self.fill_value!r}") from None
        return self


FeatureOverride = Annotated[
    Annotated[Literal["ignore"], Tag("ignore")] | Annotated[FeatureSpec, Tag("spec")],
    Discriminator(lambda v: "ignore" if isinstance(v, str) else "spec"),
]
UNION_TAGS = {"path", "file", "sql", "builtin", "folder", "ignore", "spec"}


class PipelineSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Names runs and the model")
    problem: Problem
    data: Data
    features: dict[str, FeatureOverride] = Field(default_factory=dict)
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: Training = Field(default_factory=Training)
    tuning: Tuning | None = Field(None, description="hyperparameter search; absent trains once")
    budget: Duration = Field(
        None, description="wall-clock time for the whole run, e.g. 10m: training (or the search) is cut to fit"
    )
    serving: Serving = Field(default_factory=Serving, description="how `dlpipe serve` runs the model")
    registry: str | None = Field(
        None, description="the model registry folder (relative to this file); default dlpipe-registry beside runs/"
    )
    retrain: Retrain = Field(default_factory=Retrain, description="how `dlpipe retrain` judges a challenger")
    monitoring: Monitoring = Field(
        default_factory=Monitoring, description="the prediction store and how `dlpipe monitor` judges it"
    )
    tracking: Tracking | None = Field(None, description="also log runs to MLflow or TensorBoard; absent logs nowhere")

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        return apply_preset(data)

    @field_validator("features", mode="before")
    @classmethod
    def _column_names_are_text(cls, value: Any) -> Any:
        # A column named 2020 is an int key in YAML or a Python dict; the table's names are text.
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _batch_norm_needs_two_rows(self) -> PipelineSpec:
        training = self.training
        workers = training.workers or 1  # each worker's share of a batch trains on its own
        if self.model.norm == "batch" and training.batch_size != "auto" and training.batch_size < 2 * workers:
            raise AtKey(
                "training.batch_size",
                f"batch norm needs at least 2 rows per batch{' on each worker' if workers > 1 else ''}; received "
                f"{training.batch_size} for {workers} worker(s) (use a larger batch, or model.norm: layer)",
            )
        if training.backend == "ray" and self.tuning is not None:
            raise AtKey(
                "training.backend",
                "ray trains one network; a search runs its trials with `tuning.backend` (set that to ray instead)",
            )
        if training.backend == "ray" and self.budget is not None:
            # each worker would judge the clock on its own and they could stop at different epochs
            raise AtKey("budget", "is not kept by training on Ray yet; set training.epochs instead, or backend: local")
        return self

    @model_validator(mode="after")
    def _tuning_space_fits(self) -> PipelineSpec:
        if self.tuning is not None:
            check_space(self)
        return self

    def feature_spec(self, column: str) -> FeatureSpec | None:
        """The user's override for a column, with `ignore` as a FeatureSpec."""
        value = self.features.get(column)
        if value == "ignore":
            return FeatureSpec(type="ignore")
        return value

    def saved(self) -> dict[str, Any]:
        """The resolved config as a run folder and a model keep it: the secrets in its URLs redacted."""
        from dlpipe.redact import redacted

        return redacted(self.model_dump(mode="json", exclude_none=True))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.saved(), sort_keys=False)


def json_schema() -> dict:
    """The JSON Schema of pipeline.yaml, for editors."""
    schema = PipelineSpec.model_json_schema()
    schema["title"] = "dlpipe pipeline.yaml"
    return schema
