"""MTCNN (Zhang et al. 2016) in ONNX Runtime: finds faces down to 12 px, where dlib's HOG and
MMOD CNN stop at ~60 px.

Weights: the P-, R- and O-nets published with facenet-pytorch (MIT licence, ported from
davidsandberg/facenet, MIT), as shipped inside the ``faceie`` wheel on PyPI
(``faceie/mtcnn/data/*_net_weights.pickle``; its ``data/README.md`` gives their provenance and
licence). Only those data files are read, with an unpickler that accepts nothing but numpy
arrays and tuples; none of faceie's own code is imported or run. Nothing is downloaded: the
pickles are converted once to ONNX graphs and cached next to the other converted models.

The cascade, as the paper and facenet-pytorch run it (thresholds 0.6, 0.7, 0.9: the last one
stricter than facenet-pytorch's 0.7: on the labelled group photos 196 of 197 faces found
score above 0.9, and the false faces seen scored 0.81-0.87):

1. P-net, fully convolutional (a 12 x 12 window, stride 2), over an image pyramid (one level
   per octave, see PYRAMID_FACTOR) whose first level shrinks the narrowest wanted face to
   12 px; candidates above ``thresholds[0]``, with their regressed boxes, non-maximum
   suppression per level and overall;
2. R-net on 24 x 24 crops of the squared candidates: score, box regression, NMS;
3. O-net on 48 x 48 crops: score, box regression, 5 landmarks, NMS (overlap of the smaller).

Pixels go in as ``(rgb - 127.5) / 128``. PReLU is written as ``a * x + (1 - a) * relu(x)``:
ONNX Runtime runs that ~20% faster than its PRelu here, and it is the same function.

Boxes are returned in dlib's HOG geometry (a square from the eyebrows to the chin), so that
the 5-point shape predictor, which was trained on dlib's boxes, lands the same landmarks; the
mapping was fitted on faces both detectors found in the development sets.
"""

from __future__ import annotations

import importlib.util
import io
import math
import pickle
from functools import cached_property
from pathlib import Path

import cv2
import dlib
import numpy as np
import onnx
from onnx import TensorProto, helper

from facecluster.embed.dlib_resnet import converted_session
from facecluster.embed.dlib_to_onnx import IR_VERSION, OPSET, _Graph

MODEL_ID = "mtcnn_facenet_pytorch_v1"
# One pyramid level per octave, where the paper steps by 0.709: on the labelled group photos
# (benchmarks/speed.py) the same faces are found (98-99%) with 25-30% less CPU.
PYRAMID_FACTOR = 0.5
# HOG-geometry box from an MTCNN box (x1, y1, x2, y2): centre shift and side, in MTCNN box
# widths/heights (medians over 149 faces both found in a quarter of jurassic_park and
# nogizaka46; the side ratio spreads 0.84-1.05 between the 10th and 90th percentile).
TO_HOG = dict(dx=0.0, dy=0.068, side=0.937)


class MissingWeights(RuntimeError):
    """The ``faceie`` package, which carries MTCNN's weights, is not installed."""


def weights_folder() -> Path:
    """``faceie/mtcnn/data`` of the installed ``faceie`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("faceie")
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeights("MTCNN's weights come from the 'faceie' package: pip install faceie")
    folder = Path(list(spec.submodule_search_locations)[0]) / "mtcnn" / "data"
    if not (folder / "p_net_weights.pickle").is_file():
        raise MissingWeights(f"no MTCNN weights in {folder}")
    return folder


class _Record(tuple):
    """Stands in for faceie's NamedTuple weight records: a plain tuple of their fields."""

    def __new__(cls, *fields):
        return tuple.__new__(cls, fields)


class _WeightsUnpickler(pickle.Unpickler):
    """Loads faceie's weight pickles: numpy arrays inside tuples, and nothing else."""

    def find_class(self, module, name):
        if module.startswith("faceie."):
            return _Record
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            from numpy.core.multiarray import _reconstruct
            return _reconstruct
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        raise pickle.UnpicklingError(f"unexpected {module}.{name} in MTCNN weights")


def load_weights(net: str, folder: Path | None = None) -> tuple:
    """The fields of faceie's ``PNetWeights`` / ``RNetWeights`` / ``ONetWeights`` (net: p, r, o):
    convolutions as (weight [out, in, h, w], bias), dense layers as (weight [in, out], bias),
    PReLU slopes as arrays."""
    path = (folder or weights_folder()) / f"{net}_net_weights.pickle"
    return _WeightsUnpickler(io.BytesIO(path.read_bytes())).load()


