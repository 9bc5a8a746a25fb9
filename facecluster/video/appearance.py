"""What a person wears: a colour and texture descriptor of the torso below a face.

No learned weights: the torso box (about 3 face-widths wide and 2.5 face-heights tall, just
below the chin) is described by

* an HSV colour histogram (hue x saturation, 12 x 4 bins, plus 8 value bins), and
* a texture histogram of uniform local binary patterns (10 bins) and gradient orientations
  (8 bins, weighted by magnitude).

Each part is square-rooted (Hellinger) and L2-normalised, the parts are weighted equally and
the whole is L2-normalised again, so two descriptors are 0 (same) to sqrt(2) apart, on the
same scale as face embedding distances.
"""

from __future__ import annotations

import cv2
import numpy as np

DIMENSIONS = 12 * 4 + 8 + 10 + 8
MIN_PIXELS = 24 * 24  # a torso box smaller than this (face at the bottom edge) has no descriptor


def torso_box(face: tuple[int, int, int, int], size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The torso below ``face`` (left, top, right, bottom), clipped to the frame ``size``."""
    left, top, right, bottom = face
    width, height = right - left, bottom - top
    box = (max(0, int(left - width)), min(size[1], int(bottom + 0.3 * height)),
           min(size[0], int(right + width)), min(size[1], int(bottom + 2.8 * height)))
    if (box[2] - box[0]) * (box[3] - box[1]) < MIN_PIXELS:
        return None
    return box


def describe(rgb: np.ndarray, face: tuple[int, int, int, int]) -> np.ndarray | None:
    """The appearance descriptor (float32, unit length) of the torso below ``face``, or None
    when too little of the torso is in the frame.

    Examples
    --------
    >>> frame = np.zeros((360, 640, 3), np.uint8); frame[200:, :, 2] = 255
    >>> describe(frame, (300, 100, 340, 150)).shape
    (74,)
    """
    box = torso_box(face, (rgb.shape[1], rgb.shape[0]))
    if box is None:
        return None
    crop = rgb[box[1]:box[3], box[0]:box[2]]
    if max(crop.shape[:2]) > 96:  # the descriptor is about colours and coarse texture
        scale = 96 / max(crop.shape[:2])
        crop = cv2.resize(crop, (max(8, round(crop.shape[1] * scale)), max(8, round(crop.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    parts = [_colour(crop), _lbp(grey), _gradients(grey)]
    vector = np.concatenate([_hellinger(p) for p in parts])
    return (vector / max(np.linalg.norm(vector), 1e-12)).astype(np.float32)


def _hellinger(histogram: np.ndarray) -> np.ndarray:
    root = np.sqrt(np.maximum(histogram, 0).astype(np.float64))
    return root / max(np.linalg.norm(root), 1e-12)


def _colour(rgb: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hue_sat = cv2.calcHist([hsv], [0, 1], None, [12, 4], [0, 180, 0, 256]).ravel()
    value = cv2.calcHist([hsv], [2], None, [8], [0, 256]).ravel()
    return np.concatenate([hue_sat, value])


def _lbp(grey: np.ndarray) -> np.ndarray:
    """Histogram of rotation-invariant uniform 8-neighbour LBP codes (10 bins)."""
    g = grey.astype(np.int16)
    centre = g[1:-1, 1:-1]
    offsets = [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)]
    bits = np.stack([g[dy:dy + centre.shape[0], dx:dx + centre.shape[1]] >= centre for dy, dx in offsets])
    ones = bits.sum(axis=0)
    transitions = (bits != np.roll(bits, 1, axis=0)).sum(axis=0)
    codes = np.where(transitions <= 2, ones, 9)
    return np.bincount(codes.ravel(), minlength=10)[:10].astype(np.float64)


def _gradients(grey: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    magnitude, angle = cv2.cartToPolar(gx, gy)
    bins = (np.mod(angle, np.pi) / np.pi * 8).astype(int).clip(0, 7)  # unsigned orientation
    return np.bincount(bins.ravel(), weights=magnitude.ravel(), minlength=8)
