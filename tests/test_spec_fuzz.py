"""Random YAML documents and mutations of valid pipeline files give a spec or a named ConfigError,
never a traceback: through the loader, and for a handful of files through `dlpipe validate`."""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import dlpipe
from dlpipe.errors import ConfigError
from dlpipe.spec import load_spec, parse_yaml, validate_spec
from dlpipe.spec.loading import _valid_keys

VALID = {
    "name": "churn",
    "problem": {"task": "classification", "target": "y", "metric": "roc_auc", "goal": {"roc_auc": 0.8}},
    "data": {"source": {"path": "d.csv", "header": True}, "split": {"method": "stratified", "seed": 1}},
    "features": {"id": "ignore", "age": {"type": "numeric", "scale": "robust"}},
    "model": {"layers": 2, "hidden": 64, "dropout": 0.2},
    "training": {"epochs": 5, "batch_size": "auto", "learning_rate": 0.001},
}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from paths(value, (*prefix, key))


@st.composite
def mutated(draw):
    config = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        options = [p for p in paths(config) if p]
        if not options:
            break
        path = draw(st.sampled_from(options))
        parent = config
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "rename", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "delete":
            del parent[path[-1]]
        elif action == "rename":
            parent[path[-1] + draw(st.text(min_size=1, max_size=2))] = parent.pop(path[-1])
        else:
            parent[draw(st.text(max_size=8))] = draw(values)
    return config


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutations_give_a_spec_or_a_config_error(config):
    try:
        validate_spec(config)
    except ConfigError as exc:
        assert str(exc)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(max_size=200))
def test_any_text_as_a_pipeline_file_gives_a_config_error_or_a_spec(text):
    try:
        raw, lines = parse_yaml(text, "fuzz.yaml")
        validate_spec(raw, source="fuzz.yaml", lines=lines)
    except ConfigError as exc:
        assert str(exc)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(mutated())
def test_mutations_survive_a_yaml_round_trip(config):
    text = yaml.safe_dump(config)
    try:
        raw, lines = parse_yaml(text, "fuzz.yaml")
        validate_spec(raw, source="fuzz.yaml", lines=lines)
    except ConfigError as exc:
        assert "fuzz.yaml" in str(exc)


# --- random YAML documents: odd scalars, anchors and aliases, tags, tabs, duplicate keys ---------

KEYS = ["name", "problem", "task", "target", "data", "source", "split", "features", "model", "training", "x", "ä"]
ODD = [
    "2020-01-01", "2001-12-14t21:59:43.10-05:00", "123456789012345678901234567890", "-0x1F", "0o17", ".nan",
    "-.inf", "~", "yes", "NO", "1e400", '"\\0\\x00"', "'it''s'", "!!binary aGVsbG8=", "!!set {a, b}", "!!str 12",
    "!!float abc", "!!python/object/apply:os.system [echo]", "!!python/name:os.system", "!custom 1", "@", "`",
]  # fmt: skip


@st.composite
def yaml_documents(draw) -> str:
    """A flow-style document with anchors on some values and aliases to earlier ones."""
    anchors: list[str] = []

    def value(depth: int) -> str:
        kind = draw(st.sampled_from(["odd", "text", "alias", "list", "map"] if depth < 4 else ["odd", "text"]))
        if kind == "alias" and anchors:
            return "*" + draw(st.sampled_from(anchors))
        if kind == "list":
            text = "[" + ", ".join(value(depth + 1) for _ in range(draw(st.integers(0, 3)))) + "]"
        elif kind == "map":
            keys = draw(st.lists(st.sampled_from(KEYS), max_size=3))  # repeats: duplicate keys
            text = "{" + ", ".join(f"{k}: {value(depth + 1)}" for k in keys) + "}"
        elif kind == "odd":
            return draw(st.sampled_from(ODD))
        else:
            return draw(st.text(st.characters(codec="utf-8", exclude_characters="\r"), max_size=6)) or "''"
        if draw(st.booleans()):
            anchors.append(f"a{len(anchors)}")
            text = f"&{anchors[-1]} {text}"
        return text

    lines = [f"{draw(st.sampled_from(KEYS))}:{draw(st.sampled_from([' ', chr(9), '  ']))}{value(0)}" for _ in range(4)]
    return "\n".join(lines)


def billion_laughs(levels: int = 9) -> str:
    lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(["name: bomb", *lines])


def load_bytes(data: bytes, folder) -> None:
    path = folder / "pipeline.yaml"
    path.write_bytes(data)
    try:
        load_spec(path)
    except ConfigError as exc:
        assert str(exc).startswith(str(path))