# ---------------------------------------------------------------------------------------
# ONNX graphs


def _prelu(g: _Graph, x: str, slopes, dense: bool = False) -> str:
    a = np.asarray(slopes, np.float32).reshape((-1,) if dense else (-1, 1, 1))
    relu = g.op("Relu", [x], None)
    return g.op("Add", [g.op("Mul", [x, g.const(a)], None), g.op("Mul", [relu, g.const(1 - a)], None)], None)


def _conv(g: _Graph, x: str, conv) -> str:
    weight, bias = conv
    return g.op("Conv", [x, g.const(weight), g.const(bias)], None, kernel_shape=list(weight.shape[2:]))


def _pool(g: _Graph, x: str, size: int) -> str:
    return g.op("MaxPool", [x], None, kernel_shape=[size, size], strides=[2, 2], ceil_mode=1)


def _dense(g: _Graph, x: str, linear, name: str | None = None) -> str:
    weight, bias = linear
    out = g.op("Add", [g.op("MatMul", [x, g.const(weight)], None), g.const(bias)], None)
    if name:
        g.nodes[-1].output[0] = name
    return out


def _face_logit(linear_or_conv) -> tuple[np.ndarray, np.ndarray]:
    """The two-way softmax's face probability as one logit: sigmoid(l1 - l0)."""
    weight, bias = linear_or_conv
    if weight.ndim == 4:  # P-net's 1x1 convolution [2, 32, 1, 1]
        return (weight[1] - weight[0])[None], np.array([bias[1] - bias[0]], np.float32)
    return (weight[:, 1] - weight[:, 0])[:, None], np.array([bias[1] - bias[0]], np.float32)


def _model(g: _Graph, name: str, inputs, outputs) -> onnx.ModelProto:
    graph = helper.make_graph(g.nodes, name, inputs, outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION, producer_name="facecluster.detect.mtcnn")
    onnx.checker.check_model(model)
    return model


def convert_pnet(folder: Path | None = None) -> onnx.ModelProto:
    """P-net: ``image`` [1, 3, H, W] -> ``logit`` [1, 1, h, w], ``boxes`` [1, 4, h, w]."""
    c1, p1, c2, p2, c3, p3, classifier, boxes = load_weights("p", folder)
    g = _Graph()
    x = _pool(g, _prelu(g, _conv(g, "image", c1), p1), 2)
    x = _prelu(g, _conv(g, x, c2), p2)
    x = _prelu(g, _conv(g, x, c3), p3)
    g.op("Conv", [x, *map(g.const, _face_logit(classifier))], None, kernel_shape=[1, 1])
    g.nodes[-1].output[0] = "logit"
    _conv(g, x, boxes)
    g.nodes[-1].output[0] = "boxes"
    return _model(g, "mtcnn_pnet",
                  [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "H", "W"])],
                  [helper.make_tensor_value_info("logit", TensorProto.FLOAT, [1, 1, "h", "w"]),
                   helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 4, "h", "w"])])


