"""`model.preset`: bundles of model and training settings that keys set in the file override."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import tiny_config
from dlpipe.errors import ConfigError
from dlpipe.pipeline import Pipeline
from dlpipe.spec import ModelSpec, Training, validate_spec
from dlpipe.spec.presets import DEFAULT, EMBEDDING_ROWS, EMBEDDING_SIZE, PRESETS, auto_numeric_embedding

BASE = {"name": "p", "problem": {"task": "classification", "target": "t"}, "data": {"source": "t.csv"}}


def test_the_default_preset_is_the_fields_own_defaults():
    """So a ModelSpec() built in code and a file without a preset mean the same model."""
    assert DEFAULT == ModelSpec().preset == "balanced"
    defaults = {"model": ModelSpec(), "training": Training()}
    for section, values in PRESETS[DEFAULT].items():
        for key, value in values.items():
            assert getattr(defaults[section], key) == value, f"{section}.{key}"


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_preset_fills_in_every_key_the_file_leaves_out(name):
    spec = validate_spec({**BASE, "model": {"preset": name}})
    for section, values in PRESETS[name].items():
        for key, value in values.items():
            assert getattr(getattr(spec, section), key) == value, f"{section}.{key}"


def test_keys_set_in_the_file_win_over_the_preset():
    spec = validate_spec({**BASE, "model": {"preset": "best", "ensemble": 2}, "training": {"epochs": 7}})
    assert (spec.model.ensemble, spec.training.epochs) == (2, 7)
    assert spec.model.numeric_embedding_kind == "periodic" and spec.training.early_stopping == 20


def test_an_unknown_preset_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"model\.preset.*'fast', 'balanced' or 'best'"):
        validate_spec({**BASE, "model": {"preset": "quick"}})


def test_a_preset_cannot_be_searched():
    space = {"model.preset": ["fast", "best"]}
    with pytest.raises(ConfigError, match="preset is a bundle of settings"):
        validate_spec({**BASE, "tuning": {"space": space}})


def test_the_resolved_file_of_a_run_shows_the_preset_and_what_it_chose(tmp_path):
    config = tiny_config("wine", model={"preset": "fast"})
    del config["training"]  # the preset's schedule
    config["model"] = {"preset": "fast"}
    result = Pipeline.from_dict(config).run(tmp_path)
    written = yaml.safe_load((result.folder / "pipeline.yaml").read_text())
    assert written["model"]["preset"] == "fast"
    for section, values in PRESETS["fast"].items():
        assert {k: written[section][k] for k in values} == values
    assert result.metrics["epochs_run"] <= PRESETS["fast"]["training"]["epochs"]
    # re-reading the resolved file gives the same settings: nothing is filled in twice
    assert validate_spec(written).model_dump() == Pipeline.from_dict(written).spec.model_dump()


@pytest.mark.parametrize(("rows", "size"), [(300, 0), (15_000, EMBEDDING_SIZE)])
def test_auto_numeric_embeddings_are_settled_by_the_training_rows(rows, size):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    frame["t"] = frame["a"] > 0
    spec = Pipeline.from_dict({**BASE, "data": {}}, data=frame).prepare().spec
    assert spec.model.numeric_embedding == size and spec.model.numeric_embedding_kind == "periodic"
    assert auto_numeric_embedding(EMBEDDING_ROWS) == EMBEDDING_SIZE > auto_numeric_embedding(EMBEDDING_ROWS - 1)
