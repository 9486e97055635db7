"""The pipeline file: named errors for unknown keys, bad types and out-of-range values."""

from __future__ import annotations

import pytest

from dlpipe.errors import ConfigError
from dlpipe.spec import json_schema, load_spec, validate_spec

BASE = {"name": "t", "problem": {"task": "classification", "target": "y"}, "data": {"source": "d.csv"}}


def with_(**sections):
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in BASE.items()}
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    return config


def error_of(config) -> str:
    with pytest.raises(ConfigError) as info:
        validate_spec(config)
    return str(info.value)


def test_typo_names_key_line_and_suggestion(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text("name: t\nproblem:\n  task: classification\n  traget: y\ndata: {source: d.csv}\n")
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    message = str(info.value)
    assert "problem.traget" in message
    assert f"{path}:4" in message
    assert "did you mean 'target'" in message


@pytest.mark.parametrize(
    ("section", "value", "key", "hint"),
    [
        ("trainng", {}, "trainng", "training"),
        ("training", {"learnig_rate": 0.1}, "training.learnig_rate", "learning_rate"),
        ("model", {"dropuot": 0.1}, "model.dropuot", "dropout"),
        ("data", {"splt": {}}, "data.splt", "split"),
        ("features", {"age": {"tpye": "numeric"}}, "features.age.tpye", "type"),
    ],
)
def test_unknown_keys_everywhere_suggest_the_closest(section, value, key, hint):
    message = error_of(with_(**{section: value}))
    assert repr(key) in message
    assert repr(hint) in message


def test_unknown_source_key_suggests():
    message = error_of(with_(data={"source": {"path": "x.csv", "hedaer": False}}))
    assert "data.source.hedaer" in message and "'header'" in message


def test_out_of_range_value_echoes_it():
    message = error_of(with_(training={"epochs": -3}))
    assert "training.epochs" in message and "-3" in message


def test_wrong_type_echoes_value():
    message = error_of(with_(training={"batch_size": "big"}))
    assert "training.batch_size" in message and "'big'" in message


def test_goal_metric_must_fit_task():
    message = error_of(with_(problem={"goal": {"r2": 0.5}}))
    assert "'r2'" in message and "classification" in message


def test_unknown_metric_suggests_the_closest():
    message = error_of(with_(problem={"metric": "rocauc"}))
    assert "'roc_auc'" in message


def test_unknown_builtin_lists_valid():
    message = error_of(with_(data={"source": {"builtin": "irs"}}))
    assert "data.source.builtin" in message and "'iris'" in message


def test_split_fractions_must_leave_training_rows():
    assert "validation + test" in error_of(with_(data={"source": "d.csv", "split": {"validation": 0.5, "test": 0.5}}))


def test_group_split_needs_column():
    assert "column" in error_of(with_(data={"source": "d.csv", "split": {"method": "group"}}))


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: t\nproblem: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert "not valid YAML" in str(info.value)


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n"])
def test_empty_or_non_mapping_file(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_spec(path)


def test_scientific_notation_without_dot_is_a_float():
    # YAML 1.1 reads `1e-3` as a string; users write it anyway
    spec = validate_spec(with_(training={"learning_rate": "1e-3"}))
    assert spec.training.learning_rate == pytest.approx(0.001)


def test_ignore_shorthand_and_feature_overrides():
    spec = validate_spec(with_(features={"id": "ignore", "age": {"type": "numeric", "scale": "robust"}}))
    assert spec.feature_spec("id").type == "ignore"
    assert spec.feature_spec("age").scale == "robust"
    assert spec.feature_spec("other") is None


def test_relative_paths_resolve_against_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "p.yaml"
    path.write_text("name: t\nproblem: {task: regression, target: y}\ndata: {source: data.csv}\n")
    assert load_spec(path).data.source == str(tmp_path / "sub" / "data.csv")


def test_json_schema_describes_the_sections():
    schema = json_schema()
    assert {"name", "problem", "data", "features", "model", "training"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False
