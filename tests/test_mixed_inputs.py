"""A model mixing table columns with text: trains, and loads back to identical predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from browser import check_report
from conftest import EXAMPLES
from dlpipe import load_model
from dlpipe.pipeline import Pipeline


@pytest.mark.slow
@pytest.mark.parametrize("combiner", ["concat", "transformer"])
def test_table_plus_text_round_trips_to_identical_predictions(combiner, tmp_path):
    config = yaml.safe_load((EXAMPLES / "support_tickets" / "pipeline.yaml").read_text())
    config["data"]["source"] = str(EXAMPLES / "support_tickets" / "tickets.csv")
    config["model"] = {"combiner": combiner}
    config["training"] = {"epochs": 6, "early_stopping": 0}
    result = Pipeline.from_dict(config).run(tmp_path)
    model = load_model(result.folder)
    kinds = {c.type for c in model.preprocessor.columns}
    assert kinds == {"text", "category", "numeric", "datetime"}
    assert result.metrics["validation"]["accuracy"] > 0.8  # learnt something from the mix
    if combiner == "concat":  # the example's report: its misclassified tickets as text and values
        page = check_report(result.folder / "report.html", "report-example-support_tickets")
        assert "Misclassified examples (test)" in page["headings"] and "message" in page["text"]

    reference = pd.read_parquet(result.model_folder / "reference.parquet")
    inputs = reference.drop(columns=[c for c in reference.columns if c.startswith(("prediction", "proba_"))])
    again = model.predict(inputs)
    assert (again["prediction"].to_numpy() == reference["prediction"].to_numpy()).all()
    for column in (c for c in reference.columns if c.startswith("proba_")):
        np.testing.assert_array_equal(again[column].to_numpy(), reference[column].to_numpy())
