"""Reading `pipeline.yaml`: YAML with the line of every key, and pydantic's errors turned into
`ConfigError`s that name the key, its line, the value received and the closest valid key."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)

from dlpipe.errors import ConfigError
from dlpipe.spec.models import (
    UNION_TAGS,
    AtKey,
    Data,
    FeatureSpec,
    FileSource,
    FolderSource,
    PipelineSpec,
    SqlSource,
)

# --- loading ---------------------------------------------------------------------------------


def load_spec(path: str | Path) -> PipelineSpec:
    """Read and validate a pipeline file; every problem is a ConfigError naming key and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("pipeline file not found", where=str(path), fix="pass the path of your pipeline.yaml")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the pipeline file: {exc}", where=str(path)) from None
    raw, lines = parse_yaml(text, str(path))
    spec = validate_spec(raw, source=str(path), lines=lines)
    return _resolve_paths(spec, path.parent)


class _KeysAsWritten(yaml.SafeLoader):
    """SafeLoader that keeps every mapping key as the text written.

    Every key of a pipeline file is a name; a column called 2020, yes, null or 007 must keep that
    name rather than become an int, a bool, None or 7.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        self.flatten_mapping(node)  # resolve `<<:` merge keys as SafeLoader does
        mapping = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a name, not a list or mapping", key_node.start_mark
                )
            mapping[key_node.value] = self.construct_object(value_node, deep=deep)
        return mapping


def parse_yaml(text: str, source: str) -> tuple[dict, dict[tuple, int]]:
    """YAML to a dict, plus the 1-based line of every key path (for error messages).

    Refuses a key written twice in one mapping: YAML would silently keep the last.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        _check_aliases(node, source)  # before anything walks the tree an alias bomb would expand
        raw = yaml.load(text, Loader=_KeysAsWritten)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"not valid YAML: {getattr(exc, 'problem', exc)}", where=where) from None
    except RecursionError:  # PyYAML composes nested values recursively: [[[[... a thousand deep
        raise ConfigError("values nested too deeply", where=source, fix="a pipeline file nests a few levels") from None
    if raw is None:
        raise ConfigError("the pipeline file is empty", where=source, fix="it needs at least name, problem and data")
    if not isinstance(raw, dict):
        raise ConfigError(f"the pipeline file must be a mapping of keys, got {type(raw).__name__}", where=source)
    lines: dict[tuple, int] = {}

    def walk(n: yaml.Node, loc: tuple) -> None:
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = (*loc, k.value)
                line = k.start_mark.line + 1
                if key in lines and k.tag != "tag:yaml.org,2002:merge":
                    raise ConfigError(
                        f"duplicate key {'.'.join(key)!r} (first on line {lines[key]})",
                        where=f"{source}:{line}",
                        fix="keep one of them",
                    )
                lines[key] = line
                walk(v, key)
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                lines[(*loc, str(i))] = v.start_mark.line + 1
                walk(v, (*loc, str(i)))

    walk(node, ())
    return raw, lines


MAX_VALUES = 100_000  # a pipeline file holds hundreds; aliases of aliases can expand to billions


