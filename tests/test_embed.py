"""Embedders: dlib's ResNet (ONNX Runtime and dlib agree) and user-supplied ONNX files."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from facecluster.detect.hog import HogDetector
from facecluster.embed import get_embedder
from facecluster.scan import ScanOptions, find_faces


def tiny_model(path, size=32, dim=8, layout="nchw"):
    """A real (if useless) embedding network: average-pool to 4x4, flatten, project."""
    shape = ["N", 3, size, size] if layout == "nchw" else ["N", size, size, 3]
    nodes, inputs = [], "chips"
    if layout == "nhwc":
        nodes.append(helper.make_node("Transpose", ["chips"], ["nchw"], perm=[0, 3, 1, 2]))
        inputs = "nchw"
    weights = np.random.default_rng(0).normal(size=(3 * 16, dim)).astype(np.float32)
    nodes += [helper.make_node("AveragePool", [inputs], ["pooled"], kernel_shape=[size // 4] * 2,
                               strides=[size // 4] * 2),
              helper.make_node("Flatten", ["pooled"], ["flat"]),
              helper.make_node("MatMul", ["flat", "W"], ["vectors"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("chips", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("vectors", TensorProto.FLOAT, ["N", dim])],
                              [numpy_helper.from_array(weights, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_user_onnx_model_embeds_chips(tmp_path, layout):
    model = get_embedder(str(tiny_model(tmp_path / f"tiny_{layout}.onnx", layout=layout)))
    assert model.chip_size == 32 and model.model_id.startswith(f"onnx:tiny_{layout}:")
    rng = np.random.default_rng(1)
    chips = rng.integers(0, 255, size=(3, 32, 32, 3), dtype=np.uint8)
    vectors = model.embed(chips)
    assert vectors.shape == (3, 8)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(model.embed(chips[:1]), vectors[:1], atol=1e-6)  # batch-independent
    assert np.linalg.norm(vectors[0] - vectors[1]) > 1e-3


def test_user_onnx_model_runs_in_the_pipeline(tmp_path, sample_folder):
    path = tiny_model(tmp_path / "tiny.onnx")
    options = ScanOptions(embedder=str(path))
    faces, size = find_faces(sample_folder / "obama.jpg", HogDetector(), get_embedder(str(path)), options)
    assert len(faces) == 1 and faces[0].embedding.shape == (8,) and faces[0].model.startswith("onnx:tiny:")


def test_bad_model_files_are_clear_errors(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a usable ONNX model"):
        get_embedder(str(tmp_path / "junk.onnx"))
    with pytest.raises(ValueError, match="not found"):
        get_embedder(str(tmp_path / "missing.onnx"))
    with pytest.raises(ValueError, match="unknown embedder"):
        get_embedder("facenet")


def test_dlib_backends_agree_on_real_faces(sample_folder):
    onnx_model, dlib_model = get_embedder("dlib"), get_embedder("dlib-native")
    faces, _ = find_faces(sample_folder / "obama.jpg", HogDetector(), onnx_model, ScanOptions())
    import cv2

    chip = cv2.cvtColor(cv2.imdecode(np.frombuffer(faces[0].chip_jpeg, np.uint8), 1), cv2.COLOR_BGR2RGB)
    assert np.abs(onnx_model.embed(chip[None]) - dlib_model.embed(chip[None])).max() < 1e-3


def test_cnn_detector_never_sees_a_full_resolution_photo(sample_folder):
    from facecluster.detect import detect_faces, working_scale
    from facecluster.detect.cnn_dlib import CnnDetector
    from facecluster.media import load_photo

    assert working_scale((4000, 3000), CnnDetector.megapixels) ** 2 * 12e6 <= 0.61e6
    photo = load_photo(sample_folder / "biden.jpg", max_pixels=CnnDetector.megapixels * 1e6)
    found = detect_faces(CnnDetector(), photo.pixels, photo.scale, working_scale(photo.size, CnnDetector.megapixels))
    assert len(found) == 1
    left, top, right, bottom = found[0].box  # in full-resolution pixels, around Biden's face
    assert 400 < (left + right) / 2 < 800 and 200 < (top + bottom) / 2 < 600
