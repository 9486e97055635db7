"""The bundled examples reach their goals, reproducibly; rich-input examples survive damaged files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from browser import check_report
from conftest import EXAMPLES, dlpipe
from dlpipe.pipeline import Pipeline

THRESHOLDS = {"breast_cancer": ("roc_auc", 0.99), "wine": ("accuracy", 0.96), "diabetes": ("r2", 0.42)}
RICH = {"digits": ("accuracy", 0.98), "spoken_digits": ("accuracy", 0.95), "subjectivity": ("accuracy", 0.91)}


def make_data(name: str) -> None:
    """Run an example's own data step (e.g. digits writes its PNG files), as its README says."""
    script = EXAMPLES / name / "make_data.py"
    if script.exists():
        subprocess.run([sys.executable, str(script)], check=True, capture_output=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(THRESHOLDS))
def test_example_meets_its_goal_and_reruns_identically(name, tmp_path):
    pipeline = Pipeline.from_yaml(EXAMPLES / name / "pipeline.yaml")
    first = pipeline.run(tmp_path / "one")
    metric, threshold = THRESHOLDS[name]
    assert first.metrics["test"][metric] >= threshold
    assert first.passed
    _check_example_report(first.folder, name)
    second = pipeline.run(tmp_path / "two")
    assert second.metrics["test"] == first.metrics["test"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RICH))
def test_rich_example_meets_its_goal(name, tmp_path):
    make_data(name)
    result = Pipeline.from_yaml(EXAMPLES / name / "pipeline.yaml").run(tmp_path)
    metric, threshold = RICH[name]
    assert result.metrics["test"][metric] >= threshold, result.metrics["test"]
    assert result.passed
    _check_example_report(result.folder, name)


def _check_example_report(folder: Path, name: str) -> None:
    """The example's report.html in chromium (see check_report), its worst test rows shown by value:
    thumbnails for images and recordings, never a path to the user's files."""
    page = check_report(folder / "report.html", f"report-example-{name}")
    examples = json.loads((folder / "examples.json").read_text())
    heading = "Largest errors (test)" if examples["task"] == "regression" else "Misclassified examples (test)"
    assert heading in page["headings"] and "Model" in page["headings"]
    html = (folder / "report.html").read_text()
    assert str(EXAMPLES) not in html.split("<h2>Data</h2>")[0]  # only the data card names the source
    if examples["task"] == "classification":
        assert len(examples["rows"]) == min(examples["wrong"], 8)
    if name in ("digits", "spoken_digits"):
        assert html.count('<img class="thumb" src="data:image/') == len(examples["rows"])


def _copy_example(name: str, tmp_path) -> Path:
    """The example's folder copied (its data step run first), its pipeline cut to a quick run."""
    make_data(name)
    folder = tmp_path / name
    shutil.copytree(EXAMPLES / name, folder, ignore=shutil.ignore_patterns("runs"))
    config = yaml.safe_load((folder / "pipeline.yaml").read_text())
    config["training"] = {**config.get("training", {}), "epochs": 2, "early_stopping": 0}
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(config))
    return folder


def _trained_digits(tmp_path) -> Path:
    """The run folder of a quick digits run through the command line."""
    folder = _copy_example("digits", tmp_path)
    run = dlpipe("run", str(folder / "pipeline.yaml"), "--run-dir", str(tmp_path / "runs"), "-q")
    assert run.returncode in (0, 3), run.stderr
    return next((tmp_path / "runs" / "digits").iterdir())


@pytest.mark.slow
def test_a_corrupt_png_in_the_digits_folder_is_skipped_and_listed(tmp_path):
    folder = _copy_example("digits", tmp_path)
    bad = folder / "data" / "3" / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 10)
    result = Pipeline.from_yaml(folder / "pipeline.yaml").run(tmp_path / "runs")
    profile = json.loads((result.folder / "profile.json").read_text())
    listed = [f for f in profile["dropped"]["files"] if f["value"].endswith("corrupt.png")]
    assert len(listed) == 1 and "not a readable image" in listed[0]["reason"]
    assert sum(profile["splits"][k] for k in ("train", "validation", "test")) == 1797  # only the bad one left out


