"""Tuning on this machine with Optuna: the search, its outputs, discipline, parallel workers, resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from dlpipe.pipeline import Pipeline

SPACE = {
    "training.learning_rate": {"log": [1e-5, 1e-1]},
    "model.dropout": {"float": [0.0, 0.6]},
    "model.hidden": [16, 64],
}


def wine(tuning: dict, **extra) -> dict:
    config = {
        "name": "wine",
        "problem": {"task": "classification", "target": "target", "metric": "log_loss"},
        "data": {"source": {"builtin": "wine"}},
        "training": {"epochs": 30, "early_stopping": 5},
        "tuning": {"space": SPACE, **tuning},
    }
    return {**config, **extra}


def trials_csv(folder):
    with (folder / "tuning" / "trials.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_search_keeps_the_best_trial_and_records_every_trial(tmp_path):
    result = Pipeline.from_dict(wine({"trials": 12, "pruner": "median"})).run(tmp_path)
    rows = trials_csv(result.folder)
    assert [int(r["number"]) for r in rows] == list(range(12))
    assert {r["state"] for r in rows} <= {"complete", "pruned"}
    assert any(r["state"] == "pruned" for r in rows)  # 1e-5 learning rates trail the others
    pruned = [r for r in rows if r["state"] == "pruned"]
    assert all(int(r["epochs"]) < 30 for r in pruned)
    complete = [r for r in rows if r["state"] == "complete"]
    best = min(complete, key=lambda r: float(r["value"]))
    summary = json.loads((result.folder / "tuning" / "summary.json").read_text())
    assert summary["best"]["value"] == pytest.approx(float(best["value"]))
    assert summary["trials"] == {"complete": len(complete), "pruned": len(pruned), "fail": 0, "repeat": 0, "total": 12}
    assert [h["best"] for h in summary["history"]] == sorted((h["best"] for h in summary["history"]), reverse=True)
    assert set(summary["importances"]) <= set(SPACE) and summary["importances"]
    # the run's model is the best trial's: its validation score before calibration is the trial's (the
    # temperature, fitted on validation, only lowers it), and its config the trial's
    calibration = result.metrics["decision"]["validation_log_loss"]
    assert calibration["before"] == pytest.approx(summary["best"]["value"], abs=1e-6)
    assert result.metrics["validation"]["log_loss"] <= calibration["before"]
    model = json.loads((result.model_folder / "model.json").read_text())["pipeline"]
    params = summary["best"]["params"]
    assert model["training"]["learning_rate"] == pytest.approx(params["training.learning_rate"])
    assert model["model"]["hidden"] == params["model.hidden"] and "tuning" not in model
    assert result.metrics["tuning"]["best_trial"] == summary["best"]["trial"]
    history = (result.folder / "history.jsonl").read_text().splitlines()
    assert len(history) == int(next(r for r in rows if int(r["number"]) == summary["best"]["trial"])["epochs"])
    assert list((result.folder / "tuning" / "trials").iterdir())  # the kept weights of the best trial


class NoTouching:
    """Stands in for the test split: any use of it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the search read the test split ({name})")


def test_the_search_never_reads_the_test_split(tmp_path):
    from dlpipe.tune import tune

    pipeline = Pipeline.from_dict(wine({"trials": 3, "pruner": "none"}))
    collected = pipeline.collect()
    prepared = pipeline.prepare()
    prepared.splits["test"] = NoTouching()
    tuned = tune(
        prepared, collected, tmp_path, fingerprint="f", reporter=__import__("dlpipe.pipeline").pipeline.Silent()
    )
    assert tuned.summary["trials"]["complete"] == 3


def test_parallel_workers_share_one_study_and_run_exactly_the_trials(tmp_path):
    result = Pipeline.from_dict(wine({"trials": 5, "parallel": 2, "method": "random", "pruner": "none"})).run(tmp_path)
    rows = trials_csv(result.folder)
    assert len(rows) == 5 and {r["state"] for r in rows} == {"complete"}
    assert len({r["training.learning_rate"] for r in rows}) == 5  # the workers drew differently


def test_refit_trains_on_validation_too_and_reports_the_trials_validation(tmp_path):
    result = Pipeline.from_dict(wine({"trials": 3, "pruner": "none", "refit": True})).run(tmp_path)
    summary = json.loads((result.folder / "tuning" / "summary.json").read_text())
    assert result.metrics["tuning"]["refit"] is True
    # validation is scored with the trial's model: the refit has seen those rows
    assert result.metrics["validation"]["log_loss"] == pytest.approx(summary["best"]["value"], abs=1e-6)
    best_epoch = json.loads((result.folder / "history.jsonl").read_text().splitlines()[0])  # trial's curve
    assert best_epoch["epoch"] == 1 and result.metrics["epochs_run"] >= 1


