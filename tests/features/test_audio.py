"""The audio feature type: conformance, decoding and resampling, clip length, the cache, masking."""

from __future__ import annotations

import json
import os
from pathlib import Path

import conformance
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from dlpipe.features import REGISTRY
from dlpipe.features.audio import decode, fit_length, frames_for, mel_filterbank
from dlpipe.features.audio_encoders import SpecAugment
from dlpipe.features.base import Problems
from dlpipe.spec import FeatureSpec, ModelSpec
from dlpipe.spec.models import Augment

AUDIO = REGISTRY["audio"]
SMALL = FeatureSpec(type="audio", sample_rate=8000, n_mels=16, width=4, depth=2)
NOTHING = pd.Series([], dtype=object)  # settings alone: the clip length falls back to its default


def tone(path, hz: float, seconds: float, rate: int = 8000, channels: int = 1, noise: float = 0.01) -> str:
    """A sine tone WAV (with a little noise by default, so no two files are identical); its path as text."""
    t = np.arange(round(seconds * rate)) / rate
    signal = 0.5 * np.sin(2 * np.pi * hz * t) + noise * np.random.default_rng(int(hz)).standard_normal(len(t))
    sf.write(path, np.repeat(signal[:, None], channels, axis=1) if channels > 1 else signal, rate)
    return str(path)


def spectrogram(path: str, state: dict) -> np.ndarray:
    out = AUDIO.transform_many(pd.DataFrame({"c": [path]}), {"c": state}, Problems())
    return np.asarray(out[0, 0], dtype=np.float32)


@pytest.fixture
def clips(tmp_path):
    """(training paths, later paths with bad rows, other training paths, bad row positions)."""
    train = [tone(tmp_path / f"t{i}.wav", 200 + 150 * i, 0.2 + 0.05 * (i % 3)) for i in range(6)]
    stereo = tone(tmp_path / "stereo.wav", 440, 0.3, rate=16000, channels=2)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0), 8000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really a wav file")
    later = [train[0], str(empty), stereo, str(corrupt), str(tmp_path / "missing.wav"), None, train[1]]
    other = [tone(tmp_path / f"o{i}.wav", 900 + 100 * i, 0.6) for i in range(4)]
    bad = {1, 3, 4, 5}
    return pd.Series(train, name="c"), pd.Series(later, name="c"), pd.Series(other, name="c"), bad


def test_conformance(clips):
    train, later, other, bad = clips
    conformance.run_all(AUDIO, train, later, other, spec=SMALL, bad_rows=bad, model=ModelSpec())


def test_bad_files_give_zeros_and_clear_reasons(clips):
    train, later, _, bad = clips
    state = AUDIO.fit(train, SMALL)
    problems = Problems()
    out = AUDIO.transform_many(later.to_frame("clip"), {"clip": state}, problems)
    assert out.shape == (len(later), 1, 16, frames_for(state))
    for row in bad:
        assert not np.asarray(out[row]).any()
    assert np.asarray(out[2]).any()  # the stereo 16 kHz file is fine
    reasons = {p["row"]: p["reason"] for p in problems.listed}
    assert reasons[1] == "empty audio file (0 samples)"
    assert reasons[3].startswith("unreadable audio file")
    assert reasons[4] == "file not found"
    assert reasons[5] == "missing value"
    assert all(p["column"] == "clip" for p in problems.listed)


def test_fit_state(clips):
    train, *_ = clips
    state = AUDIO.fit(train, None)
    assert state["sample_rate"] == 16000 and state["n_mels"] == 64
    assert state["window"] == 400 and state["hop"] == 160  # 25 ms and 10 ms
    assert state["duration"] == pytest.approx(0.3)  # 95th percentile of 0.2 / 0.25 / 0.3 s clips
    assert state["augment"] == {"time_mask": 0.1, "freq_mask": 0.15}
    assert AUDIO.fit(train, FeatureSpec(type="audio", augment=False))["augment"] is None
    custom = AUDIO.fit(train, FeatureSpec(type="audio", augment=Augment(time_mask=0.3), duration=2.0))
    assert custom["augment"]["time_mask"] == 0.3 and custom["duration"] == 2.0
    unreadable = AUDIO.fit(pd.Series([None, "/no/such/file.wav"]), None)
    assert unreadable["duration"] == 1.0  # a default, not a failure
    json.dumps(state)


