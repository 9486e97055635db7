"""The network pieces of the tabular feature types (imported only when a model is built)."""

from __future__ import annotations

import torch
from torch import nn


class NumericEmbedding(nn.Module):
    """Per-feature linear embedding of (value, missing flag) followed by ReLU (Gorishniy et al. 2022).

    With `dim == 0` the scaled values and flags are passed through unchanged.
    """

    def __init__(self, n_features: int, dim: int) -> None:
        super().__init__()
        self.dim = dim
        if dim:
            self.weight = nn.Parameter(torch.randn(n_features, 2, dim) / 2**0.5)
            self.bias = nn.Parameter(torch.zeros(n_features, dim))
        self.out_dim = n_features * (dim or 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.dim:
            return x.flatten(1)
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
