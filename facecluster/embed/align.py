"""5-point landmarks and aligned face chips (dlib's shape predictor and get_face_chip)."""

from __future__ import annotations

from functools import lru_cache

import dlib
import face_recognition_models
import numpy as np

CHIP_SIZE = 150
CHIP_PADDING = 0.25  # what dlib's ResNet was trained with


@lru_cache(maxsize=1)
def _predictor():
    return dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())


def shape_points(shape: dlib.full_object_detection) -> np.ndarray:
    """Landmarks of a dlib shape as an (n, 2) int array."""
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.int32)


def align_face(pixels: np.ndarray, box: tuple[int, int, int, int], size: int = CHIP_SIZE,
               padding: float = CHIP_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks (5, 2) and an aligned ``size`` x ``size`` RGB chip for the face in ``box``.

    Examples
    --------
    >>> landmarks, chip = align_face(pixels, (210, 96, 341, 227))  # doctest: +SKIP
    >>> chip.shape
    (150, 150, 3)
    """
    rect = dlib.rectangle(*(int(v) for v in box))
    shape = _predictor()(pixels, rect)
    chip = dlib.get_face_chip(pixels, shape, size=size, padding=padding)
    return shape_points(shape), np.asarray(chip)
