"""The network pieces of the text feature type (imported only when a model is built).

Token encoders take (batch, tokens) int64 ids with [PAD] = 0 and ignore the padding: an empty
text encodes to zeros, and padding never moves a result. `SentenceEmbedding` takes the frozen
384-d sentence embeddings the `minilm` transform computed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

PAD = 0


class BagOfTokens(nn.Module):
    """The mean of the token (and word-pair) embeddings, padding ignored: fastText (Joulin et al. 2017).

    In training, each token is dropped with probability `word_dropout` (Iyyer et al. 2015): the
    bag then cannot lean on a few words seen in training, which it otherwise memorises in a few epochs.
    """

    def __init__(self, vocab_size: int, dim: int, word_dropout: float = 0.0) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab_size, dim, mode="mean", padding_idx=PAD)
        nn.init.normal_(self.bag.weight, std=dim**-0.5)
        with torch.no_grad():
            self.bag.weight[PAD].zero_()
        self.word_dropout = word_dropout
        self.out_dim = dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.training and self.word_dropout:
            ids = ids.masked_fill(torch.rand(ids.shape, device=ids.device) < self.word_dropout, PAD)
        return self.bag(ids)


class KimCNN(nn.Module):
    """Convolutions of widths 3, 4, 5 over the token embeddings, ReLU, max over time (Kim 2014)."""

    def __init__(self, vocab_size: int, dim: int, widths: tuple[int, ...] = (3, 4, 5), maps: int = 100) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.convs = nn.ModuleList(nn.Conv1d(dim, maps, k, padding=k - 1) for k in widths)
        self.dropout = nn.Dropout(0.5)
        self.out_dim = maps * len(widths)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids).transpose(1, 2)  # (batch, dim, tokens)
        lengths = (ids != PAD).sum(1, keepdim=True)  # (batch, 1)
        pooled = []
        for conv in self.convs:
            h = torch.relu(conv(x))  # (batch, maps, tokens + k - 1): window t covers tokens t-k+1 .. t
            k = conv.kernel_size[0]
            # a window is valid when it overlaps the text; after ReLU, zeroing the others cannot
            # raise a maximum, and an empty text pools to zeros
            position = torch.arange(h.shape[2], device=ids.device)
            valid = ((position < lengths + k - 1) & (lengths > 0)).unsqueeze(1)
            pooled.append((h * valid).amax(dim=2))
        return self.dropout(torch.cat(pooled, dim=1))


class SmallTransformer(nn.Module):
    """Token and learned position embeddings, pre-norm transformer layers, mean over non-padding."""

    def __init__(self, vocab_size: int, max_tokens: int, width: int = 128, depth: int = 2) -> None:
        super().__init__()
        heads = next(h for h in (4, 2, 1) if width % h == 0)  # any width the spec allows
        self.embed = nn.Embedding(vocab_size, width, padding_idx=PAD)
        self.position = nn.Parameter(torch.randn(max_tokens, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.1, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.out_dim = width

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pad = ids == PAD
        # a row of padding only would attend to nothing (NaN): let it see its first position; the
        # mean below still ignores it
        pad[:, 0] &= ~pad.all(dim=1)
        h = self.embed(ids) + self.position[: ids.shape[1]]
        h = self.norm(self.body(h, src_key_padding_mask=pad))
        keep = (ids != PAD).unsqueeze(2).to(h.dtype)
        return (h * keep).sum(1) / keep.sum(1).clamp(min=1)


class SentenceEmbedding(nn.Module):
    """Frozen sentence embeddings, layer-normalised: unit-length 384-d vectors have entries of ~0.05,
    a scale the layers after it would otherwise need many steps to adapt to."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


def build(state: dict[str, Any]) -> nn.Module:
    """The encoder a fitted text state names."""
    kind = state["encoder"]
    if kind == "minilm":
        return SentenceEmbedding(state["dim"])
    vocab = state["vocab_size"] + len(state.get("bigrams") or [])
    if kind == "bag":
        return BagOfTokens(vocab, state["width"], state.get("word_dropout", 0.0))
    if kind == "cnn":
        return KimCNN(vocab, state["width"])
    if kind == "transformer":
        return SmallTransformer(vocab, state["max_tokens"], state["width"], state["depth"])
    raise ValueError(f"unknown text encoder {kind!r}")
