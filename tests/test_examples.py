"""The bundled examples reach their goals, reproducibly (the foundation's acceptance figures)."""

from __future__ import annotations

import pytest

from conftest import EXAMPLES
from dlpipe.pipeline import Pipeline

THRESHOLDS = {"breast_cancer": ("roc_auc", 0.99), "wine": ("accuracy", 0.96), "diabetes": ("r2", 0.42)}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(THRESHOLDS))
def test_example_meets_its_goal_and_reruns_identically(name, tmp_path):
    pipeline = Pipeline.from_yaml(EXAMPLES / name / "pipeline.yaml")
    first = pipeline.run(tmp_path / "one")
    metric, threshold = THRESHOLDS[name]
    assert first.metrics["test"][metric] >= threshold
    assert first.passed
    second = pipeline.run(tmp_path / "two")
    assert second.metrics["test"] == first.metrics["test"]
