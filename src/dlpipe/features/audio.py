"""Audios (placeholder: being written)."""

from __future__ import annotations

from dlpipe.features.base import FeatureType

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


class Audio(FeatureType):
    name = "audio"
    per_column = True