def test_grid_search_visits_every_point_once(tmp_path):
    space = {"model.hidden": [16, 32], "training.learning_rate": [0.01, 0.03]}
    result = Pipeline.from_dict(wine({"method": "grid", "pruner": "none", "space": space})).run(tmp_path)
    points = {(r["model.hidden"], r["training.learning_rate"]) for r in trials_csv(result.folder)}
    assert points == {("16", "0.01"), ("16", "0.03"), ("32", "0.01"), ("32", "0.03")}


def test_a_feature_setting_is_tuned_by_preparing_again(tmp_path):
    space = {"features.proline.scale": ["standard", "quantile"], "model.hidden": [16]}
    result = Pipeline.from_dict(wine({"method": "grid", "pruner": "none", "space": space})).run(tmp_path)
    rows = trials_csv(result.folder)
    assert {r["features.proline.scale"] for r in rows} == {"standard", "quantile"}
    model = json.loads((result.model_folder / "model.json").read_text())
    chosen = result.metrics["tuning"]["best_params"]["features.proline.scale"]
    assert model["pipeline"]["features"]["proline"]["scale"] == chosen
    state = next(c for c in model["preprocessor"]["columns"] if c["name"] == "proline")
    assert state["state"]["scale"] == chosen


@pytest.mark.slow
def test_a_killed_search_resumes_without_repeating_finished_trials(tmp_path):
    config = wine({"trials": 10, "pruner": "none", "method": "random"}, training={"epochs": 60, "early_stopping": 0})
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "dlpipe.cli", "run", str(path), "--run-dir", str(tmp_path / "runs"), "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = None
    finished_before: dict[int, dict] = {}
    deadline = time.time() + 240
    while time.time() < deadline and len(finished_before) < 3:
        time.sleep(0.3)
        # trials.csv appears once the study exists: opening the database earlier races its creation
        table = next((tmp_path / "runs" / "wine").glob("*/tuning/trials.csv"), None)
        if table is not None:
            db = table.parent / "study.db"
            finished_before = _finished(db)
    assert child.poll() is None, child.stderr.read().decode()
    child.send_signal(signal.SIGKILL)
    child.wait()
    finished_before = _finished(db)
    assert 3 <= len(finished_before) < 10

    resumed = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    rows = trials_csv(db.parent.parent)
    counted = [r for r in rows if r["state"] in ("complete", "pruned")]
    assert len(counted) == 10
    for number, params in finished_before.items():  # kept as they were, and not run again
        row = next(r for r in rows if int(r["number"]) == number)
        assert row["state"] == "complete" and float(row["training.learning_rate"]) == params["training.learning_rate"]
    rates = [r["training.learning_rate"] for r in counted]
    assert len(set(rates)) == len(rates)


def _finished(db) -> dict[int, dict]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name="dlpipe", storage=f"sqlite:///{db}")
    except KeyError:  # the file exists, the study not yet
        return {}
    return {t.number: t.params for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))}


def test_parallel_grid_workers_split_the_grid_between_them(tmp_path):
    space = {"model.hidden": [16, 32], "training.learning_rate": [0.01, 0.03, 0.1]}
    config = wine({"method": "grid", "pruner": "none", "parallel": 2, "space": space})
    result = Pipeline.from_dict(config).run(tmp_path)
    points = [(r["model.hidden"], r["training.learning_rate"]) for r in trials_csv(result.folder)]
    assert len(points) == 6 and len(set(points)) == 6