@settings(max_examples=400)
@given(yaml_documents(), st.sampled_from(["utf-8", "cp1252", "utf-16", "garbage"]))
def test_random_yaml_documents_give_a_config_error_or_a_spec(text, encoding):
    with tempfile.TemporaryDirectory() as folder:
        if encoding == "garbage":  # bytes that are no UTF-8 in the middle of the file
            data = text.encode() + b"\n\xff\xfe\x00\x81: \xc3\x28"
        else:
            data = text.encode(encoding, errors="replace")
        load_bytes(data, Path(folder))


def test_an_alias_bomb_is_refused_quickly_without_expanding(tmp_path):
    started = time.perf_counter()
    for levels in (6, 9, 30):  # 9**9 = 387 million values; 9**30 would not fit any memory
        with pytest.raises(ConfigError, match="expands to more than 100,000 values"):
            parse_yaml(billion_laughs(levels), "bomb.yaml")
    assert time.perf_counter() - started < 1.0  # measured 0.012 s
    with pytest.raises(ConfigError, match="refers to the value that contains it"):
        parse_yaml("name: x\nmodel: &m {hidden: *m}", "loop.yaml")
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse_yaml("name: x\nmodel: " + "[" * 1500 + "]" * 1500, "deep.yaml")


# --- mutations of the shipped examples: each gives the ConfigError its mutation calls for --------

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*/pipeline.yaml"))
USER_NAMED = {("features",), ("problem", "goal"), ("tuning", "space")}  # keys there are the user's names


def typo(key: str, draw) -> str:
    i = draw(st.integers(0, len(key) - 1))
    kind = draw(st.sampled_from(["swap", "drop", "double"] if len(key) > 3 else ["double"]))
    if kind == "swap" and i < len(key) - 1 and key[i] != key[i + 1]:
        return key[:i] + key[i + 1] + key[i] + key[i + 2 :]
    if kind == "drop":
        return key[:i] + key[i + 1 :]
    return key[:i] + key[i] + key[i:]


@st.composite
def example_mutations(draw):
    path = draw(st.sampled_from(EXAMPLES))
    config = yaml.safe_load(path.read_text())
    where = draw(st.sampled_from([p for p in paths(config) if p]))
    parent = config
    for key in where[:-1]:
        parent = parent[key]
    action = draw(st.sampled_from(["drop", "typo", "wrong type", "unknown key"]))
    if action == "drop":
        del parent[where[-1]]
    elif action == "typo":
        parent[typo(where[-1], draw)] = parent.pop(where[-1])
    elif action == "wrong type":
        old = parent[where[-1]]
        parent[where[-1]] = draw(st.sampled_from([[old], {"x": old}, "not a number" if old != "x" else 7, -1]))
    else:
        target = parent[where[-1]] if isinstance(parent[where[-1]], dict) else parent
        where = where if target is not parent else where[:-1]
        target["fuzz_key"] = draw(values)
    return path.parent.name, config, action, where


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(example_mutations())
def test_mutated_examples_give_the_named_config_error(mutation):
    example, config, action, where = mutation
    raw, lines = parse_yaml(yaml.safe_dump(config, sort_keys=False), f"{example}.yaml")
    try:
        validate_spec(raw, source=f"{example}.yaml", lines=lines)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(f"{example}.yaml")
        if action == "typo" and where[-1] in _valid_keys(where[:-1]) and where[:-1] not in USER_NAMED:
            assert f"did you mean {where[-1]!r}?" in message or "missing required key" in message, message
        if action == "unknown key" and where not in USER_NAMED and where[:1] != ("features",):
            assert f"unknown key {'.'.join([*where, 'fuzz_key'])!r}" in message, message
    else:
        assert action not in ("unknown key", "typo") or where[:1] == ("features",) or where[:-1] in USER_NAMED


CLI_CASES = {
    "bomb": billion_laughs().encode(),
    "python tag": b"name: x\nproblem: !!python/object/apply:os.system ['touch pwned']\n",
    "typo": b"name: x\nproblem: {task: classification, traget: y}\ndata: {source: d.csv}\n",
    "not UTF-8": b"name: caf\xe9\nproblem: {task: classification, target: y}\n",
    "tab": b"name: x\nproblem:\n\ttask: classification\n",
    "duplicate key": b"name: x\nname: y\n",
}


@pytest.mark.parametrize("case", CLI_CASES)
def test_dlpipe_validate_names_the_config_error_and_exits_2(case, tmp_path):
    (tmp_path / "pipeline.yaml").write_bytes(CLI_CASES[case])
    done = dlpipe("validate", "pipeline.yaml", cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "pipeline.yaml" in done.stderr
    assert not (tmp_path / "pwned").exists()
    if case == "typo":
        assert "unknown key 'problem.traget'" in done.stderr and "did you mean 'target'?" in done.stderr
