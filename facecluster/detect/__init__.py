"""Face detectors, one wrapper per file behind a small registry, run at a bounded working
resolution.

A detector sees the photo scaled so that it has about ``megapixels`` million pixels, at most
twice the original size: small photos are upsampled so small faces are still found, large
photos are shrunk so a 12 MP photo never reaches the detector at full resolution. Boxes are
returned in full-resolution coordinates.

Every detector has ``name``, ``megapixels`` (its default working resolution) and
``_detect(pixels) -> [(dlib.rectangle, score)]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MAX_UPSCALE = 2.0


@dataclass(frozen=True)
class Detection:
    """A face box (left, top, right, bottom) in full-resolution pixels and a confidence."""

    box: tuple[int, int, int, int]
    score: float


def _hog():
    from facecluster.detect.hog import HogDetector

    return HogDetector()


def _cnn():
    from facecluster.detect.cnn_onnx import OnnxCnnDetector

    return OnnxCnnDetector()


def _cnn_dlib():
    from facecluster.detect.cnn_dlib import CnnDetector

    return CnnDetector()


DETECTORS = {"hog": _hog, "cnn": _cnn, "cnn-dlib": _cnn_dlib}


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
