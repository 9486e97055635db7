"""Write scikit-learn's bundled 8x8 handwritten digits as PNG files in the ImageFolder layout.

    python examples/digits/make_data.py            # -> examples/digits/data/<digit>/<i>.png

1,797 greyscale images; scikit-learn ships them, so this needs no network. Running it again
rewrites nothing that is already in place (an interrupted run completes on the next).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent


def make_data(out: Path = HERE / "data", limit: int | None = None) -> int:
    """Write the digits (the first `limit` of them) under `out`; returns how many files were written."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    written = 0
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        if limit is not None and i >= limit:
            break
        path = out / str(label) / f"{i}.png"
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        # the data set's intensities are 0..16: spread them over the 8-bit range
        grey = np.round(pixels * (255 / 16)).astype(np.uint8)
        tmp = path.with_name(f".{path.name}.tmp")
        Image.fromarray(grey).save(tmp, format="PNG")
        tmp.replace(path)  # a killed run leaves no half-written PNG that a rerun would skip
        written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "data", help="target folder (default: %(default)s)")
    args = parser.parse_args()
    written = make_data(args.out)
    print(f"{written} new PNG files in {args.out}")


if __name__ == "__main__":
    main()