@pytest.mark.slow
def test_the_wine_tuning_example_runs_20_trials_and_prunes_some(tmp_path):
    from conftest import EXAMPLES, dlpipe

    result = dlpipe("run", str(EXAMPLES / "wine" / "tune.yaml"), "--run-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "trial 19 " in result.stderr and "PASS" in result.stdout  # one line per trial off a terminal
    folder = next((tmp_path / "wine-tuned").iterdir())
    rows = trials_csv(folder)
    assert len(rows) == 20 and any(r["state"] == "pruned" for r in rows)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["tuning"]["trials"]["total"] == 20


def test_a_column_the_data_lacks_is_named_before_any_trial(tmp_path):
    from dlpipe.errors import DataError

    config = wine({"space": {"features.prolin.scale": ["robust"]}})
    with pytest.raises(DataError, match=r"tuning.space.features.prolin.scale.*did you mean 'proline'"):
        Pipeline.from_dict(config).run(tmp_path)


@pytest.mark.parametrize("parallel", [1, 2])
def test_a_trial_that_fails_stops_the_search_and_says_why(tmp_path, parallel):
    from dlpipe.errors import DlpipeError

    # a numeric column reads no vocabulary size: only preparing the trial finds that out
    config = wine({"space": {"features.proline.vocab_size": [100, 200]}, "parallel": parallel, "trials": 2})
    with pytest.raises(DlpipeError, match="vocab_size"):
        Pipeline.from_dict(config).run(tmp_path)
    rows = trials_csv(next((tmp_path / "wine").iterdir()))
    assert rows and rows[0]["state"] == "fail" and "vocab_size" in rows[0]["error"]


def test_timeout_stops_starting_trials(tmp_path):
    result = Pipeline.from_dict(wine({"trials": 500, "timeout": "3s", "pruner": "none"})).run(tmp_path)
    rows = trials_csv(result.folder)
    assert 1 <= len(rows) < 500 and result.metrics["tuning"]["trials"]["complete"] == len(rows)


def test_the_same_seed_gives_the_same_search(tmp_path):
    config = wine({"trials": 4, "method": "tpe"})
    first, second = (Pipeline.from_dict(config).run(tmp_path / str(i)) for i in range(2))
    drop_seconds = [[v for k, v in r.items() if k != "seconds"] for r in trials_csv(first.folder)]
    assert drop_seconds == [[v for k, v in r.items() if k != "seconds"] for r in trials_csv(second.folder)]
    assert first.metrics["test"] == second.metrics["test"]


def test_validate_describes_the_search(tmp_path):
    from conftest import EXAMPLES, dlpipe

    result = dlpipe("validate", str(EXAMPLES / "wine" / "tune.yaml"))
    assert result.returncode == 0, result.stderr
    assert "tuning: tpe, 20 trials over 5 settings, pruner median, 1 at a time" in result.stdout


def test_parallel_workers_survive_a_parent_that_ran_torch_on_several_threads(tmp_path):
    # GNU OpenMP is not fork-safe: a forked worker using several threads after its parent did hangs
    script = f"""
import torch
torch.set_num_threads(2)
a = torch.randn(1500, 1500)
(a @ a).sum()
from dlpipe.pipeline import Pipeline
config = {wine({"trials": 2, "parallel": 2, "pruner": "none"}, training={"epochs": 10, "threads": 2})!r}
print(Pipeline.from_dict(config).run({str(tmp_path)!r}).metrics["tuning"]["trials"]["complete"])
"""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("2")


def test_a_setting_the_sampler_proposes_again_is_not_trained_again(tmp_path):
    space = {"model.hidden": [16, 32], "training.learning_rate": [0.01, 0.03]}  # 4 settings
    result = Pipeline.from_dict(wine({"method": "tpe", "trials": 10, "pruner": "none", "space": space})).run(tmp_path)
    rows = trials_csv(result.folder)
    trained = [r for r in rows if r["state"] != "repeat"]
    settings = {(r["model.hidden"], r["training.learning_rate"]) for r in trained}
    assert len(trained) == 4 and len(settings) == 4  # the budget bought every setting once, then stopped
    by_number = {r["number"]: r for r in rows}
    for repeat in (r for r in rows if r["state"] == "repeat"):
        original = by_number[repeat["repeat_of"]]
        assert (repeat["model.hidden"], repeat["training.learning_rate"]) == (
            original["model.hidden"],
            original["training.learning_rate"],
        )
        assert repeat["value"] == original["value"] and repeat["epochs"] == "0"


def test_numeric_lists_are_searched_in_order_and_reported_as_values(tmp_path):
    from dlpipe.tune.space import ordinal, raw_of, values_of

    space = {"training.learning_rate": [0.03, 0.001, 0.01], "model.norm": ["batch", "layer"]}
    result = Pipeline.from_dict(wine({"method": "tpe", "trials": 4, "pruner": "none", "space": space})).run(tmp_path)
    rows = trials_csv(result.folder)
    assert {float(r["training.learning_rate"]) for r in rows} <= {0.03, 0.001, 0.01}
    assert {r["model.norm"] for r in rows} <= {"batch", "layer"}
    cfg = Pipeline.from_dict(wine({"space": space})).spec.tuning
    assert ordinal(cfg.space["training.learning_rate"]) and not ordinal(cfg.space["model.norm"])
    # positions follow the sorted values: 0.001 < 0.01 < 0.03
    assert raw_of({"training.learning_rate": 0.01, "model.norm": "layer"}, cfg) == {
        "training.learning_rate": 1,
        "model.norm": "layer",
    }
    assert values_of({"training.learning_rate": 2}, cfg) == {"training.learning_rate": 0.03}


@pytest.mark.parametrize(("trials", "startup"), [(5, 3), (20, 3), (36, 3), (48, 4), (100, 10), (144, 10)])
def test_tpe_spends_a_tenth_of_the_budget_at_random_before_its_model_proposes(trials, startup):
    import optuna

    from dlpipe.spec.tuning import Tuning
    from dlpipe.tune.space import make_sampler, startup_trials, suggest

    assert startup_trials(trials) == startup
    space = {"training.learning_rate": [0.0003, 0.001, 0.003, 0.01], "model.dropout": {"float": [0.0, 0.5]}}
    cfg = Tuning.model_validate({"method": "tpe", "trials": trials, "space": space})

    def score(trial):  # lower is better: one corner of the space
        values = suggest(trial, cfg)
        return values["model.dropout"] - values["training.learning_rate"]

    def drawn(sampler):  # the first 12 settings a sampler proposes
        study = optuna.create_study(sampler=sampler)
        study.optimize(score, 12)
        return [t.params for t in study.trials]

    tpe, random = drawn(make_sampler(cfg, 7)), drawn(optuna.samplers.RandomSampler(seed=7))
    assert tpe[:startup] == random[:startup]  # the random trials: TPE's own random sampler, same seed
    if startup < 12:
        assert tpe[startup] != random[startup]  # then the model proposes


@pytest.mark.parametrize(("epochs", "warmup"), [(2, 1), (10, 5), (40, 5), (60, 6), (200, 20)])
def test_the_percentile_pruner_cuts_only_the_worst_quarter_after_its_warm_up(epochs, warmup):
    """`pruner: percentile` is Optuna's percentile rule at 75: after 5 finished trials and a tenth of
    the epochs (at least 5), a trial is cut when its best so far trails three quarters of the finished
    trials at that epoch; one merely below their median runs on (benchmarks/README.md, tuning.py)."""
    import optuna

    from dlpipe.spec.tuning import Tuning
    from dlpipe.tune.space import make_pruner, percentile_warmup

    assert percentile_warmup(epochs) == warmup
    cfg = Tuning.model_validate({"space": {"model.hidden": [16, 64]}, "pruner": "percentile"})
    study = optuna.create_study(pruner=make_pruner(cfg, epochs))  # lower is better, as with a loss

    def finished(value):
        trial = study.ask()
        for epoch in range(1, epochs + 1):
            trial.report(value, epoch)
        study.tell(trial, value)

    def cut(value, epoch):
        trial = study.ask()
        for at in range(1, epoch + 1):
            trial.report(value, at)
        return trial.should_prune()

    for value in (1.0, 2.0, 3.0, 4.0):
        finished(value)
    assert not cut(10.0, epochs)  # 4 finished trials: none cut yet
    for value in (5.0, 6.0, 7.0, 8.0):
        finished(value)  # 8 finished: median 4.5, 75th percentile 6.25
    assert not cut(5.5, epochs)  # below the median but not in the worst quarter: runs on
    assert cut(7.0, epochs)  # in the worst quarter: cut
    assert cut(7.0, warmup)  # from the end of the warm-up
    if warmup > 1:
        assert not cut(7.0, warmup - 1)  # not before


@pytest.mark.slow
def test_a_search_within_a_budget_stops_starting_trials_and_the_run_keeps_it(tmp_path):
    # what a run costs besides a search on this machine now (other jobs share the cores): one short trial
    start = time.time()
    Pipeline.from_dict(wine({"trials": 1}, training={"epochs": 2})).run(tmp_path / "one")
    budget = max(8.0, 3.0 * (time.time() - start))
    start = time.time()
    result = Pipeline.from_dict({**wine({"trials": 500}), "budget": budget}).run(tmp_path / "runs")
    took = time.time() - start
    assert took <= 1.1 * budget, (took, budget)
    rows = trials_csv(result.folder)
    assert 1 <= len(rows) < 500 and result.metrics["budget"]["seconds"] == budget
