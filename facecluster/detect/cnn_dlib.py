"""dlib's MMOD CNN face detector, run by dlib itself (slow without BLAS; ``cnn`` is the fast one)."""

from __future__ import annotations

from functools import cached_property

import dlib
import face_recognition_models
import numpy as np


class CnnDetector:
    """dlib's MMOD CNN face detector run by dlib itself (``cnn-dlib``): ~5 s a 0.6 MP photo.

    ``cnn`` runs the same weights in ONNX Runtime, 14x faster with the same boxes
    (:class:`facecluster.detect.cnn_onnx.OnnxCnnDetector`)."""

    name = "cnn-dlib"
    megapixels = 0.6

    @cached_property
    def _model(self):
        return dlib.cnn_face_detection_model_v1(
            face_recognition_models.cnn_face_detector_model_location())

    def _detect(self, pixels: np.ndarray) -> list[tuple[dlib.rectangle, float]]:
        return [(d.rect, d.confidence) for d in self._model(pixels, 0)]
