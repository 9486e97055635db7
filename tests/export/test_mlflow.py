"""`dlpipe export --format mlflow`: a pyfunc folder MLflow loads and predicts with, as dlpipe does."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from conftest import dlpipe, tiny_config
from dlpipe.package import load_model
from dlpipe.pipeline import Pipeline

pytestmark = pytest.mark.slow


def test_mlflow_loads_the_export_and_predicts_like_dlpipe(tmp_path):
    mlflow = pytest.importorskip("mlflow.pyfunc")
    result = Pipeline.from_dict(tiny_config()).run(tmp_path / "runs")
    out = tmp_path / "iris-mlflow"
    done = dlpipe("export", str(result.folder), "--format", "mlflow", "-o", str(out))
    assert done.returncode == 0, done.stderr
    spec = yaml.safe_load((out / "MLmodel").read_text())
    assert spec["flavors"]["python_function"]["loader_module"] == "dlpipe.export.mlflow_pyfunc"
    assert not list(out.rglob("*.pkl")) and (out / "code" / "dlpipe" / "package.py").is_file()
    frame = Pipeline.from_dict(tiny_config()).prepare().splits["test"].frame.drop(columns=["target"])
    loaded = mlflow.load_model(str(out))
    expected = load_model(result.model_folder).predict(frame)
    pd.testing.assert_frame_equal(loaded.predict(frame).reset_index(drop=True), expected.reset_index(drop=True))
    again = dlpipe("export", str(result.folder), "--format", "mlflow", "-o", str(out))
    assert again.returncode == 2 and "not empty" in again.stderr
