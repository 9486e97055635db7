"""The network: one encoder per feature type, concatenated, an MLP body, and a task head."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from dlpipe import features
from dlpipe.prepare.preprocessor import Preprocessor

if TYPE_CHECKING:
    from dlpipe.spec import ModelSpec


class Member(nn.Module):
    """One ensemble member: an MLP body with a linear head, plus an optional linear skip path."""

    def __init__(self, width: int, outputs: int, spec: ModelSpec) -> None:
        super().__init__()
        # The skip path maps the encoded inputs straight to the output: with numeric embeddings it
        # is a learned per-feature shape function (a GAM), a strong low-variance model on small
        # tables; the MLP body adds the interactions.
        self.skip = nn.Linear(width, outputs) if spec.skip else None
        norm = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}.get(spec.norm)
        blocks: list[nn.Module] = []
        for _ in range(spec.layers):
            blocks += [nn.Linear(width, spec.hidden), norm(spec.hidden) if norm else nn.Identity(), nn.GELU()]
            blocks += [nn.Dropout(spec.dropout)] if spec.dropout else []
            width = spec.hidden
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(width, outputs)
        if self.skip is not None:
            # start as the additive model; the body's share grows only as far as it helps
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.body(x))
        return out + self.skip(x) if self.skip is not None else out


class Net(nn.Module):
    """Encoders per feature type -> concatenation -> `ensemble` members; logits (batch, members, outputs).

    Members share the encoders and are trained together, each on its own loss; predictions average
    them. On small tables this cuts the variance of a single network markedly.
    """

    def __init__(self, preprocessor: Preprocessor, spec: ModelSpec) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(
            {
                kind: features.get(kind).encoder([c.state for c in cols], spec)
                for kind, cols in preprocessor.by_type().items()
            }
        )
        width = sum(e.out_dim for e in self.encoders.values())
        self.members = nn.ModuleList(Member(width, preprocessor.n_outputs, spec) for _ in range(spec.ensemble))

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        x = torch.cat([encoder(inputs[kind]) for kind, encoder in self.encoders.items()], dim=1)
        return torch.stack([member(x) for member in self.members], dim=1)


class Head:
    """The loss and the output transform of one kind of target."""

    KINDS = ("binary", "multiclass", "regression")

    def __init__(self, kind: str) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown head {kind!r}; expected one of {self.KINDS}")
        self.kind = kind

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
        """Mean over the ensemble members of each member's loss; logits are (batch, members, outputs)."""
        if self.kind == "multiclass":
            return F.cross_entropy(logits.flatten(0, 1), y.repeat_interleave(logits.shape[1]))
        target = y[:, None].expand(-1, logits.shape[1])
        if self.kind == "binary":
            return F.binary_cross_entropy_with_logits(logits[..., 0], target)
        return F.mse_loss(logits[..., 0], target)

    def output(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities (rows sum to 1) or standardised values, averaged over the members."""
        if self.kind == "binary":
            p = torch.sigmoid(logits[..., 0]).mean(1)
            return torch.stack([1 - p, p], dim=1)
        if self.kind == "multiclass":
            return torch.softmax(logits, dim=-1).mean(1)
        return logits[..., 0].mean(1)
