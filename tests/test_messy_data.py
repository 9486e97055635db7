"""Messy tables: `dlpipe init` + `dlpipe run` must work on them without editing the pipeline file.

The damaged files come from `messy.py` (scikit-learn's bundled sets and a diamonds sample, damaged
the way real exports are). The fast tests read them with `collect` and check what was detected;
the slow ones run the real CLI in a subprocess, once per file, and check the run folder.
"""

from __future__ import annotations

import codecs
import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import dlpipe
from dlpipe.collect import collect
from dlpipe.prepare.target import clean_labels, resolve_target
from dlpipe.spec import FileSource
from messy import CASES, Messy

ALL = sorted(CASES)
ACCENTED = [c for c in ALL if c.startswith(("latin1", "everything"))]
WITH_IGNORED = ["with_id_columns", "with_free_text", "everything", "everything_headerless"]
ENCODING_NAMES = {"utf-8": {"utf-8"}, "latin-1": {"iso8859-1", "cp1252"}}  # cp1252 agrees with Latin-1 on letters


@pytest.fixture(scope="session")
def files(tmp_path_factory) -> dict[str, Messy]:
    """Every damaged file, written once per session."""
    folder = tmp_path_factory.mktemp("messy")
    return {name: make(folder) for name, make in CASES.items()}


def read(messy: Messy):
    return collect(FileSource(path=str(messy.path)))


# --- fast: collection alone ---------------------------------------------------------------------


@pytest.mark.parametrize("case", ALL)
def test_collect_detects_header_delimiter_and_encoding(files, case):
    messy = files[case]
    collected = read(messy)
    assert collected.options["header"] is messy.header
    assert collected.options["delimiter"] == messy.delimiter
    assert codecs.lookup(collected.options["encoding"]).name in ENCODING_NAMES[messy.encoding], collected.options


@pytest.mark.parametrize("case", ALL)
def test_collect_keeps_every_good_row_and_drops_malformed_lines(files, case):
    messy = files[case]
    collected = read(messy)
    assert collected.dropped_lines == messy.malformed + messy.truncated
    assert len(collected.frame) == messy.rows
    if collected.dropped_lines:
        assert any(f"dropped {collected.dropped_lines} rows" in note for note in collected.notes), collected.notes


@pytest.mark.parametrize("case", ALL)
def test_collect_names_columns_and_finds_the_target(files, case):
    messy = files[case]
    frame = read(messy).frame
    if not messy.header:
        assert list(frame.columns) == [f"column_{i}" for i in range(frame.shape[1])]
    assert resolve_target(frame, messy.target) == messy.target_name
    if messy.classes is not None:
        assert set(clean_labels(frame[messy.target_name]).dropna().unique()) == messy.classes


@pytest.mark.parametrize("case", [c for c in ALL if c.startswith(("missing", "uci", "everything"))])
def test_collect_reads_question_marks_as_missing(files, case):
    messy = files[case]
    frame = read(messy).frame
    for column, count in messy.missing.items():
        assert frame[column].isna().sum() == count, column
        assert "?" not in set(frame[column].dropna().astype(str)), column
        if column not in ("color", "clarity"):  # these hold letters
            assert pd.api.types.is_numeric_dtype(frame[column]), (column, frame[column].dtype)


@pytest.mark.parametrize("case", ACCENTED)
def test_collect_keeps_accented_values(files, case):
    messy = files[case]
    frame = read(messy).frame
    for column, values in messy.survive.items():
        assert set(values) <= set(frame[column].dropna()), (read(messy).options, sorted(frame[column].unique()))


def test_collect_strips_padding_from_category_cells(files):
    frame = read(files["everything"]).frame
    assert not frame["Geschäft"].str.startswith(" ").any()
    assert not frame["cut"].str.endswith(" ").any()


def test_headerless_target_by_position(files):
    frame = read(files["no_header"]).frame
    last = frame.shape[1] - 1
    assert resolve_target(frame, str(last)) == resolve_target(frame, "-1") == resolve_target(frame, last)
    assert resolve_target(frame, "0") == "column_0"


