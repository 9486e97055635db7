"""Images: file paths decoded with Pillow to fixed-size uint8 arrays (cached on disk), a small residual CNN.

Fit reads a sample of the training files to settle the size, the channels and the pixel
statistics; transform decodes every file once per (files, size, channels) and keeps the result in
the disk cache, so later epochs, the test split and later runs memory-map it instead. A missing,
absent or corrupt file never fails a run: it becomes zeros and a row in `Problems`.

Pillow and torch are imported inside functions: `dlpipe --help` must not pay for them.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlpipe.features.base import FeatureType, Problems

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from dlpipe.features.image_encoders import ImageEncoder
    from dlpipe.spec import FeatureSpec, ModelSpec

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
DECODE_VERSION = "image-decode-1"  # part of the cache key: bump when decoding changes its output
FIT_SAMPLE = 500  # training files read by fit (sizes, modes, pixel statistics)
MIN_SIDE, MAX_SIDE = 16, 64  # bounds of the inferred square size
DEFAULT_WIDTH = 32
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
GREY_TOLERANCE = 3.0  # mean channel spread (0..255) under which an RGB-mode image counts as grey
DECODE_THREADS = 4  # Pillow releases the GIL while decoding: threads help on large files


class Image(FeatureType):
    name = "image"
    per_column = True
    dtype = "uint8"
    options = frozenset({"size", "channels", "augment", "width", "depth", "encoder"})

    def fit(self, column: pd.Series, spec: FeatureSpec | None) -> dict[str, Any]:
        """Size, channels, pixel mean/std, augmentation and encoder settings from a sample of training files."""
        if spec is not None and spec.encoder not in (None, "cnn"):
            from dlpipe.errors import ConfigError

            raise ConfigError(
                f"image columns take encoder: cnn; received {spec.encoder!r}", where=f"features.{column.name}.encoder"
            )
        values = column.to_numpy(dtype=object)
        # evenly spaced rows: deterministic, and spread over the column when it is sorted by class
        picks = np.unique(np.linspace(0, len(values) - 1, min(FIT_SAMPLE, len(values))).round().astype(int))
        headers = {i: h for i in picks if (h := _header(values[i])) is not None}
        if not headers:
            raise _nothing_readable(column, len(picks))
        size = list(spec.size) if spec is not None and spec.size else _default_size([s for s, _ in headers.values()])
        # decode as RGB: greyscale shows as equal channels, which also catches grey photos saved as RGB
        decoded = {i: _decode(values[i], size, 3) for i in headers}
        readable = [(headers[i][1], p) for i, p in decoded.items() if isinstance(p, np.ndarray)]
        if not readable:
            raise _nothing_readable(column, len(picks))
        if spec is not None and spec.channels:
            channels = int(spec.channels)
        else:
            grey = sum(mode in GREY_MODES or _looks_grey(p) for mode, p in readable)
            channels = 1 if grey * 2 > len(readable) else 3
        stack = np.stack([p for _, p in readable]).astype(np.float64) / 255.0  # (n, 3, h, w)
        if channels == 1:
            stack = _to_grey(stack)
        mean = stack.mean(axis=(0, 2, 3))
        std = np.maximum(stack.std(axis=(0, 2, 3)), 1e-3)  # a constant channel must not divide by zero
        width = spec.width if spec is not None and spec.width else DEFAULT_WIDTH
        return {
            "size": [int(s) for s in size],
            "channels": channels,
            "mean": [round(float(m), 6) for m in mean],
            "std": [round(float(s), 6) for s in std],
            "augment": _augment(spec.augment if spec is not None else None),
            "encoder": "cnn",
            "width": int(width),
            "depth": int(spec.depth if spec is not None and spec.depth else _default_depth(size)),
            "stem_stride": _stem_stride(size),
            "sampled": len(picks),
            "unreadable_in_sample": len(picks) - len(readable),
        }

    def transform(self, column: pd.Series, state: dict[str, Any], problems: Problems | None = None) -> np.ndarray:
        """uint8 array (rows, channels, height, width), decoded once and then read from the disk cache."""
        from dlpipe.features.cache import cached_array, file_identity, holds_bytes

        values = column.to_numpy(dtype=object)
        size, channels = [int(s) for s in state["size"]], int(state["channels"])
        if holds_bytes(values):  # image content sent to the server: decoded, never cached
            array, meta = decode_many(values, size, channels)
        else:
            key = [file_identity(values), size, channels, DECODE_VERSION]
            array, meta = cached_array("images", key, lambda: decode_many(values, size, channels), rows=len(values))
        if problems is not None:
            for row, value, reason in meta["problems"]:
                problems.add(row, str(column.name), value, reason)
        return array

    def transform_many(
        self, frame: pd.DataFrame, states: dict[str, dict], problems: Problems | None = None
    ) -> np.ndarray:
        (name, state), *rest = states.items()
        if rest:
            raise ValueError("image is a per-column type: one column per call")
        return self.transform(frame[name], state, problems)

    def encoder(self, states: list[dict[str, Any]], model: ModelSpec) -> ImageEncoder:
        from dlpipe.features.image_encoders import ImageEncoder

        (state,) = states
        return ImageEncoder(
            channels=state["channels"],
            mean=state["mean"],
            std=state["std"],
            augment=state["augment"],
            width=state["width"],
            depth=state["depth"],
            stem_stride=state.get("stem_stride", 1),
        )


def decode_many(values: Sequence[Any], size: Sequence[int], channels: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Every value decoded: (uint8 array (rows, channels, h, w), {"problems": [[row, value, reason], ...]})."""
    from concurrent.futures import ThreadPoolExecutor

    out = np.zeros((len(values), channels, *size), dtype=np.uint8)
    listed: list[list[Any]] = []
    threads = max(1, min(DECODE_THREADS, os.cpu_count() or 1))
    with ThreadPoolExecutor(threads) as pool:
        # chunks: one task per file would cost more in scheduling than a small PNG costs to decode
        for row, result in enumerate(pool.map(lambda v: _decode(v, size, channels), values, chunksize=64)):
            if isinstance(result, str):
                listed.append([row, _shown(values[row]), result])
            else:
                out[row] = result
    return out, {"problems": listed}


