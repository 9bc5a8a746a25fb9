"""The ONNX conversion of dlib's face ResNet reproduces dlib's own descriptors."""

from __future__ import annotations

from pathlib import Path

import dlib
import face_recognition_models
import numpy as np
import pytest

from facecluster.embed.dlib_to_onnx import convert

ort = pytest.importorskip("onnxruntime")

WEIGHTS = face_recognition_models.face_recognition_model_location()


@pytest.fixture(scope="module")
def session():
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(convert(WEIGHTS).SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def chips(face_photos) -> np.ndarray:
    """Aligned 150 x 150 chips of every face dlib's HOG detector finds in the photos."""
    detector = dlib.get_frontal_face_detector()
    landmarks = face_recognition_models.pose_predictor_five_point_model_location()
    predictor = dlib.shape_predictor(landmarks)
    found = []
    for photo in face_photos:
        image = dlib.load_rgb_image(str(photo))
        for box in detector(image, 1):
            found.append(dlib.get_face_chip(image, predictor(image, box), size=150, padding=0.25))
    assert len(found) >= 3, "expected faces in the face_recognition test photos"
    return np.stack(found)


def _distances(vectors: np.ndarray) -> np.ndarray:
    return np.linalg.norm(vectors[:, None] - vectors[None], axis=-1)


def test_descriptors_match_dlib(session, chips):
    model = dlib.face_recognition_model_v1(WEIGHTS)
    expected = np.array([model.compute_face_descriptor(chip) for chip in chips], dtype=np.float32)

    got = session.run(None, {"chips": chips.astype(np.float32)})[0]

    assert got.shape == (len(chips), 128)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-3)
    np.testing.assert_allclose(_distances(got), _distances(expected), rtol=0, atol=1e-3)
    # The photos hold both the same person and different people: same decisions at 0.6.
    assert ((_distances(got) < 0.6) == (_distances(expected) < 0.6)).all()


def test_batch_size_does_not_change_descriptors(session, chips):
    batch = session.run(None, {"chips": chips.astype(np.float32)})[0]
    single = session.run(None, {"chips": chips[:1].astype(np.float32)})[0]
    np.testing.assert_allclose(single[0], batch[0], rtol=0, atol=1e-5)


def test_wrong_file_raises_value_error(tmp_path):
    with pytest.raises(ValueError, match="not dlib's face recognition ResNet"):
        convert(face_recognition_models.pose_predictor_five_point_model_location())

    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(Path(WEIGHTS).read_bytes()[: 1 << 20])
    with pytest.raises(ValueError, match="end of file"):
        convert(str(truncated))

    garbage = tmp_path / "garbage.dat"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError):
        convert(str(garbage))
