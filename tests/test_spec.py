"""The pipeline file: named errors for unknown keys, bad types and out-of-range values."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlpipe.errors import ConfigError
from dlpipe.spec import PipelineSpec, json_schema, load_spec, validate_spec

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
    assert "training.batch_size:" in message and "'big'" in message
    assert "batch_size.int" not in message  # pydantic's union branch is not a key the user wrote


def load_text(tmp_path: Path, text: str) -> tuple[PipelineSpec, Path]:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    return load_spec(path), path


def load_error(tmp_path: Path, text: str) -> tuple[str, Path]:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    return str(info.value), path


@pytest.mark.parametrize("word", ["yes", "true", "on", "no"])
def test_target_read_as_a_boolean_asks_for_quotes(tmp_path, word):
    message, path = load_error(
        tmp_path, f"name: t\nproblem:\n  task: classification\n  target: {word}\ndata: {{source: d.csv}}\n"
    )
    assert f"{path}:4" in message and "problem.target:" in message
    assert 'target: "yes"' in message  # tells how to quote


def test_target_position_and_quoted_names_still_load(tmp_path):
    spec, _ = load_text(tmp_path, "name: t\nproblem: {task: regression, target: 3}\ndata: {source: d.csv}\n")
    assert spec.problem.target == 3
    spec, _ = load_text(tmp_path, 'name: t\nproblem: {task: regression, target: "yes"}\ndata: {source: d.csv}\n')
    assert spec.problem.target == "yes"


def test_target_of_a_wrong_type_names_the_key_without_type_names():
    message = error_of(with_(problem={"target": 1.5}))
    assert "problem.target:" in message and "target.str" not in message and "target.int" not in message


def test_feature_keys_yaml_reads_as_other_types_keep_their_text(tmp_path):
    features = "  2020: ignore\n  yes: ignore\n  007: ignore\n  null: {type: numeric}\n"
    spec, _ = load_text(
        tmp_path, f"name: t\nproblem: {{task: regression, target: y}}\ndata: {{source: d.csv}}\nfeatures:\n{features}"
    )
    assert set(spec.features) == {"2020", "yes", "007", "null"}
    assert spec.feature_spec("2020").type == "ignore"


def test_int_feature_keys_from_python_become_text():
    assert validate_spec(with_(features={2020: "ignore"})).feature_spec("2020").type == "ignore"


def test_feature_named_like_a_type_keeps_its_name():
    assert "'features.str.tpye'" in error_of(with_(features={"str": {"tpye": "numeric"}}))
    message = error_of(with_(features={"int": {"scale": "big"}}))
    assert "features.int.scale:" in message


def test_cross_field_error_names_the_key_and_its_line(tmp_path):
    text = "name: t\nproblem: {task: classification, target: y}\ndata: {source: d.csv}\ntraining:\n  batch_size: 1\n"
    message, path = load_error(tmp_path, text)
    assert f"{path}:5" in message and "training.batch_size: batch norm" in message
    assert "top level" not in message


def test_metric_that_does_not_fit_reads_once(tmp_path):
    text = "name: t\nproblem:\n  task: classification\n  target: y\n  metric: rmse\ndata: {source: d.csv}\n"
    message, path = load_error(tmp_path, text)
    assert f"{path}:5: problem.metric: metric 'rmse' does not fit task 'classification'; use one of" in message
    assert "problem: metric" not in message


def test_goal_metric_names_its_key():
    assert "problem.goal.r2: metric 'r2' does not fit" in error_of(with_(problem={"goal": {"r2": 0.5}}))


@pytest.mark.parametrize(
    ("text", "key", "line", "first"),
    [
        (
            "name: t\ndata: {source: a.csv}\nproblem: {task: regression, target: y}\ndata: {source: b.csv}\n",
            "data",
            4,
            2,
        ),
        (
            "name: t\nproblem:\n  task: regression\n  target: y\n  target: z\ndata: {source: a.csv}\n",
            "problem.target",
            5,
            4,
        ),
        (
            "name: t\nproblem: {task: regression, target: y}\ndata: {source: a.csv}\nfeatures: {a: ignore, a: 1}\n",
            "features.a",
            4,
            4,
        ),
    ],
)
def test_duplicate_keys_are_refused(tmp_path, text, key, line, first):
    message, path = load_error(tmp_path, text)
    assert f"{path}:{line}: duplicate key {key!r} (first on line {first})" in message


@pytest.mark.parametrize("delimiter", [";;", ""])
def test_delimiter_must_be_one_character(delimiter):
    message = error_of(with_(data={"source": {"path": "d.csv", "delimiter": delimiter}}))
    assert "data.source.delimiter:" in message and "one character" in message and repr(delimiter) in message


def test_one_character_delimiter_is_accepted():
    assert validate_spec(with_(data={"source": {"path": "d.csv", "delimiter": "\t"}})).data.source.delimiter == "\t"


@pytest.mark.parametrize("seed", [-1, 2**32, 10**30])
def test_seeds_must_fit_numpy(seed):
    assert "training.seed" in error_of(with_(training={"seed": seed}))
    assert "data.split.seed" in error_of(with_(data={"source": "d.csv", "split": {"seed": seed}}))


def test_seed_limits_are_accepted():
    spec = validate_spec(with_(training={"seed": 2**32 - 1}, data={"source": "d.csv", "split": {"seed": 0}}))
    assert spec.training.seed == 2**32 - 1 and spec.data.split.seed == 0


def test_constant_fill_needs_a_fill_value():
    message = error_of(with_(features={"age": {"missing": "constant"}}))
    assert "features.age.missing:" in message and "fill_value" in message


def test_numeric_constant_fill_must_be_a_number():
    message = error_of(with_(features={"age": {"type": "numeric", "missing": "constant", "fill_value": "abc"}}))
    assert "features.age.fill_value:" in message and "'abc'" in message
    spec = validate_spec(with_(features={"age": {"type": "numeric", "missing": "constant", "fill_value": "0.5"}}))
    assert spec.feature_spec("age").fill_value == 0.5
    spec = validate_spec(with_(features={"plan": {"type": "category", "missing": "constant", "fill_value": "none"}}))
    assert spec.feature_spec("plan").fill_value == "none"


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


def test_split_column_without_a_method_that_uses_it_is_refused():
    message = error_of(with_(data={"source": "d.csv", "split": {"method": "random", "column": "when"}}))
    assert "data.split.column" in message


@pytest.mark.parametrize("value", [True, "50", 50.5])
def test_whole_numbers_are_whole_numbers(value):
    message = error_of(with_(training={"epochs": value}))
    assert "training.epochs" in message


def test_fill_value_without_constant_filling_is_refused():
    message = error_of(with_(features={"age": {"type": "numeric", "fill_value": 0}}))
    assert "features.age.fill_value" in message and "missing: constant" in message