def _shown(value: Any) -> str:
    """A value as a problem report names it: a path, or the size of content sent as bytes."""
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    return str(value)[:300]


def _path(value: Any) -> str | None:
    """The value as a path, or None for a missing value; a non-path raises TypeError."""
    if isinstance(value, str | os.PathLike):
        text = os.fspath(value)
        return text if text.strip() else None
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    raise TypeError(f"not a file path ({type(value).__name__})")


def _open(value: Any) -> PILImage | str:
    """The lazily opened image, or why it cannot be."""
    from PIL import Image as PIL

    if isinstance(value, bytes | bytearray | memoryview):  # content sent to the server, not a path
        if not len(value):
            return "empty image data (0 bytes)"
        try:
            return PIL.open(io.BytesIO(bytes(value)))
        except Exception as exc:
            return f"not a readable image: {_describe(exc)}"
    try:
        path = _path(value)
    except TypeError as exc:
        return str(exc)
    if path is None:
        return "missing value"
    if not os.path.isfile(path):
        return "not a file (a folder)" if os.path.isdir(path) else "file not found"
    try:
        return PIL.open(path)
    except Exception as exc:  # Pillow raises many kinds for a bad file; none may stop the run
        return f"not a readable image: {_describe(exc)}"


def _header(value: Any) -> tuple[tuple[int, int], str] | None:
    """((height, width), mode) from the file's header alone, or None when unreadable."""
    image = _open(value)
    if isinstance(image, str):
        return None
    with image:
        width, height = image.size
        return (height, width), image.mode


