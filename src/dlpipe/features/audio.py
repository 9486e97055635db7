"""Audio clips: file paths decoded to fixed-length, per-clip normalised log-mel spectrograms.

Each value is a path to a sound file (WAV, FLAC, OGG). A clip is decoded with soundfile, mixed to
mono, resampled to the fitted rate, then padded or cropped to the fitted length: a shorter clip is
centred in silence, a longer one keeps its middle (speech and events are rarely at the very edge,
and the middle of a long clip is the least arbitrary part). The spectrogram uses a 25 ms Hann
window and a 10 ms hop, an HTK mel filterbank, a log floor 80 dB below the clip's peak, and zero
mean and unit variance per clip (so recording level does not matter). Results go through the
decoded-file cache, so later epochs and runs do not decode again.

Heavy imports (soundfile, scipy) happen inside functions: `dlpipe --help` must stay fast.
"""

from __future__ import annotations

import io
import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlpipe.features.base import FeatureType, Problems

if TYPE_CHECKING:
    from dlpipe.features.audio_encoders import AudioEncoder
    from dlpipe.spec import FeatureSpec, ModelSpec

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
VERSION = "audio-1"  # part of the cache key: bump when the transform's output changes
DEFAULT_RATE = 16_000
DEFAULT_MELS = 64
DEFAULT_WIDTH = 32
DEFAULT_DEPTH = 3
WINDOW_SECONDS = 0.025
HOP_SECONDS = 0.010
DURATION_QUANTILE = 95  # clips longer than this share of the training clips are cropped
MAX_DURATION = 30.0  # seconds: a few very long files must not make every clip huge
DEFAULT_DURATION = 1.0  # when no training clip can be read
FIT_SAMPLE = 500  # training files whose headers fit() reads for the clip length
TOP_DB = 80.0
DTYPE = "float16"  # normalised values lie within a few units of zero: half precision halves memory and cache


class Audio(FeatureType):
    name = "audio"
    dtype = DTYPE
    per_column = True
    options = frozenset({"sample_rate", "n_mels", "duration", "augment", "width", "depth", "encoder"})

    def fit(self, column: pd.Series, spec: FeatureSpec | None) -> dict[str, Any]:
        """Spectrogram and encoder settings; the clip length, unless given, from the training files' headers."""
        if spec is not None and spec.encoder not in (None, "cnn"):
            from dlpipe.errors import ConfigError

            raise ConfigError(
                f"audio columns use the cnn encoder; received {spec.encoder!r}",
                where=f"features.{column.name}.encoder",
                fix="remove `encoder:` or set it to cnn",
            )
        rate = int(spec.sample_rate) if spec and spec.sample_rate else DEFAULT_RATE
        n_mels = int(spec.n_mels) if spec and spec.n_mels else DEFAULT_MELS
        if spec and spec.duration:
            duration, source = float(spec.duration), "spec"
        else:
            duration, source = _fitted_duration(column), "data"
        window = round(WINDOW_SECONDS * rate)
        return {
            "sample_rate": rate,
            "n_mels": n_mels,
            "duration": duration,
            "duration_from": source,
            "samples": round(duration * rate),
            "window": window,
            "hop": round(HOP_SECONDS * rate),
            "n_fft": _n_fft(window, rate, n_mels),
            "augment": _augment(spec),
            "width": int(spec.width) if spec and spec.width else DEFAULT_WIDTH,
            "depth": int(spec.depth) if spec and spec.depth else DEFAULT_DEPTH,
        }

    def transform(self, column: pd.Series, state: dict[str, Any]) -> np.ndarray:
        """(rows, 1, n_mels, frames) spectrograms; unusable values become zeros (see transform_many)."""
        return self.transform_many(column.to_frame("audio"), {"audio": state})

    def transform_many(
        self, frame: pd.DataFrame, states: dict[str, dict], problems: Problems | None = None
    ) -> np.ndarray:
        """One column's spectrograms, (rows, 1, n_mels, frames), from the cache when the files are unchanged."""
        from dlpipe.features.cache import cached_array, file_identity, holds_bytes

        problems = problems if problems is not None else Problems()
        ((name, state),) = states.items()  # per-column type: exactly one column
        paths = list(frame[name])
        if holds_bytes(paths):  # recordings sent to the server: decoded, never cached
            array, meta = _compute(paths, state)
        else:
            key = [file_identity(paths), _settings(state), VERSION]
            array, meta = cached_array("audio", key, lambda: _compute(paths, state), rows=len(paths))
        for row, value, reason in meta["problems"]:
            problems.add(int(row), str(name), value, reason)
        return array

    def encoder(self, states: list[dict[str, Any]], model: ModelSpec) -> AudioEncoder:
        from dlpipe.features.audio_encoders import AudioEncoder

        (state,) = states
        return AudioEncoder(state["n_mels"], state["width"], state["depth"], state["augment"])


