"""dlib's MMOD CNN face detector run in ONNX Runtime instead of dlib.

dlib's Python wheel runs ``cnn_face_detection_model_v1`` without BLAS, so it takes seconds per
photo. The network (``dnn_mmod_face_detection_ex.cpp``) is fully convolutional::

    downsampler = relu<affine<con5d<32, relu<affine<con5d<32, relu<affine<con5d<16, SUBNET>>>>>>>>>
    rcon5 = relu<affine<con5<45>>>
    net_type = loss_mmod<con<1,9,9,1,1, rcon5<rcon5<rcon5<downsampler<
                   input_rgb_image_pyramid<pyramid_down<6>>>>>>>>

so this module converts its weights (``mmod_human_face_detector.dat``) to an ONNX graph with
dynamic height and width, and reproduces the rest in numpy exactly as dlib does it:

- the input layer tiles an image pyramid (each level 5/6 of the previous, built by bilinear
  resizing of the already normalised tensor, ``(pixel - avg) / 256``) into one image with
  ``pyramid_padding`` between levels and ``pyramid_outer_padding`` around, zeros elsewhere;
- ``loss_mmod`` keeps every output position scoring above 0, maps it back through the
  convolutions to the tiled image, centres the detector window there, maps that box back
  through the pyramid to the image, then does greedy non-max suppression.

The parsing helpers come from :mod:`facecluster.embed.dlib_to_onnx`.
"""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path

import dlib
import face_recognition_models
import numpy as np
import onnx
from onnx import TensorProto, helper

from facecluster.embed.dlib_resnet import converted_session
from facecluster.embed.dlib_to_onnx import (
    IR_VERSION, OPSET, _Graph, _read_add_layer_state, _read_affine, _read_con, _Reader,
)

MODEL_ID = "dlib_mmod_human_face_v1"
PYRAMID_RATE = 5 / 6  # pyramid_down<6>
MIN_LEVEL_HEIGHT = 5

# (kind, filters, size, stride) from the input up; the loss is not a layer here.
_ARCH = ([("con", 16, 5, 2), ("affine",), ("relu",),
          ("con", 32, 5, 2), ("affine",), ("relu",),
          ("con", 32, 5, 2), ("affine",), ("relu",)]
         + [("con", 45, 5, 1), ("affine",), ("relu",)] * 3
         + [("con", 1, 9, 1)])


# ---------------------------------------------------------------------------------------
# Reading the .dat file


def _read_affine_or_bn(r: _Reader) -> dict:
    """An affine_ layer, or a bn_con layer read as the affine_ dlib converts it to."""
    start = r._pos
    if r.string() != "bn_con2":
        r._pos = start
        return _read_affine(r)
    params = r.tensor().ravel().astype(np.float64)
    n = math.prod(r.alias())
    r.alias()  # beta
    r.tensor(), r.tensor()  # means, invstds of the last training batch
    running_means = r.tensor().ravel().astype(np.float64)
    running_variances = r.tensor().ravel().astype(np.float64)
    r.integer(), r.integer()  # num_updates, running_stats_window_size
    for _ in range(4):
        r.real()  # learning-rate and weight-decay multipliers
    eps = r.real()
    if params.size != 2 * n or running_means.size != n or running_variances.size != n:
        raise ValueError("inconsistent bn_con layer parameters")
    # dlib's affine_(const bn_&): gamma / sqrt(var + eps), beta - gamma' * mean (in float32)
    gamma = (params[:n] / np.sqrt(running_variances + eps)).astype(np.float32)
    beta = (params[n:] - gamma * running_means).astype(np.float32)
    return dict(gamma=gamma, beta=beta)


