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
    detector: str | None = None  # set when not the scan's own detector (the finer pass)


def _hog():
    from facecluster.detect.hog import HogDetector

    return HogDetector()


def _cnn():
    from facecluster.detect.cnn_onnx import OnnxCnnDetector

    return OnnxCnnDetector()


def _cnn_dlib():
    from facecluster.detect.cnn_dlib import CnnDetector

    return CnnDetector()


def _mtcnn():
    from facecluster.detect.mtcnn import MtcnnDetector

    return MtcnnDetector()


DETECTORS = {"hog": _hog, "cnn": _cnn, "cnn-dlib": _cnn_dlib, "mtcnn": _mtcnn}


def get_detector(name: str):
    """The detector called ``name``: ``"hog"``, ``"cnn"`` (ONNX Runtime), ``"cnn-dlib"`` or
    ``"mtcnn"`` (faces down to 12 px at the working resolution; weights from ``faceie``)."""
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
    extra = {}
    if hasattr(detector, "min_face"):  # MTCNN: no point looking for faces too small to use
        extra["min_face"] = max(detector.min_face, SMALLEST_USEFUL_FACE * working)
    for rect, score in detector._detect(pixels, **extra):
        left, top = max(0, rect.left()), max(0, rect.top())
        right, bottom = min(width, rect.right()), min(height, rect.bottom())
        box = tuple(round(v / working) for v in (left, top, right, bottom))
        if box[2] - box[0] >= max(1, min_face):
            found.append(Detection(box=box, score=float(score)))
    return found


# Narrowest face a finer pass looks for, in the photo's own pixels: smaller faces give chips
# too blurred to recognise anyone.
SMALLEST_USEFUL_FACE = 20


def finer_pass_reach(size: tuple[int, int], megapixels: float) -> int:
    """The narrowest face (photo pixels) the finer pass looks for in a photo of ``size``: 12 px
    (MTCNN's window) at the working resolution of ``megapixels``, at least SMALLEST_USEFUL_FACE:
    ~40 px in a 12 MP photo at 1 MP."""
    return max(SMALLEST_USEFUL_FACE, round(12 / working_scale(size, megapixels)))


def detect_smaller_faces(small_detector, pixels: np.ndarray, scale: float, reach: int,
                         below: int, found: list[Detection], min_face: int = 0,
                         min_score: float = 0.0) -> list[Detection]:
    """Faces from ``reach`` to ``below`` px wide (full-resolution pixels) that are not in
    ``found``: the finer pass, with ``small_detector`` (MTCNN) on ``pixels`` (at ``scale``),
    keeping those scoring at least ``min_score``."""
    height, width = pixels.shape[:2]
    extra = []
    for rect, score in small_detector._detect(pixels, min_face=reach * scale,
                                              max_face=below * scale * 1.3):
        if score < min_score:
            continue
        left, top = max(0, rect.left()), max(0, rect.top())
        right, bottom = min(width, rect.right()), min(height, rect.bottom())
        if right <= left or bottom <= top:
            continue
        box = tuple(round(v / scale) for v in (left, top, right, bottom))
        if box[2] - box[0] >= max(1, min_face) and not any(_overlap(box, d.box) for d in found + extra):
            extra.append(Detection(box=box, score=float(score), detector=small_detector.name))
    return extra


def _overlap(a, b) -> bool:
    """Same face: the boxes overlap by more than a third of the smaller one."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return False
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return width * height > smaller / 3