def test_mel_filterbank_has_no_empty_band():
    for rate, mels in [(8000, 40), (16000, 64), (16000, 128), (44100, 128)]:
        state = AUDIO.fit(NOTHING, FeatureSpec(type="audio", sample_rate=rate, n_mels=mels))
        bank = mel_filterbank(rate, state["n_fft"], mels)
        assert bank.shape == (mels, state["n_fft"] // 2 + 1)
        assert (bank.max(axis=1) > 0).all()
        assert np.all(np.diff(bank.argmax(axis=1)) >= 0)  # bands rise in frequency


def test_tone_lands_in_the_right_band(tmp_path):
    state = AUDIO.fit(NOTHING, FeatureSpec(type="audio", sample_rate=8000, n_mels=32))
    low = spectrogram(tone(tmp_path / "low.wav", 300, 0.5), state)
    high = spectrogram(tone(tmp_path / "high.wav", 3000, 0.5), state)
    assert low.mean(axis=1).argmax() < high.mean(axis=1).argmax()
    for s in (low, high):  # normalised per clip
        assert abs(s.mean()) < 0.01 and abs(s.std() - 1) < 0.01


def test_resampling_gives_similar_spectrograms(tmp_path):
    state = AUDIO.fit(NOTHING, FeatureSpec(type="audio", sample_rate=16000, n_mels=32, duration=0.5))
    # pure tones: noise above 4 kHz would differ between the rates, and rightly so
    narrow = spectrogram(tone(tmp_path / "a.wav", 1000, 0.5, rate=8000, noise=0), state)
    wide = spectrogram(tone(tmp_path / "b.wav", 1000, 0.5, rate=16000, noise=0), state)
    assert narrow.shape == wide.shape == (32, frames_for(state))
    assert narrow.mean(axis=1).argmax() == wide.mean(axis=1).argmax()
    assert np.corrcoef(narrow.mean(axis=1), wide.mean(axis=1))[0, 1] > 0.99
    other = spectrogram(tone(tmp_path / "c.wav", 1500, 0.5, rate=16000, noise=0), state)
    assert np.abs(narrow - wide).mean() < 0.1 < np.abs(narrow - other).mean()


def test_pad_and_crop_to_the_clip_length(tmp_path):
    np.testing.assert_array_equal(fit_length(np.arange(1.0, 5.0), 8), [0, 0, 1, 2, 3, 4, 0, 0])  # centred
    np.testing.assert_array_equal(fit_length(np.arange(10.0), 4), [3, 4, 5, 6])  # the middle kept
    state = AUDIO.fit(NOTHING, FeatureSpec(type="audio", sample_rate=8000, n_mels=16, duration=1.0))
    short = spectrogram(tone(tmp_path / "short.wav", 500, 0.2), state)
    assert short.shape == (16, 101)
    energy = short.mean(axis=0)
    assert energy[:30].max() < energy[45:55].min()  # 0.2 s of tone in the middle of 1 s of silence

    # 3 s: a low tone, a high one, the low one again; 1 s is kept, the middle, read without the rest
    t = np.arange(8000) / 8000
    low, high = np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 3000 * t)
    sf.write(tmp_path / "long.wav", 0.5 * np.concatenate([low, high, low]), 8000)
    long = spectrogram(str(tmp_path / "long.wav"), state)
    bands = long.mean(axis=1)
    assert long.shape == (16, 101) and bands.argmax() >= 12  # only the high tone
    assert np.ptp(long.mean(axis=0)[5:-5]) < 0.5  # the tone fills the whole clip
    whole = fit_length(decode(str(tmp_path / "long.wav"), 8000), 8000)
    np.testing.assert_array_equal(fit_length(decode(str(tmp_path / "long.wav"), 8000, 8000), 8000), whole)


