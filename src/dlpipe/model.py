"""The network: one encoder per feature type, concatenated, an MLP body, and a task head."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
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
    """Encoders per input group -> combiner -> `ensemble` members; logits (batch, members, outputs).

    Members share the encoders and are trained together, each on its own loss; predictions average
    them. On small tables this cuts the variance of a single network markedly.
    """

    def __init__(self, preprocessor: Preprocessor, spec: ModelSpec) -> None:
        super().__init__()
        groups = preprocessor.groups()
        # a list, not a dict keyed by group: column names may hold characters module names may not
        self.keys = list(groups)
        self.encoders = nn.ModuleList(
            features.get(cols[0].type).encoder([c.state for c in cols], spec) for cols in groups.values()
        )
        self.combiner = make_combiner(spec, [e.out_dim for e in self.encoders])
        width = self.combiner.out_dim
        self.members = nn.ModuleList(Member(width, preprocessor.n_outputs, spec) for _ in range(spec.ensemble))
        # a closed-form fit wants table columns side by side: rich inputs' encoders are random until trained
        rich = any(features.get(cols[0].type).per_column for cols in groups.values())
        self.tabular = spec.combiner == "concat" and not rich

    @torch.no_grad()
    def linear_state(self, inputs: dict[str, torch.Tensor], y: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """This network's weights with every skip path set to a ridge fit of `y` on the encoded `inputs`
        (alpha by leave-one-out, as RidgeCV) and every MLP output layer at zero: loaded, the network
        predicts exactly what the ridge does. The network itself is left as it was.

        None for inputs other than tables, without a skip path, or with more than one output.
        """
        from dlpipe.ridge import MAX_ROWS, MAX_WIDTH, fit_ridge

        if not self.tabular or any(m.skip is None or m.skip.out_features != 1 for m in self.members):
            return None
        # a seeded sample, not the first rows: files are often sorted (by target, by time)
        rows = torch.from_numpy(np.sort(np.random.default_rng(0).permutation(len(y))[:MAX_ROWS]))
        was_training = self.training
        self.eval()
        x = self.combiner([enc(inputs[k][rows]) for k, enc in zip(self.keys, self.encoders, strict=True)])
        self.train(was_training)
        if x.shape[1] > MAX_WIDTH:
            return None
        fit = fit_ridge(x.double().numpy(), y[rows].double().numpy())
        state = {k: v.detach().clone() for k, v in self.state_dict().items()}
        for i in range(len(self.members)):
            state[f"members.{i}.skip.weight"] = torch.from_numpy(fit.coef.T).float()
            state[f"members.{i}.skip.bias"] = torch.from_numpy(fit.intercept).float()
            state[f"members.{i}.head.weight"].zero_()
            state[f"members.{i}.head.bias"].zero_()
        return state

    def parameter_counts(self) -> dict[str, int]:
        """Parameters by part: each input group's encoder, the combiner, the heads (ensemble members)."""

        def count(module: nn.Module) -> int:
            return sum(p.numel() for p in module.parameters())

        parts = {f"encoder {k}": count(e) for k, e in zip(self.keys, self.encoders, strict=True)}
        return parts | {"combiner": count(self.combiner), "heads": count(self.members), "total": count(self)}

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.combiner([encoder(inputs[key]) for key, encoder in zip(self.keys, self.encoders, strict=True)])
        return torch.stack([member(x) for member in self.members], dim=1)


class Concat(nn.Module):
    """The encoders' outputs side by side."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.out_dim = sum(dims)

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(parts, dim=1)


class TransformerCombiner(nn.Module):
    """Each encoder's output becomes one token; a small transformer lets the inputs attend to each
    other (an image to the table columns beside it) before the tokens are concatenated."""

    def __init__(self, dims: list[int], width: int = 64, layers: int = 2, heads: int = 4) -> None:
        super().__init__()
        self.project = nn.ModuleList(nn.Linear(d, width) for d in dims)
        self.kind = nn.Parameter(torch.randn(len(dims), width) * 0.02)  # which input a token came from
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.1, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out_dim = width * len(dims)

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        tokens = torch.stack([p(x) for p, x in zip(self.project, parts, strict=True)], dim=1) + self.kind
        return self.body(tokens).flatten(1)


def make_combiner(spec: ModelSpec, dims: list[int]) -> nn.Module:
    if spec.combiner == "transformer":
        return TransformerCombiner(dims)
    return Concat(dims)


class Head:
    """The loss and the output transform of one kind of target."""

    KINDS = ("binary", "multiclass", "regression")

    def __init__(self, kind: str, temperature: float = 1.0) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown head {kind!r}; expected one of {self.KINDS}")
        self.kind = kind
        # classification logits are divided by it before the probabilities (temperature scaling,
        # fitted on validation by dlpipe.decide); training always runs at 1
        self.temperature = temperature

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
        if self.kind != "regression" and self.temperature != 1.0:
            logits = logits / self.temperature
        if self.kind == "binary":
            p = torch.sigmoid(logits[..., 0]).mean(1)
            return torch.stack([1 - p, p], dim=1)
        if self.kind == "multiclass":
            return torch.softmax(logits, dim=-1).mean(1)
        return logits[..., 0].mean(1)