def _read_detector(data: bytes) -> dict:
    """Parse a serialized MMOD ``net_type`` of dlib's face detection example."""
    r = _Reader(data)
    r.expect_integer((1,), "add_loss_layer version")
    r.expect_string("loss_mmod_")
    version = r.expect_integer((1, 2, 3, 4), "mmod_options version")
    if version == 1:
        windows = [(r.integer(), r.integer())]
    else:
        windows = []
        for _ in range(r.integer()):
            r.expect_integer((1, 2), "detector window version")
            width, height = r.integer(), r.integer()
            r.string()  # label
            windows.append((width, height))
    r.real(), r.real(), r.real()  # loss per false alarm / missed target, truth match iou
    nms = (r.real(), r.real())  # overlaps_nms: iou_thresh, percent_covered_thresh
    r.real(), r.real()  # overlaps_ignore
    if version >= 3:
        r.integer()  # assume_image_pyramid (uint8)
    if version >= 4:
        if r.flag():
            raise ValueError("bounding box regression is not supported")
        r.real()
    if len(windows) != 1:
        raise ValueError(f"expected one detector window, found {len(windows)}")

    versions = [r.expect_integer((2, 3) if i == 0 else (2,), "add_layer version")
                for i in reversed(range(len(_ARCH)))][::-1]

    name = r.string()
    if name not in ("input_rgb_image_pyramid", "input_rgb_image_pyramid2"):
        raise ValueError(f"unexpected input layer {name!r}")
    mean = np.array([r.real() for _ in range(3)], np.float32)
    padding, outer_padding = (r.integer(), r.integer()) if name.endswith("2") else (10, 11)

    layers = []
    for i, (spec, layer_version) in enumerate(zip(_ARCH, versions)):
        kind = spec[0]
        if kind == "con":
            params = _read_con(r)
            filters, _, rows, cols = params["weight"].shape
            if (filters, rows, cols) != (spec[1], spec[2], spec[2]) \
                    or params["stride"] != (spec[3], spec[3]):
                raise ValueError(f"unexpected con_ layer {params['weight'].shape} "
                                 f"stride {params['stride']}; expected {spec}")
        elif kind == "affine":
            params = _read_affine_or_bn(r)
        else:
            r.expect_string("relu_")
            params = {}
        _read_add_layer_state(r, layer_version, on_input=i == 0)
        layers.append((kind, params))
    if not r.at_end():
        raise ValueError("trailing data after the network")
    return dict(window=windows[0], nms=nms, mean=mean, padding=padding,
                outer_padding=outer_padding, layers=layers)


def _build(layers: list) -> onnx.ModelProto:
    g = _Graph()
    x = "image"
    i = 0
    while i < len(layers):
        kind, params = layers[i]
        if kind == "con":
            weight = params["weight"].astype(np.float64)
            bias = params["bias"].astype(np.float64)
            if i + 1 < len(layers) and layers[i + 1][0] == "affine":
                gamma = layers[i + 1][1]["gamma"].astype(np.float64)
                weight = weight * gamma[:, None, None, None]
                bias = bias * gamma + layers[i + 1][1]["beta"]
                i += 1
            (kh, kw), (sy, sx), (py, px) = weight.shape[2:], params["stride"], params["pad"]
            x = g.op("Conv", [x, g.const(weight), g.const(bias)], None,
                     kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px, py, px])
        elif kind == "relu":
            x = g.op("Relu", [x], None)
        else:
            raise ValueError(f"unexpected layer {kind}")
        i += 1
    g.nodes[-1].output[0] = "scores"
    graph = helper.make_graph(
        g.nodes, MODEL_ID,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, "h", "w"])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION, producer_name="facecluster.detect.cnn_onnx")
    onnx.checker.check_model(model)
    return model


def _output_to_input(layers: list):
    """dlib's map_output_to_input through the con_ layers: tensor point = a * p + b."""
    a, b = 1, 0
    for kind, params in reversed(layers):
        if kind == "con":
            # p_in = p * stride - pad + size // 2 (square kernels, equal strides: checked)
            size, stride, pad = params["weight"].shape[2], params["stride"][0], params["pad"][0]
            a, b = a * stride, b * stride - pad + size // 2
    return a, b


def convert(dat_path: str) -> onnx.ModelProto:
    """Convert ``mmod_human_face_detector.dat`` to ONNX: ``image`` [1,3,H,W] -> ``scores``."""
    data = Path(dat_path).read_bytes()
    try:
        return _build(_read_detector(data)["layers"])
    except ValueError as error:
        raise ValueError(f"{dat_path} is not dlib's MMOD face detector: {error}") from None


# ---------------------------------------------------------------------------------------
# dlib's tiled image pyramid