def test_second_transform_hits_the_cache_and_a_changed_file_misses(tmp_path, monkeypatch):
    from dlpipe.features import audio
    from dlpipe.features import cache as cache_module

    monkeypatch.setenv("DLPIPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cache_module, "MIN_ROWS", 1)  # these two files count as a data set
    path = tone(tmp_path / "a.wav", 440, 0.3)
    frame = pd.DataFrame({"c": [path, str(tmp_path / "gone.wav")]})
    state = AUDIO.fit(frame["c"], SMALL)
    calls = []
    real = audio._compute
    monkeypatch.setattr(audio, "_compute", lambda *a: calls.append(1) or real(*a))

    first_problems, second_problems = Problems(), Problems()
    first = AUDIO.transform_many(frame, {"c": state}, first_problems)
    second = AUDIO.transform_many(frame, {"c": state}, second_problems)
    assert len(calls) == 1
    np.testing.assert_array_equal(first, second)
    assert second_problems.rows == first_problems.rows == {1: "c: file not found"}  # problems come back too

    AUDIO.transform_many(frame, {"c": {**state, "augment": None, "width": 64}}, Problems())
    assert len(calls) == 1  # encoder settings do not change the spectrogram
    tone(tmp_path / "a.wav", 880, 0.3)
    os.utime(path, ns=(1, 1))  # a new modification time even on coarse file systems
    changed = AUDIO.transform_many(frame, {"c": state}, Problems())
    assert len(calls) == 2
    assert not np.array_equal(changed, first)


def test_masking_only_in_training_mode():
    x = torch.randn(8, 1, 20, 50) + 5  # no zeros of its own
    masks = SpecAugment(time_mask=0.2, freq_mask=0.2)
    masks.train()
    torch.manual_seed(0)
    masked = masks(x)
    zeroed = masked == 0
    assert zeroed.any()
    assert zeroed.float().mean() < 0.6
    # a mask covers whole rows (bands) or whole columns (frames), at most 2 x 20% of them each
    cols = zeroed[:, 0].all(dim=1).sum(dim=1)  # fully masked frames per clip
    rows = zeroed[:, 0].all(dim=2).sum(dim=1)  # fully masked bands per clip
    assert (cols <= 2 * 10).all() and (rows <= 2 * 4).all()
    assert torch.equal(zeroed[:, 0], _lines(zeroed[:, 0]))
    torch.manual_seed(0)
    assert torch.equal(masks(x), masked)  # the global RNG drives it: seeded, it repeats
    assert not torch.equal(masks(x), masked)
    masks.eval()
    assert torch.equal(masks(x), x)


def _lines(zeroed: torch.Tensor) -> torch.Tensor:
    """The union of the fully zeroed rows and columns: what masking alone would zero."""
    return zeroed.all(dim=2, keepdim=True) | zeroed.all(dim=1, keepdim=True)


def test_encoder_shapes_and_augment_off(clips):
    train, *_ = clips
    state = AUDIO.fit(train, FeatureSpec(type="audio", sample_rate=8000, n_mels=8, width=4, depth=5, augment=False))
    encoder = AUDIO.encoder([state], ModelSpec())
    assert isinstance(encoder.augment, torch.nn.Identity)
    batch = torch.from_numpy(np.ascontiguousarray(AUDIO.transform(train, state)))
    assert batch.dtype == torch.float16
    encoder.train()
    assert encoder(batch).shape == (len(train), encoder.out_dim) == (len(train), 4 * 8)  # width x 2^3, capped


def test_other_encoders_are_refused():
    from dlpipe.errors import ConfigError

    with pytest.raises(ConfigError, match="cnn"):
        AUDIO.fit(pd.Series(["a.wav"], name="clip"), FeatureSpec(type="audio", encoder="transformer"))


def test_recordings_sent_as_bytes_decode_like_the_files_and_are_never_cached(clips, tmp_path, monkeypatch):
    monkeypatch.setenv("DLPIPE_CACHE", str(tmp_path / "served"))
    train, _, _, _ = clips
    state = AUDIO.fit(train, SMALL)
    paths = pd.Series(list(train) * 6, name="c")  # 36 rows: over the caching threshold
    content = paths.map(lambda p: Path(p).read_bytes())
    problems = Problems()
    from_bytes = AUDIO.transform_many(content.to_frame(), {"c": state}, problems)
    assert not problems.rows and not list((tmp_path / "served").rglob("*.npy"))
    np.testing.assert_array_equal(from_bytes, AUDIO.transform_many(paths.to_frame(), {"c": state}, Problems()))
    bad = pd.Series([b"RIFF garbage", b"", content[0]], name="c")
    problems = Problems()
    out = AUDIO.transform_many(bad.to_frame(), {"c": state}, problems)
    assert set(problems.rows) == {0, 1} and "0 bytes" in problems.rows[1]
    assert not out[:2].any() and out[2].any()
