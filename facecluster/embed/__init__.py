"""Face alignment and embedding models, one wrapper per file behind a small registry.

An embedder turns aligned face chips into vectors where distance means "how different are
these people". Every stored embedding carries its embedder's ``model_id`` so that vectors of
different models are never compared.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from facecluster.embed.align import align_face, shape_points


class Embedder(Protocol):
    """What the pipeline needs from a face embedding model."""

    model_id: str  # stored with every embedding; changes whenever vectors would change
    chip_size: int  # aligned chips are chip_size x chip_size RGB
    chip_padding: float  # margin around the face in the chip (dlib's get_face_chip padding)

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Embed N aligned chips (N, chip_size, chip_size, 3) uint8 -> (N, D) float32."""


def get_embedder(name: str = "dlib", jitter: int = 0) -> Embedder:
    """The embedder called ``name``: ``"dlib"`` (ONNX Runtime when available, else dlib),
    ``"dlib-native"`` (dlib's own code) or a path to an ``.onnx`` file."""
    from facecluster.embed import dlib_resnet

    if name == "dlib":
        return dlib_resnet.DlibResNet(jitter=jitter, backend="auto")
    if name == "dlib-native":
        return dlib_resnet.DlibResNet(jitter=jitter, backend="dlib")
    if name.endswith(".onnx"):
        from facecluster.embed.onnx_file import OnnxEmbedder

        return OnnxEmbedder(name)
    raise ValueError(f"unknown embedder {name!r}: use 'dlib', 'dlib-native' or a path to an .onnx file")


__all__ = ["Embedder", "get_embedder", "align_face", "shape_points"]