def test_generators_are_deterministic(tmp_path):
    for name in ("everything", "uci_style", "latin1"):
        a, b = CASES[name](tmp_path / "a"), CASES[name](tmp_path / "b")
        assert a.path.read_bytes() == b.path.read_bytes(), name


def test_generated_sizes_keep_runs_fast(files):
    for name, messy in files.items():
        assert messy.rows <= 2000, name


# --- slow: the real CLI, init then run, without editing the pipeline file -----------------------


@dataclass
class Outcome:
    messy: Messy
    folder: Path
    init: subprocess.CompletedProcess
    pipeline: Path
    run: subprocess.CompletedProcess | None = None

    def explain(self, step: subprocess.CompletedProcess | None = None) -> str:
        step = step or self.run or self.init
        command = " ".join(map(str, step.args[3:]))
        return f"dlpipe {command}\nexit {step.returncode}\n{step.stdout[-3000:]}\n{step.stderr[-3000:]}"

    @property
    def run_folder(self) -> Path:
        found = sorted(p.parent for p in (self.folder / "runs").glob("*/*/metrics.json"))
        assert len(found) == 1, f"expected one finished run folder, found {found}\n{self.explain()}"
        return found[0]

    def json(self, name: str) -> dict:
        return json.loads((self.run_folder / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def outcomes(tmp_path_factory):
    """init + run of each damaged file, done on first use and shared by the tests that look at it."""
    done: dict[str, Outcome] = {}

    def get(case: str) -> Outcome:
        if case not in done:
            folder = tmp_path_factory.mktemp(case)
            messy = CASES[case](folder / "data")
            pipeline = folder / "pipeline.yaml"
            init = dlpipe("init", str(messy.path), "--target", messy.target, "-o", str(pipeline), cwd=folder)
            outcome = Outcome(messy, folder, init, pipeline)
            if init.returncode == 0 and pipeline.exists():
                outcome.run = dlpipe("run", str(pipeline), "--run-dir", str(folder / "runs"), "--quiet", cwd=folder)
            done[case] = outcome
        return done[case]

    return get


def finished(outcome: Outcome) -> Outcome:
    assert outcome.init.returncode == 0, outcome.explain(outcome.init)
    assert outcome.run is not None and outcome.run.returncode in (0, 3), outcome.explain()
    return outcome


@pytest.mark.slow
@pytest.mark.parametrize("case", ALL)
def test_init_writes_a_pipeline_that_needs_no_editing(outcomes, case):
    outcome = outcomes(case)
    assert outcome.init.returncode == 0, outcome.explain(outcome.init)
    assert outcome.pipeline.is_file()
    spec = yaml.safe_load(outcome.pipeline.read_text(encoding="utf-8"))
    messy = outcome.messy
    assert spec["problem"]["target"] == messy.target_name
    assert spec["problem"]["task"] == messy.task
    source = spec["data"]["source"]
    if not messy.header:
        assert isinstance(source, dict) and source["header"] is False, source
    if messy.delimiter != ",":
        assert isinstance(source, dict) and source["delimiter"] == messy.delimiter, source
    if messy.encoding != "utf-8":
        assert isinstance(source, dict) and codecs.lookup(source["encoding"]).name in ENCODING_NAMES[messy.encoding]


@pytest.mark.slow
@pytest.mark.parametrize("case", ALL)
def test_run_finishes_with_test_metrics(outcomes, case):
    outcome = finished(outcomes(case))
    metrics = outcome.json("metrics.json")
    assert metrics["metric"] in metrics["test"]
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics["test"].values()), metrics["test"]
    assert "passed" in metrics["goal"]
    assert (outcome.run.returncode == 0) == metrics["goal"]["passed"]
    assert (outcome.run_folder / "model" / "model.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("case", ALL)
def test_profile_counts_rows_classes_and_dropped_lines(outcomes, case):
    outcome = finished(outcomes(case))
    messy = outcome.messy
    profile = outcome.json("profile.json")
    assert profile["rows"] == messy.rows
    malformed = [r for r in profile["dropped"]["rows"] if "malformed" in r["reason"]]
    assert sum(r["count"] for r in malformed) == messy.malformed + messy.truncated, profile["dropped"]["rows"]
    if messy.classes is not None:
        assert set(profile["target"]["class_balance"]) == messy.classes
        per_class = outcome.json("metrics.json")["details"]["test"]["per_class"]
        assert set(per_class) == messy.classes
        assert all(v["support"] > 0 for v in per_class.values()), per_class  # sorted files too


@pytest.mark.slow
@pytest.mark.parametrize("case", WITH_IGNORED)
def test_id_columns_are_ignored_with_a_reason_and_free_text_is_a_text_feature(outcomes, case):
    outcome = finished(outcomes(case))
    dropped = {d["name"]: d["reason"] for d in outcome.json("profile.json")["dropped"]["columns"]}
    for column in outcome.messy.ignored:
        assert column in dropped, dropped
        assert dropped[column].strip(), column
    model = json.loads((outcome.run_folder / "model" / "model.json").read_text(encoding="utf-8"))
    used = {c["name"] for c in model["preprocessor"]["columns"]}
    assert not used & set(outcome.messy.ignored)
    types = {c["name"]: c["type"] for c in model["preprocessor"]["columns"]}
    assert {types.get(c) for c in outcome.messy.texts} <= {"text"}, types


@pytest.mark.slow
@pytest.mark.parametrize("case", WITH_IGNORED)
def test_profile_says_why_a_column_was_ignored(outcomes, case):
    """The reason in profile.json explains the column (ID-like, free text), as `init`'s comment does."""
    outcome = finished(outcomes(case))
    dropped = {d["name"]: d["reason"] for d in outcome.json("profile.json")["dropped"]["columns"]}
    for column, words in outcome.messy.ignored.items():
        assert words in dropped.get(column, ""), (column, dropped.get(column))


@pytest.mark.slow
@pytest.mark.parametrize("case", ACCENTED)
def test_accented_category_values_survive(outcomes, case):
    outcome = finished(outcomes(case))
    profile = outcome.json("profile.json")
    model = json.loads((outcome.run_folder / "model" / "model.json").read_text(encoding="utf-8"))
    states = {c["name"]: c["state"] for c in model["preprocessor"]["columns"]}
    for column, values in outcome.messy.survive.items():
        assert set(values) <= set(profile["columns"][column]["top"]), profile["columns"][column]["top"]
        assert set(values) <= set(states[column]["levels"]), states[column]


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in ALL if c.startswith(("missing", "uci", "everything"))])
def test_question_marks_are_missing_not_a_level(outcomes, case):
    outcome = finished(outcomes(case))
    profile = outcome.json("profile.json")
    for column, count in outcome.messy.missing.items():
        if column == outcome.messy.target_name:
            dropped = [r for r in profile["dropped"]["rows"] if "target" in r["reason"] and r["split"] == "source"]
            assert [r["count"] for r in dropped] == [count], profile["dropped"]["rows"]
            continue
        summary = profile["columns"][column]
        assert summary["missing_rate"] == pytest.approx(count / outcome.messy.rows, abs=1e-5), column
        assert "?" not in summary.get("top", {}), column
        assert summary["type"] in ("numeric", "category"), summary


@pytest.mark.slow
@pytest.mark.parametrize("case", ["everything", "everything_headerless", "uci_style", "latin1"])
def test_predict_reads_the_messy_file_like_training_did(outcomes, case):
    outcome = finished(outcomes(case))
    out = outcome.folder / "predictions.csv"
    result = dlpipe("predict", str(outcome.run_folder), str(outcome.messy.path), "-o", str(out), cwd=outcome.folder)
    assert result.returncode == 0, outcome.explain(result)
    predictions = pd.read_csv(out)
    assert len(predictions) == outcome.messy.rows
    assert predictions["prediction"].notna().all()
    if outcome.messy.classes is not None:
        assert set(predictions["prediction"].astype(str)) <= outcome.messy.classes