def _check_aliases(root: yaml.Node | None, source: str) -> None:
    """Refuse an alias that contains itself and a document whose aliases expand beyond MAX_VALUES
    values ("billion laughs"), counting each shared node once: linear in the file's size."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(n: yaml.Node) -> int:
        if id(n) in sizes:
            return sizes[id(n)]
        if id(n) in open_nodes:
            where = f"{source}:{n.start_mark.line + 1}"
            raise ConfigError("an alias refers to the value that contains it", where=where)
        open_nodes.add(id(n))
        children = [c for pair in n.value for c in pair] if isinstance(n, yaml.MappingNode) else n.value
        total = 1 + (sum(size(c) for c in children) if isinstance(n, yaml.CollectionNode) else 0)
        open_nodes.discard(id(n))
        if total > MAX_VALUES:
            raise ConfigError(
                f"the file expands to more than {MAX_VALUES:,} values through its aliases",
                where=f"{source}:{n.start_mark.line + 1}",
                fix="write the values out, or use fewer nested aliases",
            )
        sizes[id(n)] = total
        return total

    if root is not None:
        size(root)


def validate_spec(raw: dict, *, source: str = "pipeline", lines: dict[tuple, int] | None = None) -> PipelineSpec:
    """Validate a dict against the schema, raising one ConfigError for the first problem found."""
    try:
        return PipelineSpec.model_validate(raw)
    except ValidationError as exc:
        errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
        raise _config_error(errors[0], source, lines or {}) from None


def _config_error(err: dict, source: str, lines: dict[tuple, int]) -> ConfigError:
    kind = err["type"]
    loc = _real_keys(tuple(str(p) for p in err["loc"]), keep_last=kind == "extra_forbidden")
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, AtKey):
        loc = (*loc, *cause.key)
    dotted = ".".join(loc) or "(top level)"
    line = _nearest_line(loc, lines)
    where = f"{source}:{line}" if line else source
    if kind == "extra_forbidden":
        valid = _valid_keys(loc[:-1])
        close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else f"valid keys here: {', '.join(valid)}"
        return ConfigError(f"unknown key {dotted!r}", where=where, fix=hint)
    if kind == "missing":
        return ConfigError(f"missing required key {dotted!r}", where=where)
    message = err["msg"].removeprefix("Value error, ")
    if kind in ("value_error", "assertion_error"):
        return ConfigError(f"{dotted}: {message}", where=where)
    received = err.get("input")
    if kind == "source" and isinstance(received, dict):  # a mapping naming no kind: a typo of one?
        for key in received:
            close = difflib.get_close_matches(str(key), _SOURCE_KINDS, n=1, cutoff=0.5)
            if close:
                return ConfigError(f"unknown key '{dotted}.{key}'", where=where, fix=f"did you mean {close[0]!r}?")
    shown = repr(received) if not isinstance(received, dict | list) else type(received).__name__
    return ConfigError(f"{dotted}: {message}; received {dotted.split('.')[-1]}={shown}", where=where)


# What pydantic inserts into an error's location after a union or dict field: the branch tried
# ('str', 'int', "literal['auto']", 'function-after[...]', a model's class name such as 'Augment' in
# `bool | Augment`) or '[key]' for a dict key. No key of the schema starts with a capital.
_TYPE_NAMES = {"str", "int", "float", "bool", "none", "bytes", "[key]"}
_TYPE_NAME = re.compile(r"constrained-[a-z]+|[a-z][a-z-]*\[.*\]|[A-Z][A-Za-z]*", re.DOTALL)
_USER_KEYS = {("features",), ("problem", "goal")}  # mappings whose keys are the user's names


def _real_keys(loc: tuple[str, ...], *, keep_last: bool = False) -> tuple[str, ...]:
    """The location as the user wrote it: without the union tags and type names pydantic inserts.

    A user's own name (a column under features, a metric under goal, an unknown key) is kept even
    when it reads like a type name.
    """
    out: list[str] = []
    for i, part in enumerate(loc):
        parent = loc[i - 1] if i else ""
        grand = loc[i - 2] if i > 1 else ""
        if tuple(out) in _USER_KEYS or (keep_last and i == len(loc) - 1):
            out.append(part)
            continue
        if part in UNION_TAGS and (parent in ("source", "validation", "test") or grand == "features"):
            continue
        if part in _TYPE_NAMES or _TYPE_NAME.fullmatch(part):
            continue
        out.append(part)
    return tuple(out)


def _nearest_line(loc: tuple, lines: dict[tuple, int]) -> int | None:
    for i in range(len(loc), 0, -1):
        if loc[:i] in lines:
            return lines[loc[:i]]
    return None


_SOURCE_KINDS = ["path", "sql", "builtin", "images", "audio", "text"]  # the key that says which source
_SOURCE_KEYS = ["path", "format", "header", "delimiter", "encoding", "sql", "url", "builtin"]


def _valid_keys(loc: tuple) -> list[str]:
    """The keys allowed at `loc`, found by walking the models from the top."""
    model: type[BaseModel] | None = PipelineSpec
    i = 0
    while i < len(loc) and model is not None:
        part = loc[i]
        if model is Data and part in ("source", "validation", "test"):
            return _SOURCE_KEYS
        field = model.model_fields.get(part)
        if field is None:
            return []
        if model is PipelineSpec and part == "features":
            model, i = FeatureSpec, i + 2  # features.<column>.<key>
            continue
        args = getattr(field.annotation, "__args__", (field.annotation,))
        model = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
        i += 1
    return list(model.model_fields) if model is not None else []


def _resolve_paths(spec: PipelineSpec, base: Path) -> PipelineSpec:
    """Relative data paths are relative to the pipeline file, as a user reading it expects."""

    def fix(src: Any) -> Any:
        if isinstance(src, str):
            return src if Path(src).is_absolute() else str((base / src).resolve())
        if isinstance(src, FileSource):
            return src.model_copy(update={"path": fix(src.path)})
        if isinstance(src, FolderSource):
            return src.model_copy(update={src.kind: fix(src.path)})
        if isinstance(src, SqlSource) and src.url.startswith("sqlite:///"):
            return src.model_copy(update={"url": _local_uri(src.url, base)})
        return src

    data = spec.data.model_copy(
        update={"source": fix(spec.data.source), "validation": fix(spec.data.validation), "test": fix(spec.data.test)}
    )
    update: dict[str, Any] = {"data": data}
    if spec.registry is not None:
        update["registry"] = fix(spec.registry)
    if spec.tracking is not None:
        update["tracking"] = spec.tracking.model_copy(
            update={
                "mlflow": _local_uri(spec.tracking.mlflow, base),
                "tensorboard": _local_uri(spec.tracking.tensorboard, base),
            }
        )
    return spec.model_copy(update=update)


def _local_uri(uri: str | None, base: Path) -> str | None:
    """A relative folder or SQLite file is relative to the pipeline file; any other URI (a server,
    `${VAR}`, an absolute path) stays as written."""
    if uri is None or "${" in uri:
        return uri
    if uri.startswith("sqlite:///"):
        rel = uri.removeprefix("sqlite:///")
        absolute = not rel or rel == ":memory:" or rel.startswith("/")
        return uri if absolute else f"sqlite:///{(base / rel).resolve()}"
    if "://" in uri or Path(uri).is_absolute():
        return uri
    return str((base / uri).resolve())
