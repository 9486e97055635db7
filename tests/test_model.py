"""The network: encoders per type, ensemble members, the zero-initialised body over a skip path."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import tiny_config
from dlpipe.model import Head, Net
from dlpipe.pipeline import Pipeline
from dlpipe.spec import ModelSpec


@pytest.fixture(scope="module")
def prepared():
    return Pipeline.from_dict(tiny_config()).prepare()


def inputs(prepared, rows=5):
    return {k: torch.from_numpy(v[:rows]) for k, v in prepared.splits["train"].inputs.items()}


@pytest.mark.parametrize("members", [1, 3])
def test_logits_have_a_member_axis_and_outputs_average_them(prepared, members):
    net = Net(prepared.preprocessor, ModelSpec(ensemble=members, hidden=16))
    logits = net(inputs(prepared))
    assert logits.shape == (5, members, 3)
    proba = Head("multiclass").output(logits)
    torch.testing.assert_close(proba.sum(1), torch.ones(5))


def test_body_starts_silent_so_training_starts_from_the_additive_model(prepared):
    net = Net(prepared.preprocessor, ModelSpec(hidden=16)).eval()
    member = net.members[0]
    x = torch.cat([enc(inputs(prepared)[k]) for k, enc in zip(net.keys, net.encoders, strict=True)], dim=1)
    torch.testing.assert_close(net(inputs(prepared))[:, 0], member.skip(x))


def test_without_skip_the_body_is_the_model(prepared):
    net = Net(prepared.preprocessor, ModelSpec(skip=False, hidden=16))
    assert net.members[0].skip is None
    assert net(inputs(prepared)).abs().sum() > 0


@pytest.mark.parametrize(
    ("kind", "y", "width"),
    [
        ("binary", torch.tensor([0.0, 1.0]), 1),
        ("multiclass", torch.tensor([0, 2]), 3),
        ("regression", torch.tensor([0.5, -1.0]), 1),
    ],
)
def test_head_losses_match_torch(kind, y, width):
    logits = torch.randn(2, 1, width)
    loss = Head(kind).loss(logits, y)
    reference = {
        "binary": lambda: torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0, 0], y),
        "multiclass": lambda: torch.nn.functional.cross_entropy(logits[:, 0], y),
        "regression": lambda: torch.nn.functional.mse_loss(logits[:, 0, 0], y),
    }[kind]()
    torch.testing.assert_close(loss, reference)


def test_unknown_head_is_refused():
    with pytest.raises(ValueError, match="unknown head"):
        Head("ranking")


def _mixed_frame(rows: int = 240):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    when = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365 * 24, rows), unit="h")
    frame = pd.DataFrame(
        {
            "amount": rng.normal(size=rows),
            "shop": rng.choice(["north", "south", "east"], rows),
            "opened": when.strftime("%Y-%m-%d %H:%M"),
        }
    )
    frame["target"] = np.where((frame["amount"] > 0) ^ (when.day_of_week >= 5), "yes", "no")
    return frame


@pytest.mark.parametrize("combiner", ["concat", "transformer"])
def test_combiners_take_every_input_group_and_learn(combiner, tmp_path):
    frame = _mixed_frame()
    config = tiny_config(model={"combiner": combiner}, training={"epochs": 40, "learning_rate": 0.003})
    del config["data"]
    result = Pipeline.from_dict(config, data=frame).run(tmp_path)
    columns = json.loads((result.model_folder / "model.json").read_text())["preprocessor"]["columns"]
    assert {c["type"] for c in columns} == {"numeric", "category", "datetime"}
    assert result.metrics["validation"]["accuracy"] > 0.75  # the weekend flip needs the datetime input


def test_transformer_combiner_makes_one_token_per_input_group(prepared):
    net = Net(prepared.preprocessor, ModelSpec(combiner="transformer", hidden=16))
    assert len(net.combiner.project) == len(net.encoders)
    assert net(inputs(prepared)).shape == (5, 1, 3)
