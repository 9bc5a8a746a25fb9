"""dlib's 128-D face ResNet (the model behind face_recognition), from face-recognition-models.

The weights run either in dlib itself or, much faster on CPU, in ONNX Runtime after a one-off
conversion of the same weights (:mod:`facecluster.embed.dlib_to_onnx`); both give the same
vectors to within 1e-3, so they share one ``model_id``.
"""

from __future__ import annotations

import hashlib
import os
from functools import cached_property
from pathlib import Path

import dlib
import face_recognition_models
import numpy as np

from facecluster.embed.align import CHIP_PADDING, CHIP_SIZE

MODEL_ID = "dlib_resnet_v1"


def cache_dir() -> Path:
    """Where derived files (the converted model) are kept: $FACECLUSTER_CACHE or ~/.cache."""
    base = os.environ.get("FACECLUSTER_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facecluster"
    return Path(base)


class DlibResNet:
    """Embed aligned 150 x 150 chips with dlib's ResNet.

    Parameters
    ----------
    jitter : int
        Average the descriptor over this many randomly jittered copies (dlib's
        ``num_jitters``); 0 embeds the chip once. Jitter runs in dlib.
    backend : {"auto", "onnx", "dlib"}
        ``auto`` uses ONNX Runtime when it can, else dlib.

    Examples
    --------
    >>> model = DlibResNet()
    >>> model.embed(np.zeros((2, 150, 150, 3), np.uint8)).shape
    (2, 128)
    """

    model_id = MODEL_ID
    chip_size = CHIP_SIZE
    chip_padding = CHIP_PADDING

    def __init__(self, jitter: int = 0, backend: str = "auto"):
        self.jitter = jitter
        self.backend = backend if jitter == 0 else "dlib"

    @cached_property
    def _dlib_model(self):
        return dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())

    @cached_property
    def _onnx_session(self):
        if self.backend == "dlib":
            return None
        try:
            return _onnx_session()
        except Exception:  # noqa: BLE001 - ONNX is an accelerator; dlib is always there
            if self.backend == "onnx":
                raise
            return None

    def embed(self, chips: np.ndarray) -> np.ndarray:
        chips = np.asarray(chips, dtype=np.uint8).reshape(-1, CHIP_SIZE, CHIP_SIZE, 3)
        if len(chips) == 0:
            return np.zeros((0, 128), np.float32)
        if self._onnx_session is not None:
            return self._onnx_session.run(None, {"chips": chips.astype(np.float32)})[0]
        vectors = self._dlib_model.compute_face_descriptor(list(chips), self.jitter)
        return np.array(vectors, dtype=np.float32)


def _onnx_session():
    from facecluster.embed.dlib_to_onnx import convert

    return converted_session(face_recognition_models.face_recognition_model_location(), MODEL_ID, convert)


def converted_session(weights: str | Path, name: str, convert):
    """ONNX Runtime session for dlib ``weights`` converted once by ``convert(path) ->
    onnx.ModelProto`` and cached (the cache name follows the weights file)."""
    import onnxruntime

    weights = Path(weights)
    tag = hashlib.sha256(f"{weights.stat().st_size}:{weights.stat().st_mtime_ns}".encode()).hexdigest()[:12]
    target = cache_dir() / f"{name}-{tag}.onnx"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(convert(str(weights)).SerializeToString())
        partial.replace(target)  # atomic: parallel workers never read half a file
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # parallelism comes from worker processes
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])
