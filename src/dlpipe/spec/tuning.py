"""The `tuning:` section: the search method, its budget and pruner, and the space of settings to search.

A space maps dotted paths into the pipeline file to the values a trial may take:

    training.learning_rate: {log: [1e-4, 1e-2]}   # log-uniform between the bounds
    model.dropout: {float: [0.0, 0.5]}            # uniform (optional `step:`)
    model.layers: {int: [1, 4]}                   # whole numbers, bounds included (optional `step:`)
    training.batch_size: [64, 128, 256]           # a list is a choice
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

if TYPE_CHECKING:
    from dlpipe.spec.models import PipelineSpec

RANGE_KINDS = ("float", "log", "int")
TUNABLE_SECTIONS = ("model", "training", "features")
PLACEMENT = ("training.backend", "training.workers", "training.address", "training.storage")  # trials train locally


@dataclass(frozen=True)
class Dimension:
    """One searched setting: a range (`float`, `log`, `int`) or a list of choices (`choice`)."""

    kind: Literal["float", "log", "int", "choice"]
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] = ()

    @property
    def values(self) -> list[Any]:
        """The values that bound this dimension: each choice, or the two ends of a range."""
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]

    def as_written(self) -> Any:
        """The form a user writes (and the resolved file keeps)."""
        if self.kind == "choice":
            return list(self.choices)
        written: dict[str, Any] = {self.kind: [self.low, self.high]}
        if self.step is not None:
            written["step"] = self.step
        return written


# YAML 1.1 (PyYAML) reads 1e-4 as text: it wants 1.0e-4. A user writing 1e-4 means the number.
_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()) else value


def _dimension(value: Any) -> Dimension:
    if isinstance(value, Dimension):
        return value
    if isinstance(value, list):
        value = [_number(v) for v in value]
        if not value:
            raise ValueError("an empty list of choices; list at least one value")
        if not all(v is None or isinstance(v, str | int | float | bool) for v in value):
            raise ValueError(f"choices are plain values (numbers, text, true/false); received {value!r}")
        if len({repr(v) for v in value}) != len(value):
            raise ValueError(f"a value is listed twice in {value!r}")
        return Dimension("choice", choices=tuple(value))
    if not isinstance(value, dict):
        raise ValueError(
            f"write a list of choices or one of {{float: [low, high]}}, {{log: [low, high]}}, {{int: [low, high]}}; "
            f"received {value!r}"
        )
    kinds = [k for k in value if k in RANGE_KINDS]
    unknown = [k for k in value if k not in (*RANGE_KINDS, "step")]
    if unknown or len(kinds) != 1:
        raise ValueError(
            f"a range has exactly one of float, log, int (and optionally step); received keys {list(value)}"
        )
    kind = kinds[0]
    bounds = value[kind]
    if isinstance(bounds, list):
        bounds = [_number(b) for b in bounds]
    numeric = (int,) if kind == "int" else (int, float)
    if (
        not isinstance(bounds, list)
        or len(bounds) != 2
        or not all(isinstance(b, numeric) and not isinstance(b, bool) for b in bounds)
    ):
        what = "whole numbers" if kind == "int" else "numbers"
        raise ValueError(f"{kind} takes [low, high], two {what}; received {bounds!r}")
    low, high = bounds
    if not all(math.isfinite(b) for b in bounds):
        raise ValueError(f"bounds must be finite; received {bounds!r}")
    if low > high:
        raise ValueError(f"low {low} is above high {high}; write [low, high]")
    if kind == "log" and low <= 0:
        raise ValueError(f"a log range needs low > 0; received {low}")
    step = _number(value.get("step"))
    if step is not None:
        if kind == "log":
            raise ValueError("a log range takes no step; use float with step, or a list of choices")
        if isinstance(step, bool) or not isinstance(step, numeric) or step <= 0:
            raise ValueError(f"step must be a positive {'whole ' if kind == 'int' else ''}number; received {step!r}")
    return Dimension(kind, low=low, high=high, step=step)


def _range_schema(kind: str, number: str) -> dict[str, Any]:
    bounds = {"type": "array", "items": {"type": number}, "minItems": 2, "maxItems": 2}
    properties: dict[str, Any] = {kind: bounds}
    if kind != "log":
        properties["step"] = {"type": number, "exclusiveMinimum": 0}
    return {"type": "object", "properties": properties, "required": [kind], "additionalProperties": False}


# what a user writes, for editors (the validated value is a Dimension)
_SPACE_SCHEMA = {
    "anyOf": [
        {"type": "array", "minItems": 1, "description": "a choice between these values"},
        _range_schema("float", "number"),
        _range_schema("log", "number"),
        _range_schema("int", "integer"),
    ]
}
SpaceDimension = Annotated[
    Dimension,
    BeforeValidator(_dimension),
    PlainSerializer(lambda d: d.as_written()),
    WithJsonSchema(_SPACE_SCHEMA),
]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float | None:
    """Seconds from a number of seconds or text such as `90s`, `30m`, `1h30m`, `2d`."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"a duration is a number of seconds or text such as 30m or 1h30m; received {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"a duration is a number of seconds or text such as 30m or 1h30m; received {value!r}")
        seconds = sum(float(n) * _UNIT[u] for n, u in parts)
    else:
        raise ValueError(f"a duration is a number of seconds or text such as 30m or 1h30m; received {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a duration must be positive; received {value!r}")
    return seconds


