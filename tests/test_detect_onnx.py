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


# -- MTCNN (weights from the faceie wheel, converted to ONNX) ---------------------------------
@pytest.fixture(scope="module")
def mtcnn(tmp_path_factory):
    pytest.importorskip("faceie", reason="MTCNN's weights come from the faceie package")
    from facecluster.detect.mtcnn import MtcnnDetector

    with pytest.MonkeyPatch.context() as patch:
        cache = tmp_path_factory.mktemp("mtcnn-cache")
        patch.setenv("FACECLUSTER_CACHE", str(cache))
        found = MtcnnDetector()
        found._sessions  # noqa: B018 - convert and load while the cache is redirected
        assert len(list(cache.glob("mtcnn_facenet_pytorch_v1_*.onnx"))) == 3
    return found


def test_mtcnn_finds_the_faces_hog_finds_with_the_same_boxes(mtcnn, sample_folder):
    """Boxes come back in HOG's geometry, so the 5-point predictor lands the same landmarks."""
    hog = dlib.get_frontal_face_detector()
    for name in ("obama.jpg", "biden.jpg", "obama2.jpg"):
        image = _working(np.asarray(Image.open(sample_folder / name).convert("RGB")), 1.0)
        [expected] = hog(image, 0)
        [(found, score)] = mtcnn._detect(image)
        inter = (min(found.right(), expected.right()) - max(found.left(), expected.left())) * \
                (min(found.bottom(), expected.bottom()) - max(found.top(), expected.top()))
        union = found.area() + expected.area() - inter
        assert inter / union > 0.6 and score > 0.9, (name, found, expected)


def test_mtcnn_finds_small_faces_hog_cannot(mtcnn, sample_folder):
    image = np.asarray(Image.open(sample_folder / "biden.jpg").convert("RGB"))
    small = cv2.resize(image, (image.shape[1] // 10, image.shape[0] // 10), interpolation=cv2.INTER_AREA)
    canvas = np.full((600, 800, 3), 128, np.uint8)
    canvas[100:100 + small.shape[0], 300:300 + small.shape[1]] = small  # a ~34 px face
    assert len(dlib.get_frontal_face_detector()(canvas, 0)) == 0
    boxes, scores, landmarks = mtcnn.detect(canvas, min_face=20)
    assert len(boxes) == 1 and 20 < boxes[0][2] - boxes[0][0] < 50 and landmarks.shape == (1, 10)


def test_mtcnn_weights_are_read_as_data_only(tmp_path):
    pytest.importorskip("faceie", reason="MTCNN's weights come from the faceie package")
    import pickle

    from facecluster.detect.mtcnn import load_weights

    conv1, prelu1, *_ = load_weights("p")
    assert conv1[0].shape == (10, 3, 3, 3) and prelu1.shape == (10,)
    (tmp_path / "p_net_weights.pickle").write_bytes(pickle.dumps(__import__("os").system))
    with pytest.raises(pickle.UnpicklingError, match="unexpected posix.system"):
        load_weights("p", tmp_path)
