"""The training loop: resume is exact, early stopping keeps the best weights, schedules behave."""

from __future__ import annotations

import itertools

import pytest
import torch

from conftest import tiny_config
from dlpipe.errors import ResumeError
from dlpipe.evaluate import to_tensors
from dlpipe.model import Head, Net
from dlpipe.pipeline import Pipeline
from dlpipe.train import Batches, batch_indices, fit, lr_schedule, seed_everything


class Crash(Exception):
    pass


def setup(epochs=6, early_stopping=0):
    prepared = Pipeline.from_dict(tiny_config(training={"epochs": epochs, "early_stopping": early_stopping})).prepare()
    seed_everything(prepared.spec.training.seed)
    net = Net(prepared.preprocessor, prepared.spec.model)
    head = Head.for_preprocessor(prepared.preprocessor)
    train, val = (
        Batches(to_tensors(prepared.splits[s].inputs), torch.as_tensor(prepared.splits[s].y))
        for s in ("train", "validation")
    )

    def score(model):
        model.eval()
        with torch.no_grad():
            loss = float(head.loss(model(val.inputs), val.y.to(head.target_dtype)))
        model.train()
        return -loss, loss

    return net, head, train, prepared.spec.training, score


def run(tmp_path, *, crash_after=None, resume=False, fingerprint="f", start=False):
    net, head, train, cfg, score = setup()
    # any weights can compete as epoch 0; these zero the output layers, so they validate differently
    candidate = {k: torch.zeros_like(v) if ".head." in k else v.clone() for k, v in net.state_dict().items()}
    if resume:
        torch.manual_seed(12345)  # a fresh process would not share the RNG state either

    def on_epoch(record, state):
        if crash_after is not None and state.epoch == crash_after:
            raise Crash

    try:
        state = fit(
            net,
            head,
            train,
            cfg,
            score=score,
            better=lambda a, b: b != b or a > b,
            checkpoint_dir=tmp_path,
            resume=resume,
            fingerprint=fingerprint,
            on_epoch=on_epoch,
            start=candidate if start else None,
        )
    except Crash:
        return None, None
    return net.state_dict(), state


@pytest.mark.parametrize("start", [False, True])
def test_resume_continues_exactly(tmp_path, start):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight, state = run(tmp_path / "a", start=start)
    run(tmp_path / "b", crash_after=3, start=start)
    resumed, resumed_state = run(tmp_path / "b", resume=True, start=start)
    assert resumed_state.epoch == state.epoch == 6
    assert (resumed_state.best_epoch, resumed_state.best_score) == (state.best_epoch, state.best_score)
    assert [r["train_loss"] for r in resumed_state.history] == [r["train_loss"] for r in state.history]
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0)


def test_resume_refuses_another_pipelines_checkpoint(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    run(tmp_path, crash_after=2)
    with pytest.raises(ResumeError, match="different pipeline"):
        run(tmp_path, resume=True, fingerprint="other")


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ResumeError, match="no checkpoint"):
        run(tmp_path, resume=True)


def test_early_stopping_restores_the_best_weights(tmp_path):
    net, head, train, cfg, _ = setup(epochs=30, early_stopping=3)
    values = iter([0.5, 0.9, 0.6, 0.7, 0.8, 0.85] + [0.1] * 30)
    snapshots = []

    def score(model):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(values), 0.0

    state = fit(net, head, train, cfg, score=score, better=lambda a, b: b != b or a > b)
    assert state.best_epoch == 1 and state.epoch == 5  # stopped after 3 epochs without improvement
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, snapshots[1][key])


@pytest.mark.parametrize(("start_value", "kept"), [(0.85, 1), (0.95, -1)])
def test_a_start_competes_with_the_best_epoch_after_training(start_value, kept):
    net, head, train, cfg, _ = setup(epochs=30, early_stopping=3)
    start = {k: torch.full_like(v, 0.5) if v.is_floating_point() else v.clone() for k, v in net.state_dict().items()}
    values = iter([0.5, 0.9, 0.6, 0.7, 0.8, start_value])  # early stopping follows the epochs alone
    snapshots = []

    def score(model):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(values), 0.0

    state = fit(net, head, train, cfg, score=score, better=lambda a, b: b != b or a > b, start=start)
    assert state.epoch == 5 and state.best_epoch == kept
    assert state.best_score == (0.9 if kept == 1 else start_value)
    expected = snapshots[1] if kept == 1 else start
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, expected[key])


def test_lr_schedule_warms_up_then_decays_to_zero():
    lr_at = lr_schedule(1e-3, total_steps=100, warmup=0.1)
    lrs = [lr_at(s) for s in range(100)]
    assert lrs[0] < lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    assert lrs[-1] < 1e-6


def test_batches_cover_every_row_and_never_leave_one_alone():
    for rows, size in [(10, 3), (9, 4), (5, 8), (129, 128)]:
        batches = batch_indices(rows, size, torch.Generator().manual_seed(0))
        assert sorted(torch.cat(batches).tolist()) == list(range(rows))
        assert all(len(b) > 1 for b in batches)


def test_batch_size_one_with_batch_norm_is_a_config_error():
    from dlpipe.errors import ConfigError
    from dlpipe.spec import validate_spec

    with pytest.raises(ConfigError, match="batch_size"):
        validate_spec(tiny_config(training={"batch_size": 1}))
    assert validate_spec(tiny_config(training={"batch_size": 1}, model={"norm": "layer"}))


def test_an_undefined_metric_falls_back_to_the_validation_loss(tmp_path):
    net, head, train, cfg, _ = setup(epochs=6, early_stopping=2)
    losses = iter([0.9, 0.5, 0.7, 0.8, 0.9, 0.9])

    def score(model):
        return float("nan"), next(losses)

    state = fit(net, head, train, cfg, score=score, better=lambda a, b: b != b or a > b)
    assert state.best_epoch == 1 and state.epoch == 4


def test_auto_threads_counts_work_not_embedding_tables():
    import os

    from torch import nn

    from dlpipe.train import auto_threads

    assert auto_threads(nn.Sequential(nn.EmbeddingBag(500_000, 8), nn.Linear(8, 2))) == 1  # 4M lookups, little work
    assert auto_threads(nn.Linear(2_000, 1_000)) == max(1, os.cpu_count() or 1)