Duration = Annotated[float | None, BeforeValidator(parse_duration)]


class Tuning(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    method: Literal["grid", "random", "tpe", "cmaes"] = Field(
        "tpe", description="grid (lists only), random, tpe (model-based, the default) or cmaes (numeric ranges)"
    )
    trials: int | None = Field(
        None, ge=1, le=100_000, strict=True, description="trials to run; grid: the whole grid when absent, others 20"
    )
    timeout: Duration = Field(None, description="stop starting trials after this long, e.g. 30m or 2h")
    pruner: Literal["none", "median", "percentile", "asha", "hyperband"] = Field(
        "median",
        description="stop trials that trail the others at the same epoch; percentile cuts only the worst quarter",
    )
    parallel: int = Field(1, ge=1, le=1024, strict=True, description="trials run at once (one process each)")
    refit: bool = Field(False, description="retrain the best setting on train + validation before testing")
    seed: int = Field(42, ge=0, lt=2**32, strict=True, description="seed of the search itself")
    space: dict[str, SpaceDimension] = Field(description="dotted paths into this file, each a range or a list")
    backend: Literal["optuna", "ray"] = Field("optuna", description="optuna on this machine, or ray (Ray Tune)")
    address: str | None = Field(
        None, description="ray: `auto` (a running cluster) or ray://host:port; absent starts a local Ray"
    )
    storage: str | None = Field(None, description="ray: where trials are kept; a path or URI every node can reach")

    @model_validator(mode="after")
    def _check(self) -> Tuning:
        from dlpipe.spec.models import AtKey

        if not self.space:
            raise AtKey("space", "lists no settings to search; add e.g. training.learning_rate: {log: [1e-4, 1e-2]}")
        if self.method == "grid":
            for path, dim in self.space.items():
                if dim.kind != "choice":
                    raise AtKey(("space", path), f"grid search takes lists of values only; received a {dim.kind} range")
        check_ray_keys(self, ("address", "storage"))
        if self.pruner == "percentile" and self.backend == "ray":
            raise AtKey("pruner", "percentile runs on the optuna backend only; on ray use median, asha or hyperband")
        return self

    @property
    def total_trials(self) -> int:
        """Trials to run: `trials`, else 20; a grid's points at most (each runs once)."""
        if self.method == "grid":
            points = math.prod(len(d.choices) for d in self.space.values())
            return min(points, self.trials or points)
        return self.trials or 20


def check_ray_keys(section: Any, keys: tuple[str, ...]) -> None:
    """A section's Ray-only keys (`tuning:` and `training:` alike) are set only with `backend: ray`,
    and its `address` is one Ray takes."""
    from dlpipe.spec.models import AtKey

    for key in keys:
        if getattr(section, key) is not None and section.backend != "ray":
            raise AtKey(key, f"is only used with `backend: ray`; received backend {section.backend}")
    address = section.address
    if address is not None and address != "auto" and not address.startswith("ray://"):
        raise AtKey("address", f"is `auto` or ray://host:port; received {address!r}")


def tuning_of(spec: PipelineSpec) -> Tuning:
    """The pipeline's tuning section; a ConfigError when there is none to search."""
    if spec.tuning is None:
        from dlpipe.errors import ConfigError

        raise ConfigError("the pipeline has no tuning section", fix="add tuning: with a space to search")
    return spec.tuning


def check_space(spec: PipelineSpec) -> None:
    """Each path names a real setting, and each bound or choice is a value that setting accepts."""
    from dlpipe.spec.models import AtKey, FeatureSpec, ModelSpec, PipelineSpec, Training

    sections = {"model": ModelSpec, "training": Training}
    known = [f"{s}.{f}" for s, m in sections.items() for f in m.model_fields]
    base = spec.model_dump(mode="json", exclude_none=True, exclude={"tuning"})
    for path, dim in tuning_of(spec).space.items():
        where = ("tuning", "space", path)
        parts = path.split(".")
        valid = (len(parts) == 2 and parts[0] in sections and parts[1] in sections[parts[0]].model_fields) or (
            len(parts) == 3 and parts[0] == "features" and parts[2] in FeatureSpec.model_fields
        )
        if not valid:
            close = difflib.get_close_matches(path, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise AtKey(
                where,
                f"unknown setting {path!r}{hint} (tune model.<key>, training.<key> or features.<column>.<key>)",
            )
        if path in PLACEMENT:
            raise AtKey(where, f"{path} says where training runs, not how; it is not a setting to search")
        if path == "model.preset":
            raise AtKey(where, "a preset is a bundle of settings; search the settings themselves, e.g. model.ensemble")
        if parts[0] == "features" and base.get("features", {}).get(parts[1]) == "ignore":
            raise AtKey(where, f"column {parts[1]!r} is set to ignore; it has no settings to tune")
        for value in dim.values:
            raw = apply_params(base, {path: value})
            try:
                PipelineSpec.model_validate(raw)
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                message = first["msg"].removeprefix("Value error, ")
                raise AtKey(where, f"{value!r} is not a valid {path}: {message}") from None


def apply_params(raw: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of a pipeline dict with each dotted path set (a column's override is created if absent)."""
    import copy

    out = copy.deepcopy(raw)
    for path, value in params.items():
        parts = path.split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):  # absent, or a column set to `ignore`
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return out