def _pyramid_rects(nr: int, nc: int, padding: int, outer_padding: int):
    """impl::compute_tiled_image_pyramid_details for pyramid_down<6>.

    Returns the levels as (left, top, right, bottom) inclusive and the tiled image size.
    """
    sizes = [(nc, nr)]  # (width, height)
    while True:
        nr, nc = math.floor(PYRAMID_RATE * nr), math.floor(PYRAMID_RATE * nc)
        if nr * nc == 0 or nr < MIN_LEVEL_HEIGHT:
            break
        sizes.append((nc, nr))
    total_height = sum(h + padding for _, h in sizes) - 2 * padding
    height, prev_width = 0, 0
    w0, h0 = sizes[0]
    for w, h in sizes:
        if w <= w0 - prev_width - padding and (height - h0) * 2 >= total_height - h0:
            break
        height += h + padding
        prev_width = w
    height -= padding
    out_nr, out_nc = height + 2 * outer_padding, w0 + 2 * outer_padding

    rects = []
    y = outer_padding
    i = 0
    while y < height + outer_padding and i < len(sizes):
        w, h = sizes[i]
        rects.append((outer_padding, y, outer_padding + w - 1, y + h - 1))
        y += h + padding
        i += 1
    y -= padding
    while i < len(sizes):
        w, h = sizes[i]
        x1, y1 = outer_padding + w0 - 1, y - 1
        rect = (x1 - (w - 1), y1 - (h - 1), x1, y1)
        first = rects[0]
        if max(first[0], rect[0]) <= min(first[2], rect[2]) \
                and max(first[1], rect[1]) <= min(first[3], rect[3]):
            break
        rects.append(rect)
        y -= h + padding
        i += 1
    return rects, out_nr, out_nc


def _resize_bilinear(src: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """dlib's tt::resize_bilinear (corner-aligned), in float32 like dlib's CPU code."""
    _, src_h, src_w = src.shape
    one = np.float32(1)
    x_scale = np.float32(src_w - 1) / np.float32(max(out_w - 1, 1))
    y_scale = np.float32(src_h - 1) / np.float32(max(out_h - 1, 1))
    y = np.arange(out_h, dtype=np.float32) * y_scale
    x = np.arange(out_w, dtype=np.float32) * x_scale
    top = np.floor(y).astype(np.int64)
    left = np.floor(x).astype(np.int64)
    bottom = np.minimum(top + 1, src_h - 1)
    right = np.minimum(left + 1, src_w - 1)
    tb = (y - top.astype(np.float32))[:, None]
    lr = (x - left.astype(np.float32))[None, :]
    # dlib: (1-tb)*((1-lr)*tl + lr*tr) + tb*((1-lr)*bl + lr*br); the horizontal step is
    # done once per source row, which is the same arithmetic.
    across = (one - lr) * src[:, :, left] + lr * src[:, :, right]
    return ((one - tb) * across[:, top] + tb * across[:, bottom]).astype(np.float32)


def _tiled_pyramid(pixels: np.ndarray, mean: np.ndarray, padding: int, outer_padding: int):
    """The input tensor dlib's input_rgb_image_pyramid builds, [1, 3, NR, NC], and its rects."""
    nr, nc = pixels.shape[:2]
    rects, out_nr, out_nc = _pyramid_rects(nr, nc, padding, outer_padding)
    data = np.zeros((3, out_nr, out_nc), np.float32)
    if not rects:
        return data[None], rects
    l, t, r, b = rects[0]
    chw = pixels.transpose(2, 0, 1).astype(np.float32)
    data[:, t:b + 1, l:r + 1] = (chw - mean[:, None, None]) / np.float32(256)
    for (pl, pt, pr, pb), (l, t, r, b) in zip(rects, rects[1:]):
        data[:, t:b + 1, l:r + 1] = _resize_bilinear(
            data[:, pt:pb + 1, pl:pr + 1], b - t + 1, r - l + 1)
    return data[None], rects


def _round(v: float) -> int:
    return math.floor(v + 0.5)


def _nearest_rect(rects, px: int, py: int) -> int:
    best, best_dist = 0, math.inf
    for i, (l, t, r, b) in enumerate(rects):
        if l <= px <= r and t <= py <= b:
            return i
        dist = math.hypot(min(max(px, l), r) - px, min(max(py, t), b) - py)
        if dist < best_dist:
            best, best_dist = i, dist
    return best


def _to_image(rects, box):
    """tiled_pyramid_to_image for a drectangle (l, t, r, b)."""
    l, t, r, b = box
    level = _nearest_rect(rects, _round((l + r) / 2), _round((t + b) / 2))
    ox, oy = rects[level][0], rects[level][1]
    coords = [l - ox, t - oy, r - ox, b - oy]
    for _ in range(level):
        coords = [v * (1 / PYRAMID_RATE) + 0.3 for v in coords]  # point_up: p*N/(N-1) + 0.3
    return coords


def _area(box) -> int:
    l, t, r, b = box
    return max(0, r - l + 1) * max(0, b - t + 1)


def _overlaps(a, b, iou_thresh: float, covered_thresh: float) -> bool:
    """dlib's test_box_overlap."""
    inner = _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    if inner == 0:
        return False
    outer = _area((min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])))
    return (inner / outer > iou_thresh or inner / _area(a) > covered_thresh
            or inner / _area(b) > covered_thresh)


