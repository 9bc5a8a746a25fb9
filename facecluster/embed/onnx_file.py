"""Any face embedding model in an ONNX file the user gives (ArcFace, SFace, ...).

The model must take a batch of aligned square face chips, NCHW or NHWC, and return one vector
per face. Chips are aligned with dlib's 5-point landmarks to the model's input size; pixel
values are scaled ``(x - mean) / std`` (ArcFace's 127.5 / 127.5 by default). Vectors are
L2-normalised, so distances lie in [0, 2] whatever the model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


class OnnxEmbedder:
    """Embed chips with an ONNX model file.

    Parameters
    ----------
    path : str or Path
        The ``.onnx`` file.
    mean, std : float
        Pixel normalisation ``(x - mean) / std`` applied to RGB values 0..255.
    bgr : bool
        Feed channels as BGR (OpenCV-trained models) instead of RGB.

    Examples
    --------
    >>> model = OnnxEmbedder("arcface_r100.onnx")  # doctest: +SKIP
    >>> model.chip_size, model.embed(chips).shape
    (112, (4, 512))
    """

    chip_padding = 0.0

    def __init__(self, path: str | Path, mean: float = 127.5, std: float = 127.5, bgr: bool = False):
        import onnxruntime

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"embedding model not found: {path}")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(str(path), options,
                                                         providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ValueError(f"{path} is not a usable ONNX model: {exc}") from None
        self._input = self._session.get_inputs()[0]
        shape = self._input.shape
        if len(shape) != 4:
            raise ValueError(f"{path}: expected a 4-D image input, got shape {shape}")
        self.channels_first = shape[1] == 3
        size = shape[2] if self.channels_first else shape[1]
        if not isinstance(size, int):
            raise ValueError(f"{path}: the input size must be fixed, got {shape}")
        self.chip_size = size
        self.mean, self.std, self.bgr = mean, std, bgr
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        self.model_id = f"onnx:{path.stem}:{digest}"

    def embed(self, chips: np.ndarray) -> np.ndarray:
        chips = np.asarray(chips, dtype=np.float32).reshape(-1, self.chip_size, self.chip_size, 3)
        if self.bgr:
            chips = chips[..., ::-1]
        batch = (chips - self.mean) / self.std
        if self.channels_first:
            batch = batch.transpose(0, 3, 1, 2)
        vectors = self._session.run(None, {self._input.name: np.ascontiguousarray(batch)})[0]
        vectors = vectors.reshape(len(chips), -1).astype(np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
