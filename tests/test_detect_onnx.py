"""dlib's MMOD CNN face detector run in ONNX Runtime finds what dlib itself finds."""

from __future__ import annotations

import cv2
import dlib
import face_recognition_models
import numpy as np
import pytest
from PIL import Image

from facecluster.detect import working_scale

pytest.importorskip("onnxruntime")

from facecluster.detect.cnn_onnx import OnnxCnnDetector, _pyramid_rects  # noqa: E402


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        cache = tmp_path_factory.mktemp("cache")
        patch.setenv("FACECLUSTER_CACHE", str(cache))
        found = OnnxCnnDetector()
        found._session  # noqa: B018 - convert and load while the cache is redirected
        assert list(cache.glob("dlib_mmod_human_face_v1-*.onnx"))
    return found


@pytest.fixture(scope="module")
def reference():
    return dlib.cnn_face_detection_model_v1(face_recognition_models.cnn_face_detector_model_location())


def _working(image: np.ndarray, megapixels: float = OnnxCnnDetector.megapixels) -> np.ndarray:
    """The photo as the pipeline gives it to the detector: about 0.6 MP."""
    scale = working_scale((image.shape[1], image.shape[0]), megapixels)
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


@pytest.fixture(scope="module")
def images(face_photos) -> dict[str, np.ndarray]:
    photos = {p.name: np.asarray(Image.open(p).convert("RGB")) for p in face_photos}
    found = {name: _working(pixels) for name, pixels in photos.items()}
    # Several faces in one picture, at different sizes: exercises the pyramid levels and NMS.
    small = [cv2.resize(p, (240, int(240 * p.shape[0] / p.shape[1]))) for p in photos.values()]
    height = max(p.shape[0] for p in small)
    row = np.hstack([np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0))) for p in small])
    found["collage"] = _working(row)
    return found


def _assert_same(got, expected):
    got = sorted(got, key=lambda d: -d[1])
    expected = sorted(expected, key=lambda d: -d[1])
    assert len(got) == len(expected), (got, expected)
    for (rect, score), (ref_rect, ref_score) in zip(got, expected):
        assert isinstance(rect, dlib.rectangle)
        sides = [rect.left(), rect.top(), rect.right(), rect.bottom()]
        ref_sides = [ref_rect.left(), ref_rect.top(), ref_rect.right(), ref_rect.bottom()]
        assert max(abs(a - b) for a, b in zip(sides, ref_sides)) <= 1, (rect, ref_rect)
        assert abs(score - ref_score) < 1e-3, (score, ref_score)


def test_boxes_and_scores_match_dlib(detector, reference, images):
    counts = {}
    for name, pixels in images.items():
        expected = [(d.rect, d.confidence) for d in reference(pixels, 0)]
        got = detector._detect(pixels)
        _assert_same(got, expected)
        counts[name] = len(got)
    assert counts["collage"] >= 3, counts
    assert sum(counts.values()) >= 8, counts


def test_small_and_odd_sized_images_match_dlib(detector, reference, images):
    obama = images["obama.jpg"]
    for size in [(201, 157), (97, 131), (40, 40)]:
        pixels = cv2.resize(obama, size, interpolation=cv2.INTER_AREA)
        expected = [(d.rect, d.confidence) for d in reference(pixels, 0)]
        _assert_same(detector._detect(pixels), expected)


def test_detector_contract(detector):
    assert detector.name == "cnn" and detector.megapixels == 0.6
    assert detector._detect(np.zeros((60, 80, 3), np.uint8)) == []
    assert detector._detect(np.zeros((5, 3, 3), np.uint8)) == []  # too small: dlib raises


def test_pyramid_layout():
    rects, rows, cols = _pyramid_rects(600, 1000, 10, 11)
    assert rects[0] == (11, 11, 1010, 610)
    assert cols == 1000 + 22
    for left, top, right, bottom in rects:
        assert 0 <= left <= right < cols and 0 <= top <= bottom < rows