# ---------------------------------------------------------------------------------------
# The detector


class OnnxCnnDetector:
    """dlib's MMOD CNN face detector, same boxes and scores, run in ONNX Runtime.

    Examples
    --------
    >>> OnnxCnnDetector()._detect(pixels)  # doctest: +SKIP
    [(rectangle(210,96,341,227), 1.04)]
    """

    name = "cnn"
    megapixels = 0.6

    def __init__(self, adjust_threshold: float = 0.0):
        self.adjust_threshold = adjust_threshold

    @cached_property
    def _weights(self) -> Path:
        return Path(face_recognition_models.cnn_face_detector_model_location())

    @cached_property
    def _spec(self) -> dict:
        spec = _read_detector(self._weights.read_bytes())
        spec["map"] = _output_to_input(spec["layers"])
        spec["convs"] = [(p["weight"].shape[2], p["stride"][0], p["pad"][0])
                         for kind, p in spec["layers"] if kind == "con"]
        del spec["layers"]
        return spec

    @cached_property
    def _session(self):
        """ONNX Runtime session (one thread) of the converted weights, cached on disk."""
        return converted_session(self._weights, MODEL_ID, convert)

    def scores(self, pixels: np.ndarray):
        """The tiled pyramid's rects and the network's score map [h, w] for an RGB image."""
        spec = self._spec
        data, rects = _tiled_pyramid(np.asarray(pixels), spec["mean"], spec["padding"],
                                     spec["outer_padding"])
        height, width = data.shape[2:]
        for size, stride, pad in spec["convs"]:
            height = (height + 2 * pad - size) // stride + 1
            width = (width + 2 * pad - size) // stride + 1
        if not rects or height < 1 or width < 1:  # too small for the network (dlib raises)
            return rects, np.zeros((0, 0), np.float32)
        return rects, self._session.run(None, {"image": data})[0][0, 0]

    def _detect(self, pixels: np.ndarray) -> list[tuple[dlib.rectangle, float]]:
        pixels = np.asarray(pixels)
        if pixels.ndim == 2:
            pixels = np.repeat(pixels[:, :, None], 3, axis=2)
        rects, scores = self.scores(pixels[:, :, :3])
        spec = self._spec
        a, b = spec["map"]
        width, height = spec["window"]
        half_w, half_h = (width - 1) / 2, (height - 1) / 2
        rows, cols = np.nonzero(scores > self.adjust_threshold)
        dets = []
        for r, c in zip(rows.tolist(), cols.tolist()):
            px, py = a * c + b, a * r + b
            box = _to_image(rects, (px - half_w, py - half_h, px + half_w, py + half_h))
            dets.append((float(scores[r, c]), tuple(_round(v) for v in box)))
        dets.sort(key=lambda d: -d[0])
        kept: list[tuple[float, tuple]] = []
        for score, box in dets:
            if any(_overlaps(k, box, *spec["nms"]) for _, k in kept):
                continue
            kept.append((score, box))
        return [(dlib.rectangle(*box), score) for score, box in kept]
