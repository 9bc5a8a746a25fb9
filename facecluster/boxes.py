"""Face boxes ``(left, top, right, bottom)``: overlap, shared by tracking, the store and scoring."""

from __future__ import annotations

import numpy as np


def iou_matrix(a, b) -> np.ndarray:
    """Intersection over union of every box of ``a`` with every box of ``b`` (0 for no area)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)[None, :, :]
    lo = np.maximum(a[..., :2], b[..., :2])
    hi = np.minimum(a[..., 2:], b[..., 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    union = _area(a) + _area(b) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def iou(a, b) -> float:
    """Intersection over union of two boxes.

    Examples
    --------
    >>> round(iou((0, 0, 2, 2), (1, 1, 3, 3)), 4)  # 1 / (4 + 4 - 1)
    0.1429
    """
    return float(iou_matrix(a, b)[0, 0])


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[..., 2] - boxes[..., 0], 0, None) * np.clip(boxes[..., 3] - boxes[..., 1], 0, None)
