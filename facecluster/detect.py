"""Face detectors (dlib HOG and MMOD CNN) run at a bounded working resolution.

A detector sees the photo scaled so that it has about ``megapixels`` million pixels, at most
twice the original size: small photos are upsampled so small faces are still found, large
photos are shrunk so a 12 MP photo never reaches the detector at full resolution. Boxes are
returned in full-resolution coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import dlib
import face_recognition_models
import numpy as np

MAX_UPSCALE = 2.0


@dataclass(frozen=True)
class Detection:
    """A face box (left, top, right, bottom) in full-resolution pixels and a confidence."""

    box: tuple[int, int, int, int]
    score: float


class HogDetector:
    """dlib's HOG + linear SVM frontal face detector: fast, needs no weights."""

    name = "hog"
    megapixels = 1.0  # about 0.05 s per megapixel on one core

    @cached_property
    def _model(self):
        return dlib.get_frontal_face_detector()

    def _detect(self, pixels: np.ndarray) -> list[tuple[dlib.rectangle, float]]:
        rects, scores, _ = self._model.run(pixels, 0, 0.0)
        return list(zip(rects, scores))


class CnnDetector:
    """dlib's MMOD CNN face detector run by dlib itself (``cnn-dlib``): ~5 s a 0.6 MP photo.

    ``cnn`` runs the same weights in ONNX Runtime, 14x faster with the same boxes
    (:class:`facecluster.detect_onnx.OnnxCnnDetector`)."""

    name = "cnn-dlib"
    megapixels = 0.6

    @cached_property
    def _model(self):
        return dlib.cnn_face_detection_model_v1(
            face_recognition_models.cnn_face_detector_model_location())

    def _detect(self, pixels: np.ndarray) -> list[tuple[dlib.rectangle, float]]:
        return [(d.rect, d.confidence) for d in self._model(pixels, 0)]


def _onnx_cnn():
    from facecluster.detect_onnx import OnnxCnnDetector

    return OnnxCnnDetector()


DETECTORS = {"hog": HogDetector, "cnn": _onnx_cnn, "cnn-dlib": CnnDetector}


def get_detector(name: str):
    """The detector called ``name``: ``"hog"``, ``"cnn"`` (ONNX Runtime) or ``"cnn-dlib"``."""
    try:
        return DETECTORS[name]()
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}") from None


def working_scale(size: tuple[int, int], megapixels: float) -> float:
    """Scale from a full-size photo to the detector's working resolution."""
    width, height = size
    return min(MAX_UPSCALE, (megapixels * 1e6 / max(1, width * height)) ** 0.5)


def detect_faces(detector, pixels: np.ndarray, scale: float, working: float,
                 min_face: int = 0) -> list[Detection]:
    """Detect faces in ``pixels`` (a photo at ``scale`` of full size) at ``working`` scale.

    Parameters
    ----------
    detector : HogDetector or CnnDetector
    pixels : ndarray
        RGB uint8 image, ``scale`` times the full-resolution size.
    scale, working : float
        The scale ``pixels`` has and the scale to detect at, both relative to full size.
    min_face : int
        Drop faces narrower than this many full-resolution pixels.

    Examples
    --------
    >>> detect_faces(HogDetector(), pixels, 1.0, 1.5)  # doctest: +SKIP
    [Detection(box=(210, 96, 341, 227), score=1.73)]
    """
    factor = working / scale
    if abs(factor - 1.0) > 0.02:
        size = (max(1, round(pixels.shape[1] * factor)), max(1, round(pixels.shape[0] * factor)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_LINEAR)
    height, width = pixels.shape[:2]
    found = []
    for rect, score in detector._detect(pixels):
        left, top = max(0, rect.left()), max(0, rect.top())
        right, bottom = min(width, rect.right()), min(height, rect.bottom())
        box = tuple(round(v / working) for v in (left, top, right, bottom))
        if box[2] - box[0] >= max(1, min_face):
            found.append(Detection(box=box, score=float(score)))
    return found
