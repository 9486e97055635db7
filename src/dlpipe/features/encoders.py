"""The network pieces of the tabular feature types (imported only when a model is built)."""

from __future__ import annotations

import math

import torch
from torch import nn

FREQUENCIES = 16  # sin/cos pairs per feature of the periodic embedding
PERIODIC_SCALE = 0.1  # standard deviation of the initial frequencies (0.1 beat 1 and 0.03: benchmarks/README.md)


class NumericEmbedding(nn.Module):
    """Per-feature embeddings of (value, missing flag), each followed by ReLU (Gorishniy et al. 2022).

    `linear`: a linear map of the pair. `periodic` (PLR): the value's sin and cos at `FREQUENCIES`
    trainable frequencies per feature (drawn from N(0, `PERIODIC_SCALE`)), with the flag, through a
    per-feature linear layer. With `dim == 0` the scaled values and flags are passed through unchanged.
    """

    def __init__(self, n_features: int, dim: int, kind: str = "linear") -> None:
        super().__init__()
        self.dim, self.kind = dim, kind
        if dim:
            inputs = 2
            if kind == "periodic":
                self.frequencies = nn.Parameter(torch.randn(n_features, FREQUENCIES) * PERIODIC_SCALE)
                inputs = 2 * FREQUENCIES + 1
            self.weight = nn.Parameter(torch.randn(n_features, inputs, dim) / inputs**0.5)
            self.bias = nn.Parameter(torch.zeros(n_features, dim))
        self.out_dim = n_features * (dim or 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.dim:
            return x.flatten(1)
        if self.kind == "periodic":
            angle = 2 * math.pi * self.frequencies * x[..., :1]  # (batch, features, frequencies)
            x = torch.cat([torch.cos(angle), torch.sin(angle), x[..., 1:]], dim=-1)
        return torch.relu(torch.einsum("bnk,nkd->bnd", x, self.weight) + self.bias).flatten(1)


def embedding_size(cardinality: int) -> int:
    """fastai's rule of thumb: grows slowly with the number of levels, capped at 32."""
    return int(min(32, round(1.6 * cardinality**0.56)))


class CategoryEmbedding(nn.Module):
    """One embedding table per category column, outputs concatenated."""

    def __init__(self, cardinalities: list[int], dim: int | None) -> None:
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(c, dim or embedding_size(c)) for c in cardinalities)
        self.out_dim = sum(t.embedding_dim for t in self.tables)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([table(x[:, i]) for i, table in enumerate(self.tables)], dim=1)


class Flatten(nn.Module):
    """Passes already-numeric inputs through as one vector per row."""

    def __init__(self, out_dim: int) -> None:
        super().__init__()
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)
