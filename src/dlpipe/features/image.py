"""Images (placeholder: being written)."""

from __future__ import annotations

from dlpipe.features.base import FeatureType

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class Image(FeatureType):
    name = "image"
    per_column = True
