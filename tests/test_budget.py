"""`budget:`: the whole run keeps a wall-clock budget by cutting training, and says so."""

from __future__ import annotations

import json
import time

import pytest

from conftest import tiny_config
from dlpipe.budget import Budget
from dlpipe.pipeline import Pipeline, Silent


class Lines(Silent):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, text: str) -> None:
        self.lines.append(text)


def timed_run(config: dict, folder, reporter=None):
    start = time.time()
    result = Pipeline.from_dict(config).run(folder, reporter=reporter)
    return result, time.time() - start


@pytest.mark.slow
@pytest.mark.usefixtures("with_onnx")
def test_a_budget_cuts_training_and_the_whole_run_keeps_it(tmp_path):
    # far more epochs than fit: only the budget can end training
    config = tiny_config("wine", training={"epochs": 100_000, "early_stopping": 0})
    # what a run costs besides training on this machine now (other jobs share the cores): one epoch
    _, fixed = timed_run(tiny_config("wine", training={"epochs": 1}), tmp_path / "one")
    budget = max(5.0, 2.0 * fixed)
    lines = Lines()
    result, took = timed_run({**config, "budget": budget}, tmp_path / "runs", lines)

    assert took <= 1.1 * budget, (took, budget, result.metrics["budget"])
    recorded = result.metrics["budget"]
    assert recorded["seconds"] == budget and recorded["cut"] and recorded["epochs_configured"] == 100_000
    assert 1 < result.metrics["epochs_run"] < 100_000
    assert result.metrics["epochs_run"] <= recorded["epochs_planned"]
    assert any(line.startswith(f"budget {budget:g} s cut training") for line in lines.lines), lines.lines
    history = (result.folder / "history.jsonl").read_text().splitlines()
    assert len(history) == result.metrics["epochs_run"]
    # the learning-rate schedule was planned for the epochs that fit, and decays over them
    lrs = [json.loads(line)["lr"] for line in history]
    assert recorded["epochs_planned"] < 100_000 and lrs[-1] < max(lrs)
    assert (result.folder / "model" / "model.onnx").exists()


def test_without_a_budget_nothing_is_reserved_or_recorded(tmp_path):
    budget = Budget(None)
    assert budget.deadline(1.0) == float("inf") and budget.describe(100, 100) == []
    result = Pipeline.from_dict(tiny_config(training={"epochs": 2})).run(tmp_path)
    assert result.metrics["budget"] is None and result.metrics["epochs_run"] == 2


def test_a_busy_machine_reserves_more_for_packaging(monkeypatch):
    budget = Budget(60.0)
    monkeypatch.setattr(budget, "share", lambda: 1.0)
    idle = budget.wall0 + 60 - budget.deadline(0.0)
    monkeypatch.setattr(budget, "share", lambda: 0.25)
    busy = budget.wall0 + 60 - budget.deadline(0.0)
    assert busy == pytest.approx(4 * idle) and budget.reserved == pytest.approx(busy)
