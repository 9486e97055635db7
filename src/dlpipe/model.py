"""The network: one encoder per feature type, concatenated, an MLP body, and a task head."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from dlpipe import features
from dlpipe.prepare.preprocessor import Preprocessor


class Net(nn.Module):
    """encoders -> concat -> [Linear, norm, GELU, dropout] x layers -> linear head."""

    def __init__(self, preprocessor: Preprocessor, spec) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict({
            kind: features.get(kind).encoder([c.state for c in cols], spec)
            for kind, cols in preprocessor.by_type().items()
        })
        width = sum(e.out_dim for e in self.encoders.values())
        blocks: list[nn.Module] = []
        for _ in range(spec.layers):
            norm = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}.get(spec.norm)
            blocks += [nn.Linear(width, spec.hidden), norm(spec.hidden) if norm else nn.Identity(), nn.GELU()]
            blocks += [nn.Dropout(spec.dropout)] if spec.dropout else []
            width = spec.hidden
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(width, preprocessor.n_outputs)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        x = torch.cat([encoder(inputs[kind]) for kind, encoder in self.encoders.items()], dim=1)
        return self.head(self.body(x))


class Head:
    """The loss and the output transform of one kind of target."""

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "binary" | "multiclass" | "regression"

    @classmethod
    def for_preprocessor(cls, preprocessor: Preprocessor) -> Head:
        classes = preprocessor.classes
        if classes is None:
            return cls("regression")
        return cls("binary" if len(classes) == 2 else "multiclass")

    @property
    def target_dtype(self) -> torch.dtype:
        return torch.long if self.kind == "multiclass" else torch.float32

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.kind == "binary":
            return F.binary_cross_entropy_with_logits(logits[:, 0], y)
        if self.kind == "multiclass":
            return F.cross_entropy(logits, y)
        return F.mse_loss(logits[:, 0], y)

    def output(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities (rows sum to 1), or the standardised regression value."""
        if self.kind == "binary":
            p = torch.sigmoid(logits[:, 0])
            return torch.stack([1 - p, p], dim=1)
        if self.kind == "multiclass":
            return torch.softmax(logits, dim=1)
        return logits[:, 0]