def convert_rnet(folder: Path | None = None) -> onnx.ModelProto:
    """R-net: ``crops`` [N, 3, 24, 24] -> ``logit`` [N, 1], ``boxes`` [N, 4]."""
    c1, p1, c2, p2, c3, p3, linear, p4, classifier, boxes = load_weights("r", folder)
    g = _Graph()
    x = _pool(g, _prelu(g, _conv(g, "crops", c1), p1), 3)
    x = _pool(g, _prelu(g, _conv(g, x, c2), p2), 3)
    x = _prelu(g, _conv(g, x, c3), p3)
    x = g.op("Flatten", [x], None, axis=1)  # faceie's dense weights expect (C, H, W) order
    x = _prelu(g, _dense(g, x, linear), p4, dense=True)
    _dense(g, x, _face_logit(classifier), "logit")
    _dense(g, x, boxes, "boxes")
    return _model(g, "mtcnn_rnet",
                  [helper.make_tensor_value_info("crops", TensorProto.FLOAT, ["N", 3, 24, 24])],
                  [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N", 1]),
                   helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", 4])])


def convert_onet(folder: Path | None = None) -> onnx.ModelProto:
    """O-net: ``crops`` [N, 3, 48, 48] -> ``logit`` [N, 1], ``boxes`` [N, 4], ``landmarks`` [N, 10]."""
    c1, p1, c2, p2, c3, p3, c4, p4, linear, p5, classifier, boxes, landmarks = load_weights("o", folder)
    g = _Graph()
    x = _pool(g, _prelu(g, _conv(g, "crops", c1), p1), 3)
    x = _pool(g, _prelu(g, _conv(g, x, c2), p2), 3)
    x = _pool(g, _prelu(g, _conv(g, x, c3), p3), 2)
    x = _prelu(g, _conv(g, x, c4), p4)
    x = g.op("Flatten", [x], None, axis=1)
    x = _prelu(g, _dense(g, x, linear), p5, dense=True)
    _dense(g, x, _face_logit(classifier), "logit")
    _dense(g, x, boxes, "boxes")
    _dense(g, x, landmarks, "landmarks")
    return _model(g, "mtcnn_onet",
                  [helper.make_tensor_value_info("crops", TensorProto.FLOAT, ["N", 3, 48, 48])],
                  [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N", 1]),
                   helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", 4]),
                   helper.make_tensor_value_info("landmarks", TensorProto.FLOAT, ["N", 10])])


# ---------------------------------------------------------------------------------------
# The cascade


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, smaller: bool = False) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression (overlap: IoU, or of the smaller box)."""
    if not smaller and len(boxes) > 50:  # OpenCV's, for the P-net's thousands of candidates
        xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2] + 1]).astype(np.float64)
        keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.astype(np.float64).tolist(), 0.0, threshold)
        return np.asarray(keep, dtype=np.int64).reshape(-1)
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        width = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        height = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = width * height
        union = np.minimum(area[i], area[rest]) if smaller else area[i] + area[rest] - inter
        order = rest[inter / union <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)


def _regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """faceie's box outputs: corners in units of the input box, 0 = its left/top edge."""
    width = (boxes[:, 2] - boxes[:, 0])[:, None]
    height = (boxes[:, 3] - boxes[:, 1])[:, None]
    out = offsets.astype(np.float64).copy()
    out[:, 0::2] = boxes[:, [0]] + out[:, 0::2] * width
    out[:, 1::2] = boxes[:, [1]] + out[:, 1::2] * height
    return out


def _crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """The square ``boxes`` of ``image`` resized to ``size`` (zeros outside), normalised NCHW."""
    out = np.zeros((len(boxes), size, size, 3), np.uint8)
    height, width = image.shape[:2]
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        side = max(x2 - x1, 1e-3)
        step = side / size
        if step > 2:  # shrink a large region by area first: no aliasing, and cheap
            left, top = int(math.floor(x1)), int(math.floor(y1))
            right, bottom = int(math.ceil(x2)) + 1, int(math.ceil(y2)) + 1
            region = np.zeros((bottom - top, right - left, 3), np.uint8)
            sl, st = max(0, left), max(0, top)
            sr, sb = min(width, right), min(height, bottom)
            if sr > sl and sb > st:
                region[st - top:sb - top, sl - left:sr - left] = image[st:sb, sl:sr]
            out[i] = cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA)
            continue
        matrix = np.array([[1 / step, 0, (0.5 * step - 0.5 - x1) / step],
                           [0, 1 / step, (0.5 * step - 0.5 - y1) / step]], np.float32)
        out[i] = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT)
    return ((out.astype(np.float32) - 127.5) / 128.0).transpose(0, 3, 1, 2)


def _to_hog(boxes: np.ndarray) -> np.ndarray:
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 + TO_HOG["dx"] * width
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 + TO_HOG["dy"] * height
    half = TO_HOG["side"] * (width + height) / 4
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=1)