def frames_for(state: dict[str, Any]) -> int:
    """Spectrogram frames per clip: the STFT is centred, so one frame per hop plus one."""
    return 1 + state["samples"] // state["hop"]


def _settings(state: dict[str, Any]) -> dict[str, Any]:
    """The state keys the spectrogram depends on (the encoder's do not invalidate the cache)."""
    return {k: state[k] for k in ("sample_rate", "n_mels", "samples", "window", "hop", "n_fft")}


def _augment(spec: FeatureSpec | None) -> dict[str, float] | None:
    """Masking settings: on with the defaults unless `augment: false`."""
    from dlpipe.spec.models import Augment

    given = spec.augment if spec else None
    if given is False:
        return None
    chosen = given if isinstance(given, Augment) else Augment()
    return {"time_mask": chosen.time_mask, "freq_mask": chosen.freq_mask}


def _fitted_duration(column: pd.Series) -> float:
    """A high percentile of the training clips' durations (headers only), rounded up to a hop."""
    import soundfile as sf

    paths = sorted({v for v in column.dropna() if isinstance(v, str) and v})
    if len(paths) > FIT_SAMPLE:  # evenly spaced over the sorted paths: deterministic, no RNG
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, FIT_SAMPLE).round().astype(int)]
    durations = []
    for path in paths:
        try:
            info = sf.info(path)
        except Exception:  # unreadable or missing: transform reports it; fit just skips it
            continue
        if info.frames > 0 and info.samplerate > 0:
            durations.append(info.frames / info.samplerate)
    if not durations:
        return DEFAULT_DURATION
    seconds = float(np.percentile(durations, DURATION_QUANTILE))
    return min(MAX_DURATION, max(HOP_SECONDS, math.ceil(seconds / HOP_SECONDS - 1e-9) * HOP_SECONDS))


def _n_fft(window: int, rate: int, n_mels: int) -> int:
    """A power of two at least the window, and fine enough that the lowest mel band spans an FFT bin
    (a band narrower than a bin would be empty)."""
    lowest_band = _mel_to_hz(_hz_to_mel(rate / 2) / (n_mels + 1))
    need = max(window, math.ceil(rate / lowest_band))
    return 1 << (need - 1).bit_length()


def _hz_to_mel(hz: Any) -> Any:
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)  # HTK


def _mel_to_hz(mel: Any) -> Any:
    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


