"""The `tuning:` section: every mistake is a config error naming the key; a valid one round-trips."""

from __future__ import annotations

import pytest

from dlpipe.errors import ConfigError
from dlpipe.spec import load_spec, parse_duration, validate_spec

HEAD = """name: wine
problem: {task: classification, target: target}
data: {source: {builtin: wine}}
"""


def load(tmp_path, tuning: str):
    path = tmp_path / "pipeline.yaml"
    path.write_text(HEAD + "tuning:\n" + tuning)
    return load_spec(path)


def test_the_documented_space_reads_as_written(tmp_path):
    spec = load(
        tmp_path,
        """  method: tpe
  trials: 30
  timeout: 30m
  space:
    training.learning_rate: {log: [1e-4, 1e-2]}
    model.dropout: {float: [0.0, 0.5]}
    model.layers: {int: [1, 4]}
    training.batch_size: [64, 128, 256]
""",
    )
    space = spec.tuning.space
    assert (space["training.learning_rate"].kind, space["training.learning_rate"].low) == ("log", 1e-4)
    assert space["model.layers"].kind == "int" and space["training.batch_size"].choices == (64, 128, 256)
    assert spec.tuning.timeout == 1800 and spec.tuning.total_trials == 30
    # the resolved file is read back to the same search
    assert validate_spec(__import__("yaml").safe_load(spec.to_yaml())).tuning == spec.tuning


@pytest.mark.parametrize(
    ("space", "line", "message"),
    [
        ("training.learning_rat: {log: [1e-4, 1e-2]}", 6, "did you mean 'training.learning_rate'"),
        ("data.split.seed: [1, 2]", 6, "unknown setting 'data.split.seed'"),
        ("model.dropout: {float: [0.5, 0.1]}", 6, "low 0.5 is above high 0.1"),
        ("model.dropout: {float: [0.0, 1.5]}", 6, "1.5 is not a valid model.dropout"),
        ("model.layers: {int: [1, 4.5]}", 6, "two whole numbers"),
        ("training.learning_rate: {log: [0, 1e-2]}", 6, "log range needs low > 0"),
        ("model.norm: [batch, group]", 6, "'group' is not a valid model.norm"),
        ("model.dropout: {uniform: [0, 1]}", 6, "exactly one of float, log, int"),
        ("model.hidden: []", 6, "empty list"),
        ("features.alcohol.scale: [standard, robus]", 6, "'robus' is not a valid features.alcohol.scale"),
    ],
)
def test_a_bad_dimension_names_its_path_and_line(tmp_path, space, line, message):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"  space:\n    {space}\n")
    text = str(caught.value)
    assert f"pipeline.yaml:{line}:" in text and "tuning.space." + space.split(":")[0] in text
    assert message in text


def test_grid_search_takes_lists_only(tmp_path):
    with pytest.raises(ConfigError, match=r"tuning.space.model.dropout: grid search takes lists of values only"):
        load(tmp_path, "  method: grid\n  space:\n    model.dropout: {float: [0.1, 0.5]}\n")


def test_grid_runs_the_whole_grid_unless_told(tmp_path):
    spec = load(tmp_path, "  method: grid\n  space:\n    model.hidden: [32, 64]\n    model.layers: [1, 2, 3]\n")
    assert spec.tuning.total_trials == 6


def test_an_ignored_column_has_nothing_to_tune(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(HEAD + "features: {alcohol: ignore}\ntuning:\n  space:\n    features.alcohol.scale: [robust]\n")
    with pytest.raises(ConfigError, match="column 'alcohol' is set to ignore"):
        load_spec(path)


@pytest.mark.parametrize(
    ("tuning", "message"),
    [
        ("  metod: tpe\n  space: {model.hidden: [32]}\n", "did you mean 'method'"),
        ("  pruner: median_stop\n  space: {model.hidden: [32]}\n", "tuning.pruner"),
        ("  space: {}\n", "lists no settings to search"),
        ("  address: auto\n  space: {model.hidden: [32]}\n", "only used with `backend: ray`"),
        ("  backend: ray\n  address: localhost:6379\n  space: {model.hidden: [32]}\n", "ray://host:port"),
        ("  timeout: soon\n  space: {model.hidden: [32]}\n", "a duration is a number of seconds"),
        ("  trials: 0\n  space: {model.hidden: [32]}\n", "tuning.trials"),
        ("  backend: ray\n  pruner: percentile\n  space: {model.hidden: [32]}\n", "optuna backend only"),
    ],
)
def test_section_mistakes_name_the_key(tmp_path, tuning, message):
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, tuning)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("1h30m", 5400), ("2d", 172800), (45, 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "10x", "-5m", 0, True, "1h 30"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_the_json_schema_accepts_a_space_as_users_write_it():
    import jsonschema
    import yaml

    from conftest import EXAMPLES
    from dlpipe.spec import json_schema

    schema = json_schema()
    example = yaml.safe_load((EXAMPLES / "wine" / "tune.yaml").read_text())
    jsonschema.validate(example, schema)
    example["tuning"]["space"]["model.dropout"] = {"float": [0.0, 0.5], "log": [1, 2]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(example, schema)