class MtcnnDetector:
    """MTCNN face detector (``mtcnn``): faces down to ``min_face`` px at its working resolution.

    ``_detect`` returns dlib rectangles in HOG geometry with the O-net's probability as score.

    Examples
    --------
    >>> MtcnnDetector()._detect(pixels)  # doctest: +SKIP
    [(rectangle(212,100,340,228), 0.9998)]
    """

    name = "mtcnn"
    megapixels = 1.0

    def __init__(self, min_face: float = 12.0, thresholds=(0.6, 0.7, 0.9)):
        self.min_face = min_face  # px at the working resolution; 12 is P-net's window
        self.thresholds = thresholds

    @cached_property
    def _sessions(self):
        folder = weights_folder()
        tag = folder / "o_net_weights.pickle"
        return {net: converted_session(tag, f"{MODEL_ID}_{net}net",
                                       lambda _, c=convert: c(folder))
                for net, convert in (("p", convert_pnet), ("r", convert_rnet), ("o", convert_onet))}

    def detect(self, pixels: np.ndarray, min_face: float | None = None,
               max_face: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes [n, 4] as x1, y1, x2, y2, scores [n], landmarks [n, 10]) in ``pixels``' own
        coordinates, MTCNN's geometry; faces from ``min_face`` to ``max_face`` px wide."""
        pixels = np.asarray(pixels)
        if pixels.ndim == 2:
            pixels = np.repeat(pixels[:, :, None], 3, axis=2)
        pixels = np.ascontiguousarray(pixels[:, :, :3])
        none = np.zeros((0, 4)), np.zeros(0), np.zeros((0, 10))
        boxes = self._propose(pixels, min_face or self.min_face, max_face)
        if not len(boxes):
            return none
        boxes, _ = self._refine(pixels, boxes, "r", 24, self.thresholds[1], 0.7)
        if not len(boxes):
            return none
        return self._output(pixels, boxes)

    def _propose(self, pixels: np.ndarray, min_face: float, max_face: float | None) -> np.ndarray:
        height, width = pixels.shape[:2]
        session = self._sessions["p"]
        logit_floor = math.log(self.thresholds[0] / (1 - self.thresholds[0]))
        scale = 12.0 / min_face
        smallest_scale = 12.0 / max_face if max_face else 0.0
        found, scores = [], []
        while min(height, width) * scale >= 12 and scale >= smallest_scale * PYRAMID_FACTOR:
            size = (max(12, math.ceil(width * scale)), max(12, math.ceil(height * scale)))
            level = pixels if size == (width, height) else cv2.resize(
                pixels, size, interpolation=cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR)
            tensor = ((level.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None]
            logit, offsets = session.run(None, {"image": np.ascontiguousarray(tensor)})
            rows, cols = np.nonzero(logit[0, 0] > logit_floor)
            if len(rows):
                score = 1 / (1 + np.exp(-logit[0, 0, rows, cols].astype(np.float64)))
                reg = offsets[0][:, rows, cols].T.astype(np.float64) * 11
                boxes = reg + np.stack([cols, rows, cols, rows], axis=1) * 2.0
                keep = _nms(boxes, score, 0.5)
                found.append(boxes[keep] / scale)
                scores.append(score[keep])
            scale *= PYRAMID_FACTOR
        if not found:
            return np.zeros((0, 4))
        boxes, scores = np.concatenate(found), np.concatenate(scores)
        return _square(boxes[_nms(boxes, scores, 0.7)])

    def _refine(self, pixels, boxes, net, size, threshold, overlap):
        logit, offsets = self._sessions[net].run(None, {"crops": _crops(pixels, boxes, size)})
        score = 1 / (1 + np.exp(-logit[:, 0].astype(np.float64)))
        keep = score > threshold
        boxes, score = _regress(boxes[keep], offsets[keep]), score[keep]
        keep = _nms(boxes, score, overlap)
        return _square(boxes[keep]), score[keep]

    def _output(self, pixels, boxes):
        logit, offsets, points = self._sessions["o"].run(None, {"crops": _crops(pixels, boxes, 48)})
        score = 1 / (1 + np.exp(-logit[:, 0].astype(np.float64)))
        keep = score > self.thresholds[2]
        boxes, score, points = boxes[keep], score[keep], points[keep]
        landmarks = _regress(boxes, points)
        boxes = _regress(boxes, offsets[keep])
        keep = _nms(boxes, score, 0.7, smaller=True)
        return boxes[keep], score[keep], landmarks[keep]

    def _detect(self, pixels: np.ndarray, min_face: float | None = None,
                max_face: float | None = None) -> list[tuple[dlib.rectangle, float]]:
        boxes, scores, _ = self.detect(pixels, min_face, max_face)
        return [(dlib.rectangle(*(int(round(v)) for v in box)), float(score))
                for box, score in zip(_to_hog(boxes), scores)]
