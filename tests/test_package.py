"""The model folder: round trip, integrity checks, no pickle."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import tiny_config
from dlpipe.errors import ArtifactError, DataError
from dlpipe.manifest import manifest_digest
from dlpipe.package import load_model
from dlpipe.pipeline import Pipeline


@pytest.fixture(scope="module")
def run(with_onnx, tmp_path_factory):
    return Pipeline.from_dict(tiny_config()).run(tmp_path_factory.mktemp("runs"))


def test_folder_layout_and_no_pickle(run):
    files = {p.name for p in run.model_folder.iterdir()}
    assert files == {"model.safetensors", "model.json", "reference.parquet", "model.onnx"}
    manifest = json.loads((run.model_folder / "model.json").read_text())
    assert set(manifest["files"]) == {"model.safetensors", "reference.parquet", "model.onnx"}
    assert {"pipeline", "preprocessor", "metrics", "versions"} <= set(manifest)
    for path in run.folder.rglob("*"):
        assert path.suffix not in {".pkl", ".pickle", ".pt", ".pth", ".joblib"}


def test_loaded_model_reproduces_the_test_metrics(run):
    model = load_model(run.folder)  # a run folder works as well as the model folder
    prepared = Pipeline.from_dict(tiny_config()).prepare()
    test = prepared.splits["test"].frame
    predicted = model.predict(test.drop(columns=["target"]))
    accuracy = float((predicted["prediction"].to_numpy() == test["target"].to_numpy()).mean())
    assert accuracy == pytest.approx(run.metrics["test"]["accuracy"])
    proba = predicted[[f"proba_{c}" for c in model.classes]].to_numpy()
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)


def test_reference_has_inputs_and_predictions(run):
    reference = pd.read_parquet(run.model_folder / "reference.parquet")
    assert {"prediction", "target", "sepal length (cm)"} <= set(reference.columns)


def copy_model(run, tmp_path):
    import shutil

    return shutil.copytree(run.model_folder, tmp_path / "model")


def test_a_flipped_byte_is_refused(run, tmp_path):
    folder = copy_model(run, tmp_path)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        load_model(folder)


def test_a_manifest_naming_files_outside_is_refused(run, tmp_path):
    folder = copy_model(run, tmp_path)
    manifest = json.loads((folder / "model.json").read_text())
    manifest["files"]["../secret"] = "0" * 64
    manifest["manifest_sha256"] = manifest_digest(manifest)  # a crafted file, digest recomputed
    (folder / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="outside"):
        load_model(folder)


def test_an_edited_manifest_is_refused(run, tmp_path):
    folder = copy_model(run, tmp_path)
    manifest = json.loads((folder / "model.json").read_text())
    manifest["preprocessor"]["target_state"]["classes"].reverse()  # would silently swap every label
    (folder / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="manifest_sha256"):
        load_model(folder)


@pytest.mark.parametrize(
    "damage",
    [
        lambda m: m.pop("preprocessor"),
        lambda m: m.update(head="weird"),
        lambda m: m["pipeline"]["model"].update(hidden="many"),
        lambda m: m.update(format_version="2"),
        lambda m: m["preprocessor"]["columns"][0].update(type="nonsense"),
    ],
)
def test_a_damaged_manifest_is_an_artifact_error(run, tmp_path, damage):
    folder = copy_model(run, tmp_path)
    manifest = json.loads((folder / "model.json").read_text())
    damage(manifest)
    manifest["manifest_sha256"] = manifest_digest(manifest)
    (folder / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError):
        load_model(folder)


def test_missing_file_and_missing_folder(run, tmp_path):
    folder = copy_model(run, tmp_path)
    (folder / "reference.parquet").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        load_model(folder)
    with pytest.raises(ArtifactError, match="not found"):
        load_model(tmp_path / "nowhere")


def test_predict_names_missing_columns(run):
    model = load_model(run.folder)
    with pytest.raises(DataError, match="petal width"):
        model.predict(pd.DataFrame({"sepal length (cm)": [5.0]}))


def test_bad_values_at_prediction_time_do_not_crash(run):
    model = load_model(run.folder)
    frame = pd.DataFrame({c.name: ["not a number", None] for c in model.preprocessor.columns})
    assert len(model.predict(frame)) == 2


def test_python_api_entry_points(run):
    import dlpipe

    assert dlpipe.load_model(run.folder).classes == ["setosa", "versicolor", "virginica"]
    assert dlpipe.Pipeline.from_dict.__self__ is dlpipe.Pipeline


def test_format_1_weight_names_load_into_the_current_network(run):
    """Models saved before encoders became a list (format 1) keep loading."""
    from dlpipe.model import Net
    from dlpipe.package import upgrade_v1_weights
    from dlpipe.spec import ModelSpec

    model = load_model(run.folder)
    groups = list(model.preprocessor.groups())
    spec = ModelSpec(numeric_embedding=4)  # an encoder with weights of its own
    current = Net(model.preprocessor, spec).state_dict()
    v1 = {
        (f"encoders.{groups[int(k.split('.')[1])]}.{k.split('.', 2)[2]}" if k.startswith("encoders.") else k): v
        for k, v in current.items()
    }
    assert any(k.startswith("encoders.numeric.") for k in v1)
    fresh = Net(model.preprocessor, spec)
    fresh.load_state_dict(upgrade_v1_weights(v1, groups))  # strict: every name must match
    for name, tensor in fresh.state_dict().items():
        assert torch.equal(tensor, current[name])
