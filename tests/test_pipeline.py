"""The pipeline's stage order: resume safety and what a run records."""

from __future__ import annotations

import pytest

from conftest import StopAfter, tiny_config
from dlpipe.errors import ResumeError
from dlpipe.pipeline import Pipeline


def interrupted_run(tmp_path, config):
    with pytest.raises(KeyboardInterrupt):
        Pipeline.from_dict(config).run(tmp_path, reporter=StopAfter(2))
    return next((tmp_path / config["name"]).iterdir())


def test_resume_with_another_config_is_refused_and_touches_nothing(tmp_path):
    folder = interrupted_run(tmp_path, tiny_config(training={"epochs": 6}))
    before = (folder / "pipeline.yaml").read_text()
    with pytest.raises(ResumeError, match="none written by this pipeline"):
        Pipeline.from_dict(tiny_config(training={"epochs": 7})).run(tmp_path, resume=True)
    assert (folder / "pipeline.yaml").read_text() == before


def test_resume_finishes_the_interrupted_run(tmp_path):
    config = tiny_config(training={"epochs": 6})
    folder = interrupted_run(tmp_path, config)
    result = Pipeline.from_dict(config).run(tmp_path, resume=True)
    assert result.folder == folder and result.metrics["epochs_run"] == 6
    assert len((folder / "history.jsonl").read_text().splitlines()) == 6
    assert not (folder / "checkpoint.safetensors").exists()


def test_metrics_record_the_baseline_and_stage_times(tmp_path):
    result = Pipeline.from_dict(tiny_config()).run(tmp_path)
    assert result.metrics["baseline"]["name"] == "LogisticRegression"
    assert set(result.seconds) >= {"collect", "prepare", "train", "package"}
    assert result.metrics["unscored_test_rows"] == 0
