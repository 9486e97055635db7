"""`dlpipe init`: the written pipeline infers task, metric, goal and types, says why, and loads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dlpipe.define import init_pipeline, trivial_baseline
from dlpipe.errors import DataError
from dlpipe.spec import load_spec

RNG = np.random.default_rng(0)
ROWS = 60


def table(**columns) -> pd.DataFrame:
    """A small table: an age, a plan, and the given columns."""
    return pd.DataFrame(
        {
            "age": RNG.integers(18, 80, ROWS),
            "plan": RNG.choice(["free", "pro", "team"], ROWS),
            **columns,
        }
    )


def init(tmp_path: Path, frame: pd.DataFrame, target: str, name: str = "data.csv", **kwargs) -> tuple[str, Path]:
    data = tmp_path / name
    frame.to_csv(data, index=False)
    output = tmp_path / "pipeline.yaml"
    return init_pipeline(data, target, output, **kwargs), output


def written(output: Path) -> dict:
    return yaml.safe_load(output.read_text())


def test_binary_target_is_classification_with_roc_auc(tmp_path):
    text, output = init(tmp_path, table(churned=RNG.choice(["yes", "no"], ROWS)), "churned")
    problem = written(output)["problem"]
    assert problem["task"] == "classification" and problem["metric"] == "roc_auc"
    assert "2 distinct labels" in text  # the reason for the task, as a comment
    assert problem["goal"] == {"roc_auc": 0.55}  # just above a constant score's 0.5


def test_many_classes_use_accuracy_with_a_goal_above_the_majority_share(tmp_path):
    labels = np.array(["a"] * 30 + ["b"] * 20 + ["c"] * 10)
    _, output = init(tmp_path, table(kind=labels), "kind")
    problem = written(output)["problem"]
    assert problem["metric"] == "accuracy"
    assert problem["goal"]["accuracy"] == pytest.approx(0.5 + 0.1 * 0.5)  # the majority share is 0.5


def test_numeric_target_is_regression_with_a_goal_below_the_spread(tmp_path):
    price = RNG.normal(100, 15, ROWS)
    text, output = init(tmp_path, table(price=price), "price")
    problem = written(output)["problem"]
    assert problem["task"] == "regression" and problem["metric"] == "rmse"
    assert problem["goal"]["rmse"] == pytest.approx(0.9 * price.std(), rel=1e-3)
    assert "lower is better" in text and "numeric target with" in text


def test_trivial_baseline_for_the_default_metrics():
    target = pd.Series(["a"] * 3 + ["b"])
    assert trivial_baseline(target, "classification", "accuracy") == (0.75, 0.775)
    assert trivial_baseline(target, "classification", "roc_auc") == (0.5, 0.55)
    base, goal = trivial_baseline(pd.Series([1.0, 3.0]), "regression", "rmse")
    assert base == 1.0 and goal == 0.9


def test_every_feature_line_says_why(tmp_path):
    text, output = init(tmp_path, table(y=RNG.choice([0, 1], ROWS), const=["x"] * ROWS), "y")
    lines = {line.split(":")[0].strip(): line for line in text.splitlines() if line.startswith("  ")}
    assert "# numbers with" in lines["age"] and "{type: numeric}" in lines["age"]
    assert "# 3 distinct levels" in lines["plan"] and "{type: category}" in lines["plan"]
    assert "ignore" in lines["const"] and "# constant" in lines["const"]
    assert set(written(output)["features"]) == {"age", "plan", "const"}


def test_written_file_loads_with_load_spec(tmp_path):
    _, output = init(tmp_path, table(y=RNG.choice([0, 1], ROWS)), "y")
    spec = load_spec(output)
    assert spec.name == "data" and spec.problem.target == "y"
    assert spec.data.source == str(tmp_path / "data.csv")


@pytest.mark.parametrize("stem", ["2024", "yes", "null", "1e3"])
def test_names_yaml_would_misread_are_quoted(tmp_path, stem):
    text, output = init(tmp_path, table(y=RNG.choice([0, 1], ROWS)), "y", name=f"{stem}.csv")
    assert f'name: "{stem}"' in text
    assert load_spec(output).name == stem


@pytest.mark.parametrize("column", ["yes", "a: b", "2020", "null"])
def test_column_names_yaml_would_misread_are_quoted(tmp_path, column):
    frame = table(y=RNG.choice([0, 1], ROWS))
    frame[column] = RNG.normal(size=ROWS)
    _, output = init(tmp_path, frame, "y")
    assert column in load_spec(output).features
    _, output = init(tmp_path, frame.rename(columns={"y": column, column: "x"}), column)
    assert load_spec(output).problem.target == column


def test_headerless_file_writes_header_false(tmp_path):
    data = tmp_path / "raw.data"
    data.write_text("".join(f"{i % 7},{i * 1.5},{'ab'[i % 2]}\n" for i in range(40)))
    text = init_pipeline(data, "2", tmp_path / "pipeline.yaml")
    assert "header: false" in text
    spec = load_spec(tmp_path / "pipeline.yaml")
    assert spec.data.source.header is False and spec.problem.target == "column_2"


def test_only_the_target_column_is_refused(tmp_path):
    with pytest.raises(DataError) as info:
        init(tmp_path, pd.DataFrame({"y": RNG.choice([0, 1], ROWS)}), "y")
    assert "no feature columns besides the target" in str(info.value)
    assert not (tmp_path / "pipeline.yaml").exists()
