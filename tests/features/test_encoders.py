"""The tabular encoders' network pieces: the numeric embeddings, linear and periodic (PLR)."""

from __future__ import annotations

import math

import pytest
import torch

from dlpipe.features.encoders import FREQUENCIES, NumericEmbedding


def pairs(values: torch.Tensor, missing: torch.Tensor | None = None) -> torch.Tensor:
    """(rows, features) values as the numeric type's (value, missing flag) pairs."""
    flags = torch.zeros_like(values) if missing is None else missing
    return torch.stack([values, flags], dim=-1)


@pytest.mark.parametrize("kind", ["linear", "periodic"])
def test_each_feature_gets_its_own_embedding_of_the_given_size(kind):
    torch.manual_seed(0)
    embedding = NumericEmbedding(3, 8, kind)
    x = pairs(torch.randn(5, 3))
    out = embedding(x)
    assert out.shape == (5, 3 * 8) == (5, embedding.out_dim)
    assert (out >= 0).all()  # ReLU
    changed = x.clone()
    changed[:, 1, 0] += 1.0  # the second feature only
    moved = (embedding(changed) - out).abs().reshape(5, 3, 8).sum((0, 2))
    assert moved[0] == 0 and moved[2] == 0 and moved[1] > 0


def test_the_periodic_kind_trains_its_frequencies_and_reads_the_missing_flag():
    torch.manual_seed(0)
    embedding = NumericEmbedding(2, 4, "periodic")
    assert embedding.frequencies.shape == (2, FREQUENCIES)
    values = torch.randn(6, 2)
    flagged = pairs(values, torch.tensor([[1.0, 0.0]] * 6))
    assert not torch.equal(embedding(flagged), embedding(pairs(values)))
    embedding(flagged).sum().backward()
    assert embedding.frequencies.grad is not None and embedding.frequencies.grad.abs().sum() > 0


def test_periodic_embeddings_fit_a_wavy_function_a_linear_embedding_cannot():
    """What they are for: y = sin(3x) through one small layer after each embedding."""
    x = torch.linspace(-3, 3, 256)[:, None]
    y = torch.sin(3 * x[:, 0])
    errors = {}
    for kind in ("linear", "periodic"):
        torch.manual_seed(0)
        model = torch.nn.Sequential(NumericEmbedding(1, 16, kind), torch.nn.Linear(16, 1))
        optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
        for _ in range(100):
            loss = torch.nn.functional.mse_loss(model(pairs(x))[:, 0], y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        errors[kind] = loss.item()
    assert errors["periodic"] < 0.1 * errors["linear"]
    assert errors["linear"] > 0.2  # sin(3x) has variance ~0.5: a ReLU of 16 linear pieces leaves much of it
    assert math.isfinite(errors["periodic"])