@pytest.mark.slow
def test_predict_reads_a_table_whose_paths_point_at_new_files(tmp_path):
    model = _trained_digits(tmp_path)
    new = tmp_path / "incoming"
    (new / "scans").mkdir(parents=True)
    sources = sorted((tmp_path / "digits" / "data" / "7").glob("*.png"))[:3]
    for i, src in enumerate(sources):
        shutil.copy(src, new / "scans" / f"new_{i}.png")
    images = ["scans/new_0.png", "scans/new_1.png", "scans/new_2.png", "scans/gone.png", "../digits/data/7/1.png"]
    pd.DataFrame({"image": images}).to_csv(new / "batch.csv", index=False)
    out = tmp_path / "predictions.csv"
    result = dlpipe("predict", str(model), str(new / "batch.csv"), "-o", str(out))
    assert result.returncode == 0, result.stderr
    predictions = pd.read_csv(out)
    assert len(predictions) == 5
    assert predictions["prediction"][:3].notna().all()
    assert pd.isna(predictions["prediction"][3]) and "file not found" in predictions["problem"][3]
    assert pd.isna(predictions["prediction"][4]) and "outside the data folder" in predictions["problem"][4]
    assert "2 rows have no prediction" in result.stderr


@pytest.mark.slow
def test_an_empty_wav_in_the_spoken_digits_folder_is_skipped_and_listed(tmp_path):
    import soundfile

    folder = _copy_example("spoken_digits", tmp_path)
    soundfile.write(folder / "recordings" / "3_jackson_99.wav", np.zeros(0, dtype=np.int16), 8000)
    index = pd.read_csv(folder / "index.csv")
    extra = {"file": "recordings/3_jackson_99.wav", "digit": 3, "speaker": "jackson", "split": "train"}
    pd.concat([index, pd.DataFrame([extra])]).to_csv(folder / "index.csv", index=False)
    result = Pipeline.from_yaml(folder / "pipeline.yaml").run(tmp_path / "runs")
    profile = json.loads((result.folder / "profile.json").read_text())
    listed = [f for f in profile["dropped"]["files"] if f["value"].endswith("3_jackson_99.wav")]
    assert len(listed) == 1 and "empty" in listed[0]["reason"]
    assert profile["splits"]["train"] == (index["split"] == "train").sum()  # the others all kept


@pytest.mark.slow
def test_predict_on_a_folder_of_images(tmp_path):
    model = _trained_digits(tmp_path)
    folder = tmp_path / "new_scans"
    (folder / "batch1").mkdir(parents=True)
    for i, src in enumerate(sorted((tmp_path / "digits" / "data" / "4").glob("*.png"))[:4]):
        shutil.copy(src, folder / "batch1" / f"{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("ignored: not an image")
    out = tmp_path / "predictions.csv"
    result = dlpipe("predict", str(model), str(folder), "-o", str(out))
    assert result.returncode == 0, result.stderr
    predictions = pd.read_csv(out)
    assert len(predictions) == 5 and predictions["image"].str.endswith(".png").all()
    assert predictions["prediction"].notna().sum() == 4
    assert "not a readable image" in predictions.loc[predictions["image"].str.endswith("broken.png"), "problem"].iloc[0]

    # a tabular model refuses a folder with a clear error
    wine = dlpipe("run", str(EXAMPLES / "wine" / "pipeline.yaml"), "--run-dir", str(tmp_path / "wine-runs"), "-q")
    assert wine.returncode in (0, 3), wine.stderr
    refused = dlpipe("predict", str(next((tmp_path / "wine-runs" / "wine").iterdir())), str(folder))
    assert refused.returncode == 2 and "is a folder" in refused.stderr
