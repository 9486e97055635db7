"""Data time of the image feature type: the first pass (decode + write the cache) against later passes.

The images are scikit-learn's bundled 8x8 digits written as PNG files into a temporary folder
(`--upscale` enlarges them, `--images` repeats them under new names for a larger set). Each round
uses a fresh cache folder and times, on one fitted state:

* no cache (`DLPIPE_CACHE=off`): decoding alone, the cost every epoch would pay without a cache;
* first pass: decode every file and write the `.npy` cache entry (what the first run pays once);
* second pass: the same call again, answered by the memory-mapped cache entry (what the test
  split, later epochs and later runs pay).

Every pass also reads every pixel of the result (a memory map is lazy; training reads it all).
The headline is the ratio first pass / second pass, medians over the rounds, all measured within
one run. The OS page cache holds the PNG files after the first round: the figures are for warm
files, the usual case on a machine with the data on a local disk. This script reports, it does
not assert, and always exits 0.

    OMP_NUM_THREADS=1 python benchmarks/image_cache.py            # 1,797 images, 5 rounds (about 7 s)
    OMP_NUM_THREADS=1 python benchmarks/image_cache.py --quick    # smoke test (a few seconds)
    python benchmarks/image_cache.py --images 20000 --upscale 4   # 32x32 PNGs, a larger set
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dlpipe.features import REGISTRY
from dlpipe.features import image as image_module
from dlpipe.spec import FeatureSpec


@dataclass
class Settings:
    """What to run: how many images, enlarged how much, how many rounds, decoding threads."""

    images: int
    upscale: int
    rounds: int
    decode_threads: int


def write_digits(folder: Path, count: int, upscale: int) -> list[str]:
    """`count` digit PNGs (the 1,797 digits repeated as needed), each side `upscale` times 8 pixels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits().images
    paths = []
    for i in range(count):
        pixels = np.round(digits[i % len(digits)] * (255 / 16)).astype(np.uint8)
        image = Image.fromarray(pixels)
        if upscale > 1:
            image = image.resize((8 * upscale, 8 * upscale), Image.Resampling.BICUBIC)
        path = folder / f"{i % 10}" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        paths.append(str(path))
    return paths


def timed(call: Callable[[], np.ndarray]) -> float:
    """Seconds for the call plus a read of every value it returned."""
    start = time.perf_counter()
    out = call()
    int(np.asarray(out).sum(dtype=np.int64))  # touch every page of a memory map
    return time.perf_counter() - start


def measure(settings: Settings) -> dict[str, Any]:
    feature = REGISTRY["image"]
    image_module.DECODE_THREADS = settings.decode_threads
    previous = os.environ.get("DLPIPE_CACHE")
    times: dict[str, list[float]] = {"no cache": [], "first pass": [], "second pass": []}
    with tempfile.TemporaryDirectory(prefix="dlpipe-image-bench-") as tmp:
        start = time.perf_counter()
        column = pd.Series(write_digits(Path(tmp) / "png", settings.images, settings.upscale), name="image")
        generate = time.perf_counter() - start
        state = feature.fit(column, FeatureSpec())
        try:
            timed(lambda: image_module.decode_many(column.to_numpy(), state["size"], state["channels"])[0])  # warm
            for r in range(settings.rounds):
                os.environ["DLPIPE_CACHE"] = "off"
                times["no cache"].append(timed(lambda: feature.transform(column, state)))
                os.environ["DLPIPE_CACHE"] = str(Path(tmp) / f"cache-{r}")
                times["first pass"].append(timed(lambda: feature.transform(column, state)))
                times["second pass"].append(timed(lambda: feature.transform(column, state)))
            entry = next((Path(tmp) / "cache-0" / "images").glob("*.npy"))
            entry_bytes = entry.stat().st_size
        finally:
            if previous is None:
                os.environ.pop("DLPIPE_CACHE", None)
            else:
                os.environ["DLPIPE_CACHE"] = previous
    return {"times": times, "state": state, "generate": generate, "entry_bytes": entry_bytes}


def report(settings: Settings, out: dict[str, Any]) -> str:
    state, times = out["state"], out["times"]
    median = {k: statistics.median(v) for k, v in times.items()}
    side = 8 * settings.upscale
    lines = [
        f"image cache: {settings.images} digit PNGs of {side}x{side} px -> uint8 {state['channels']}x"
        f"{state['size'][0]}x{state['size'][1]}, {settings.rounds} rounds, "
        f"{settings.decode_threads} decoding thread(s)",
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"1-minute load {os.getloadavg()[0]:.2f} (above ~0: other processes shared the cores)",
        "",
        f"{'pass':<14}{'median s':>10}{'images/s':>12}   per round",
    ]
    for name, values in times.items():
        rate = settings.images / median[name]
        lines.append(f"{name:<14}{median[name]:>10.4f}{rate:>12,.0f}   " + " ".join(f"{v:.4f}" for v in values))
    ratio = median["first pass"] / median["second pass"]
    lines += [
        "",
        f"ratio first pass / second pass (cached): {ratio:.1f}x",
        f"  writing the cache adds {median['first pass'] / median['no cache'] - 1:+.0%} to decoding alone; "
        f"the entry holds {out['entry_bytes'] / 1e6:.2f} MB",
        f"(writing the PNG files took {out['generate']:.1f} s and is not part of the timing)",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=None, help="PNG files (default 1797: every digit once)")
    parser.add_argument("--upscale", type=int, default=1, help="enlarge the 8x8 digits this many times (default 1)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds, each with a fresh cache (default 5)")
    parser.add_argument(
        "--decode-threads",
        type=int,
        default=image_module.DECODE_THREADS,
        help=f"threads decoding files (default {image_module.DECODE_THREADS}, capped at the cores)",
    )
    parser.add_argument("--quick", action="store_true", help="a small, fast run for smoke tests (a few seconds)")
    args = parser.parse_args(argv)
    defaults = {"images": 300, "rounds": 2} if args.quick else {"images": 1797, "rounds": 5}
    return Settings(
        images=args.images or defaults["images"],
        upscale=max(1, args.upscale),
        rounds=args.rounds or defaults["rounds"],
        decode_threads=max(1, args.decode_threads),
    )


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    try:
        print(report(settings, measure(settings)))
    except Exception:  # a report, not a test: show what failed, still exit 0
        traceback.print_exc()
        print("benchmark failed; no result", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