def _decode(value: Any, size: Sequence[int], channels: int) -> np.ndarray | str:
    """One file as uint8 (channels, h, w), or the reason it cannot be decoded."""
    from PIL import Image as PIL
    from PIL import ImageOps

    image = _open(value)
    if isinstance(image, str):
        return image
    height, width = int(size[0]), int(size[1])
    try:
        with image:
            # JPEG can decode at 1/2, 1/4, 1/8 scale: far faster for photos much larger than `size`
            # (the longer side both ways: an EXIF rotation may swap the sides after decoding)
            side = max(width, height)
            image.draft("L" if channels == 1 else "RGB", (side, side))
            image.load()
            with contextlib.suppress(Exception):  # a broken orientation tag: keep the pixels as stored
                image = ImageOps.exif_transpose(image)
            image = _eight_bit(image).convert("L" if channels == 1 else "RGB")
            if image.size != (width, height):
                shrinking = image.size[0] > width or image.size[1] > height
                # Pillow's resampling is antialiased when shrinking; Lanczos keeps edges sharp there,
                # bicubic does not ring when enlarging
                method = PIL.Resampling.LANCZOS if shrinking else PIL.Resampling.BICUBIC
                image = image.resize((width, height), method, reducing_gap=3.0 if shrinking else None)
            array = np.asarray(image, dtype=np.uint8)
    except Exception as exc:  # truncated data, a decompression bomb, an unsupported codec
        return f"not a readable image: {_describe(exc)}"
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def _eight_bit(image: PILImage) -> PILImage:
    """16-bit and float images scaled to 8 bits (Pillow's own conversion clips them to white)."""
    from PIL import Image as PIL

    if image.mode == "P" and "transparency" in image.info:
        return image.convert("RGBA")  # what Pillow asks for palette images with transparency
    if image.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return image
    values = np.asarray(image, dtype=np.float64)
    top = values.max(initial=0.0)
    if image.mode == "F" and top <= 1.0:
        values = values * 255.0
    elif top > 255:
        values = values / 257.0  # the 16-bit range onto the 8-bit one
    return PIL.fromarray(np.clip(values, 0, 255).astype(np.uint8))


def _nothing_readable(column: pd.Series, sampled: int) -> Exception:
    from dlpipe.errors import DataError

    return DataError(
        f"none of the {sampled} sampled training values of image column {column.name!r} is a readable image file",
        where=f"features.{column.name}",
        fix="check the paths and the files (relative paths are resolved against the data folder)",
    )


def _describe(exc: Exception) -> str:
    """The error in a few words, without the path (the problem lists it already)."""
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        return "unknown format or corrupt file"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


def _default_size(sizes: list[tuple[int, int]]) -> list[int]:
    """Square, the median side of the sampled images, within [MIN_SIDE, MAX_SIDE]."""
    side = round(float(np.median([s for hw in sizes for s in hw])))
    side = min(MAX_SIDE, max(MIN_SIDE, side))
    return [side, side]


def _stem_stride(size: Sequence[int]) -> int:
    """Larger images are halved by the first convolution: the stages then see 32 px or less, fast on CPU."""
    return 2 if min(size) >= 48 else 1


def _default_depth(size: Sequence[int]) -> int:
    """Residual stages (each halves the resolution): enough to end near 4-8 pixels."""
    side = min(size) // _stem_stride(size)
    return 2 if side <= 24 else 3


def _looks_grey(pixels: np.ndarray) -> bool:
    """An RGB image whose channels (nearly) agree everywhere: a grey picture stored as colour."""
    spread = pixels.max(axis=0).astype(np.int16) - pixels.min(axis=0)
    return float(spread.mean()) <= GREY_TOLERANCE


def _to_grey(rgb: np.ndarray) -> np.ndarray:
    """(n, 3, h, w) to (n, 1, h, w) with the ITU-R 601 weights Pillow's convert("L") uses."""
    weights = np.array([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)
    return (rgb * weights).sum(axis=1, keepdims=True)


def _augment(setting: Any) -> dict[str, Any] | None:
    """The resolved augmentation: None when off, else flip/crop/rotate (the defaults of `Augment`)."""
    if setting is False:
        return None
    if setting is None or setting is True:
        from dlpipe.spec import Augment

        setting = Augment()
    return {"flip": bool(setting.flip), "crop": float(setting.crop), "rotate": float(setting.rotate)}