def mel_filterbank(rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular HTK mel filters from 0 Hz to Nyquist, peak 1."""
    bins = np.linspace(0, rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(0, _hz_to_mel(rate / 2), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def log_mel(signal: np.ndarray, state: dict[str, Any], bank: np.ndarray) -> np.ndarray:
    """(n_mels, frames) per-clip normalised log-mel spectrogram of a fixed-length mono signal."""
    n_fft, hop, window = state["n_fft"], state["hop"], state["window"]
    padded = np.pad(signal, n_fft // 2)  # centred frames: frame t is around sample t * hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][: frames_for(state)]
    taper = np.zeros(n_fft)
    start = (n_fft - window) // 2  # the window zero-padded to n_fft, centred as librosa does
    taper[start : start + window] = np.hanning(window + 1)[:-1]  # periodic Hann
    power = np.abs(np.fft.rfft(frames * taper, axis=1)) ** 2
    mel = np.log(np.maximum(bank @ power.T, 1e-10))
    mel = np.maximum(mel, mel.max() - TOP_DB * math.log(10) / 10)  # silence floors at -80 dB, not -inf
    spread = mel.std()
    return (mel - mel.mean()) / spread if spread > 1e-6 else np.zeros_like(mel)


def fit_length(signal: np.ndarray, samples: int) -> np.ndarray:
    """Exactly `samples` samples: a shorter signal centred in zeros, a longer one cut to its middle."""
    n = len(signal)
    if n >= samples:
        start = (n - samples) // 2
        return signal[start : start + samples]
    before = (samples - n) // 2
    return np.pad(signal, (before, samples - n - before))


def decode(path: str | bytes, rate: int, samples: int | None = None) -> np.ndarray:
    """A file (or its content, as bytes) as mono float64 at `rate`; raises ValueError with a reason
    a person can act on.

    With `samples`, a longer file is read only around its middle (what `fit_length` keeps), so an
    hour-long recording costs no more than a clip.
    """
    import soundfile as sf
    from scipy.signal import resample_poly

    if isinstance(path, bytes):
        if not path:
            raise ValueError("empty audio data (0 bytes)")
        source: Any = io.BytesIO(path)
    elif not os.path.isfile(path):
        raise ValueError("file not found")
    else:
        source = path
    try:
        with sf.SoundFile(source) as f:
            source_rate, available = int(f.samplerate), f.frames
            need = available if samples is None else math.ceil(samples * source_rate / rate) + 2
            if available > need:
                f.seek((available - need) // 2)
            data = f.read(min(need, available), dtype="float32", always_2d=True)
    except Exception as error:  # libsndfile's errors vary by format and version
        raise ValueError(f"unreadable audio file ({str(error).strip() or type(error).__name__})") from None
    if data.shape[0] == 0:
        raise ValueError("empty audio file (0 samples)")
    signal = np.nan_to_num(data.mean(axis=1).astype(np.float64))
    if source_rate != rate:
        common = math.gcd(source_rate, rate)
        signal = resample_poly(signal, rate // common, source_rate // common)
    return signal


def _is_missing(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or array: present, just not a path
        return False


def _compute(paths: list[Any], state: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """Spectrograms for every path (zeros for unusable ones) and the problems found."""
    bank = mel_filterbank(state["sample_rate"], state["n_fft"], state["n_mels"])
    out = np.zeros((len(paths), 1, state["n_mels"], frames_for(state)), dtype=DTYPE)
    found: list[list[Any]] = []
    done: dict[str, int] = {}  # path -> first row: a file listed twice is decoded once
    for row, value in enumerate(paths):
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if isinstance(value, bytearray | memoryview):
            value = bytes(value)
        if isinstance(value, bytes):  # a recording sent to the server
            try:
                signal = fit_length(decode(value, state["sample_rate"], state["samples"]), state["samples"])
            except ValueError as error:
                found.append([row, f"<{len(value)} bytes>", str(error)])
                continue
            out[row, 0] = log_mel(signal, state, bank)
            continue
        if not isinstance(value, str) or not value.strip():
            reason = "missing value" if _is_missing(value) else f"not a file path ({type(value).__name__})"
            found.append([row, str(value), reason])
            continue
        if value in done:
            out[row] = out[done[value]]
            found += [[row, value, r] for first, _, r in found if first == done[value]]
            continue
        done[value] = row
        try:
            signal = fit_length(decode(value, state["sample_rate"], state["samples"]), state["samples"])
        except ValueError as error:
            found.append([row, value, str(error)])
            continue
        out[row, 0] = log_mel(signal, state, bank)
    return out, {"problems": found}
