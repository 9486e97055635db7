"""Random mutations of a valid pipeline file give a spec or a named ConfigError, never a traceback."""

from __future__ import annotations

import copy

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlpipe.errors import ConfigError
from dlpipe.spec import parse_yaml, validate_spec

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
