"""Exports of a model folder: ONNX (written when a model is packaged) and, later, a Docker image's files."""
