"""The command line as a user meets it: exit codes, one-line errors, no torch for --help."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import EXAMPLES, dlpipe, tiny_config


def test_help_lists_commands_and_does_not_import_torch():
    code = (
        "import sys; from dlpipe.cli import main\ntry:\n main(['--help'])\nexcept SystemExit: pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert "NO-TORCH" in out
    for verb in ("init", "validate", "run", "predict", "schema"):
        assert verb in out


def test_typo_exits_2_with_suggestion(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: t\nproblem: {task: classification, traget: target}\ndata: {source: {builtin: iris}}\n")
    result = dlpipe("validate", str(path))
    assert result.returncode == 2
    assert "did you mean 'target'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"data": {"source": "missing.csv"}}, "file not found"),
        ({"problem": {"target": "nope"}}, "not in the data"),
        ({"problem": {"task": "regression", "target": "target"}}, "not numeric"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, config, message):
    base = tiny_config()
    for key, value in config.items():
        base[key] = {**base[key], **value}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(base))
    result = dlpipe("run", str(path), "--run-dir", str(tmp_path / "runs"))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_unexpected_errors_suggest_debug(tmp_path):
    result = dlpipe("predict", str(tmp_path), "x.csv", "-o", str(tmp_path / "out.txt"))
    assert result.returncode == 2 and "use .csv or .parquet" in result.stderr


def test_validate_reports_types(tmp_path):
    result = dlpipe("validate", str(EXAMPLES / "wine" / "pipeline.yaml"))
    assert result.returncode == 0, result.stderr
    assert "alcohol: numeric" in result.stdout and "train" in result.stdout


def test_schema_is_json():
    result = dlpipe("schema")
    assert json.loads(result.stdout)["title"] == "dlpipe pipeline.yaml"


def write(tmp_path, config) -> str:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.mark.slow
def test_run_predict_and_missed_goal(tmp_path):
    config = tiny_config(problem={"goal": {"accuracy": 0.5}})
    result = dlpipe("run", write(tmp_path, config), "--run-dir", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    assert "PASS" in result.stdout
    run = next((tmp_path / "runs" / "iris").iterdir())
    for name in ("pipeline.yaml", "profile.json", "history.jsonl", "metrics.json"):
        assert (run / name).is_file()

    data = tmp_path / "new.csv"
    pd.read_parquet(run / "model" / "reference.parquet").drop(columns=["prediction", "target"]).filter(
        regex="^(?!proba_)"
    ).to_csv(data, index=False)
    out = tmp_path / "out.csv"
    result = dlpipe("predict", str(run), str(data), "-o", str(out))
    assert result.returncode == 0, result.stderr
    predictions = pd.read_csv(out)
    assert {"prediction", "proba_setosa"} <= set(predictions.columns) and len(predictions) > 50

    config["problem"]["goal"] = {"accuracy": 0.9999}
    config["training"]["epochs"] = 1
    result = dlpipe("run", write(tmp_path, config), "--run-dir", str(tmp_path / "runs2"))
    assert result.returncode == 3 and "FAIL" in result.stdout


@pytest.mark.slow
def test_tampered_model_is_refused_by_predict(tmp_path):
    result = dlpipe("run", write(tmp_path, tiny_config()), "--run-dir", str(tmp_path / "runs"))
    run = next((tmp_path / "runs" / "iris").iterdir())
    weights = run / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0x01
    weights.write_bytes(bytes(data))
    result = dlpipe("predict", str(run), str(tmp_path / "pipeline.yaml"), "-o", str(tmp_path / "o.csv"))
    assert result.returncode == 2
    assert "model.safetensors does not match" in result.stderr


def test_resume_with_nothing_to_resume(tmp_path):
    result = dlpipe("run", write(tmp_path, tiny_config()), "--run-dir", str(tmp_path / "runs"), "--resume")
    assert result.returncode == 2 and "no unfinished run" in result.stderr


@pytest.mark.slow
def test_predict_reads_its_own_encoding(tmp_path):
    rows = [f"{i % 7 * 1.5},{['Malmö', 'Zürich', 'Köln'][i % 3]},{'ab'[i % 2]}" for i in range(120)]
    text = "x,city,y\n" + "\n".join(rows) + "\n"
    (tmp_path / "train.csv").write_bytes(text.encode("latin-1"))
    (tmp_path / "new_utf8.csv").write_bytes(text.encode("utf-8"))
    (tmp_path / "new_latin1.csv").write_bytes(text.encode("latin-1"))
    assert dlpipe("init", str(tmp_path / "train.csv"), "-t", "y", "-o", str(tmp_path / "p.yaml")).returncode == 0
    assert dlpipe("run", str(tmp_path / "p.yaml"), "--run-dir", str(tmp_path / "runs")).returncode in (0, 3)
    run = next((tmp_path / "runs").glob("*/*"))
    outputs = []
    for name in ("new_utf8.csv", "new_latin1.csv"):
        result = dlpipe("predict", str(run), str(tmp_path / name), "-o", str(tmp_path / f"{name}.out.csv"))
        assert result.returncode == 0, result.stderr
        outputs.append(pd.read_csv(tmp_path / f"{name}.out.csv", encoding="utf-8"))
    pd.testing.assert_frame_equal(outputs[0], outputs[1])
    assert set(outputs[0]["city"]) == {"Malmö", "Zürich", "Köln"}


def test_markup_in_user_text_is_printed_not_interpreted(tmp_path):
    result = dlpipe("validate", write(tmp_path, tiny_config(problem={"target": "x[/]"})))
    assert result.returncode == 2 and "x[/]" in result.stderr


def test_unwritable_run_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = dlpipe("run", write(tmp_path, tiny_config()), "--run-dir", str(blocker / "runs"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(blocker) in result.stderr


def test_debug_prints_a_traceback_and_keeps_the_exit_code(tmp_path):
    result = dlpipe("validate", str(tmp_path / "missing.yaml"), "--debug")
    assert result.returncode == 2 and "Traceback" in result.stderr
