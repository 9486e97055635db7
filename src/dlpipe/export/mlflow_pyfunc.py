"""The loader MLflow imports for an exported dlpipe model (`loader_module` in its MLmodel file)."""

from __future__ import annotations

from typing import Any

import pandas as pd


class DlpipeModel:
    """What `mlflow.pyfunc.load_model` wraps: predict(frame) -> prediction (and proba_<class>) columns."""

    def __init__(self, path: str) -> None:
        from dlpipe.package import load_model

        self.model = load_model(path)

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return self.model.predict(frame)


def _load_pyfunc(data_path: str) -> DlpipeModel:
    return DlpipeModel(data_path)
