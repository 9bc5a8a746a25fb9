"""Convert dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) to ONNX.

dlib's Python wheel runs the network without BLAS, so on CPU it is several times slower
than ONNX Runtime running the very same weights. This module reads dlib's binary
serialization of ``anet_type`` (the network of dlib's ``dnn_face_recognition_ex.cpp``)
and writes an equivalent ONNX graph:

- input ``chips``: float32 ``[N, 150, 150, 3]``, RGB pixel values 0..255 of aligned chips
  (``dlib.get_face_chip(img, shape, size=150, padding=0.25)``);
- output ``descriptors``: float32 ``[N, 128]``, what ``compute_face_descriptor`` returns.

Only this one network is supported: the layer sequence is fixed below and every record
in the file is checked against it.

dlib's serialization, in short: a network is nested templates and serializes outside-in,
so the file holds a version number for every layer from the loss down to the input, then
the input layer, then each layer's parameters from the input up. Integers are a length
byte (high bit: negative) plus that many little-endian bytes, floats are an integer
mantissa and exponent, bools the characters ``'0'``/``'1'``, strings a length and their
bytes, and tensors four dimensions followed by raw little-endian float32 values.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CHIP_SIZE = 150
OPSET = 17
IR_VERSION = 8  # the IR of opset 17; newer onnx packages default to IRs older runtimes reject


class _Layer(NamedTuple):
    kind: str  # con, affine, relu, max_pool, avg_pool, fc, tag1, tag2, skip1, add_prev1, add_prev2
    filters: int = 0
    size: int = 0
    stride: int = 0


# ---------------------------------------------------------------------------------------
# The expected network


def _block(filters: int, stride: int) -> list[_Layer]:
    return [_Layer("con", filters, 3, stride), _Layer("affine"), _Layer("relu"),
            _Layer("con", filters, 3, 1), _Layer("affine")]


def _ares(filters: int) -> list[_Layer]:
    return [_Layer("tag1"), *_block(filters, 1), _Layer("add_prev1"), _Layer("relu")]


def _ares_down(filters: int) -> list[_Layer]:
    return [_Layer("tag1"), *_block(filters, 2), _Layer("tag2"), _Layer("skip1"),
            _Layer("avg_pool"), _Layer("add_prev2"), _Layer("relu")]


def _architecture() -> list[_Layer]:
    """The layers of dlib's ``anet_type``, listed from the input up (loss excluded).

    Returns
    -------
    list of _Layer
        Computational layers and the tag/skip markers that wire the residual shortcuts.
    """
    layers = [_Layer("con", 32, 7, 2), _Layer("affine"), _Layer("relu"), _Layer("max_pool")]
    layers += _ares(32) * 3                                   # alevel4
    layers += _ares_down(64) + _ares(64) * 3                  # alevel3
    layers += _ares_down(128) + _ares(128) * 2                # alevel2
    layers += _ares_down(256) + _ares(256) * 2                # alevel1
    layers += _ares_down(256)                                 # alevel0
    return layers + [_Layer("avg_pool"), _Layer("fc", 128)]  # avg_pool_everything, fc_no_bias


# ---------------------------------------------------------------------------------------
# Reading dlib's serialization format


class _Reader:
    """Sequential reader for dlib's serialization primitives; errors raise ValueError."""

    def __init__(self, data: bytes):
        self._data = data
        self._pos = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self._pos + n > len(self._data):
            raise ValueError(f"unexpected end of file at byte {self._pos}")
        chunk = self._data[self._pos:self._pos + n]
        self._pos += n
        return chunk

    def at_end(self) -> bool:
        return self._pos == len(self._data)

    def integer(self) -> int:
        head = self._take(1)[0]
        size = head & 0x7F
        if not 1 <= size <= 8:
            raise ValueError(f"bad integer encoding at byte {self._pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if head & 0x80 else value

    def real(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        try:
            return math.ldexp(mantissa, exponent)
        except OverflowError:
            raise ValueError(f"bad float encoding before byte {self._pos}") from None

    def flag(self) -> bool:
        char = self._take(1)
        if char not in (b"0", b"1"):
            raise ValueError(f"bad bool encoding at byte {self._pos - 1}")
        return char == b"1"

    def string(self) -> str:
        length = self.integer()
        if not 0 <= length <= 64:  # layer names are short; anything else is not this format
            raise ValueError(f"implausible string length {length} at byte {self._pos}")
        return self._take(length).decode("latin-1")

    def expect_string(self, expected: str) -> None:
        start = self._pos
        found = self.string()
        if found != expected:
            raise ValueError(f"expected {expected!r} at byte {start}, found {found[:40]!r}")

    def expect_integer(self, allowed: tuple[int, ...], what: str) -> int:
        value = self.integer()
        if value not in allowed:
            raise ValueError(f"unsupported {what} {value} at byte {self._pos}")
        return value

    def tensor(self) -> np.ndarray:
        self.expect_integer((2,), "tensor version")
        shape = tuple(self.integer() for _ in range(4))
        count = math.prod(shape)
        return np.frombuffer(self._take(4 * count), "<f4").reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        """An alias_tensor: the shape of a view into a layer's parameter tensor."""
        self.expect_integer((1,), "alias_tensor version")
        return tuple(self.integer() for _ in range(4))


def _read_con(r: _Reader) -> dict:
    r.expect_string("con_4")
    params = r.tensor().ravel()
    filters, rows, cols, stride_y, stride_x, pad_y, pad_x = (r.integer() for _ in range(7))
    shape = r.alias()
    r.alias()  # the biases follow the filters in params
    for _ in range(4):
        r.real()  # learning-rate and weight-decay multipliers
    n_weights = math.prod(shape)
    if shape[0] != filters or (rows, cols) != shape[2:] or params.size != n_weights + filters:
        raise ValueError("inconsistent con_ layer parameters")
    return dict(weight=params[:n_weights].reshape(shape), bias=params[n_weights:],
                stride=(stride_y, stride_x), pad=(pad_y, pad_x))


def _read_affine(r: _Reader) -> dict:
    r.expect_string("affine_")
    params = r.tensor().ravel()
    n = math.prod(r.alias())
    r.alias()  # beta, right after gamma
    r.expect_integer((0,), "affine mode (0 = per channel)")
    if params.size != 2 * n:
        raise ValueError("inconsistent affine_ layer parameters")
    return dict(gamma=params[:n], beta=params[n:])


def _read_pool(name: str):
    def read(r: _Reader) -> dict:
        r.expect_string(name)
        rows, cols, stride_y, stride_x, pad_y, pad_x = (r.integer() for _ in range(6))
        return dict(window=(rows, cols), stride=(stride_y, stride_x), pad=(pad_y, pad_x))
    return read


def _read_fc(r: _Reader) -> dict:
    r.expect_string("fc_2")
    outputs, inputs = r.integer(), r.integer()
    params = r.tensor().ravel()
    r.alias(), r.alias()  # weights, biases
    r.expect_integer((1,), "fc bias mode (1 = no bias)")
    for _ in range(4):
        r.real()
    if params.size != inputs * outputs:
        raise ValueError("inconsistent fc_ layer parameters")
    return dict(weight=params.reshape(inputs, outputs))  # dlib computes x @ weight


def _read_name_only(name: str):
    def read(r: _Reader) -> dict:
        r.expect_string(name)
        return {}
    return read


_READERS = {
    "con": _read_con, "affine": _read_affine, "relu": _read_name_only("relu_"),
    "max_pool": _read_pool("max_pool_2"), "avg_pool": _read_pool("avg_pool_2"),
    "add_prev1": _read_name_only("add_prev_"), "add_prev2": _read_name_only("add_prev_"),
    "fc": _read_fc,
}


def _check_con(layer: _Layer, params: dict) -> None:
    filters, _, rows, cols = params["weight"].shape
    if (filters, rows, cols) != (layer.filters, layer.size, layer.size) \
            or params["stride"] != (layer.stride, layer.stride):
        raise ValueError(f"unexpected con_ layer: {filters} filters {rows}x{cols}, "
                         f"stride {params['stride']}; expected {layer}")


def _read_add_layer_state(r: _Reader, version: int, on_input: bool) -> None:
    """Skip the training state dlib's add_layer stores after each layer's parameters."""
    for _ in range(3):
        r.flag()
    r.tensor(), r.tensor()  # x_grad, cached_output
    if on_input:
        r.tensor()  # grad_final
        if version == 3:
            r.integer()  # sample expansion factor
    else:
        r.tensor()  # params_grad


def _read_network(data: bytes) -> tuple[np.ndarray, list[tuple[_Layer, dict]]]:
    """Parse a serialized ``anet_type``.

    Parameters
    ----------
    data : bytes
        Contents of the ``.dat`` file.

    Returns
    -------
    mean : ndarray
        Per-channel RGB mean the input layer subtracts.
    layers : list of (_Layer, dict)
        Each layer from the input up with its parameters.
    """
    r = _Reader(data)
    r.expect_integer((1,), "add_loss_layer version")
    r.expect_string("loss_metric_2")
    r.real(), r.real()  # margin and distance threshold: training only

    arch = _architecture()
    versions = []
    for i in reversed(range(len(arch))):  # outermost layer first
        if arch[i].kind.startswith(("tag", "skip")):
            versions.append(r.expect_integer((1,), f"{arch[i].kind} layer version"))
        else:
            versions.append(r.expect_integer((2, 3) if i == 0 else (2,), "add_layer version"))
    versions.reverse()

    r.expect_string("input_rgb_image_sized")
    mean = np.array([r.real() for _ in range(3)])
    if (r.integer(), r.integer()) != (CHIP_SIZE, CHIP_SIZE):
        raise ValueError(f"input layer is not {CHIP_SIZE}x{CHIP_SIZE}")

    layers = []
    for i, (layer, version) in enumerate(zip(arch, versions)):
        params = {}
        if layer.kind in _READERS:
            params = _READERS[layer.kind](r)
            _read_add_layer_state(r, version, on_input=i == 0)
        if layer.kind == "con":
            _check_con(layer, params)
        layers.append((layer, params))
    if not r.at_end():
        raise ValueError("trailing data after the network")
    return mean, layers


# ---------------------------------------------------------------------------------------
# Building the ONNX graph


class _Graph:
    """Accumulates ONNX nodes and initializers, tracking each value's (C, H, W)."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.shapes: dict[str, tuple[int, int, int]] = {}

    def const(self, array: np.ndarray, dtype=np.float32) -> str:
        name = f"const{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(array, dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], shape: tuple | None, output: str | None = None,
           **attrs) -> str:
        output = output or f"{op_type.lower()}{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, inputs, [output], **attrs))
        self.shapes[output] = shape
        return output


def _pooled(size: int, window: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - window) // stride + 1


def _conv(g: _Graph, x: str, con: dict, affine: dict) -> str:
    """A con_ layer with the following affine_ layer folded into its weights."""
    gamma = affine["gamma"].astype(np.float64)
    weight = con["weight"] * gamma[:, None, None, None]
    bias = con["bias"] * gamma + affine["beta"]
    c, h, w = g.shapes[x]
    if weight.shape[1] != c:
        raise ValueError(f"con_ layer expects {weight.shape[1]} channels, gets {c}")
    (kh, kw), (sy, sx), (py, px) = weight.shape[2:], con["stride"], con["pad"]
    shape = (weight.shape[0], _pooled(h, kh, sy, py), _pooled(w, kw, sx, px))
    return g.op("Conv", [x, g.const(weight), g.const(bias)], shape,
                kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px, py, px])


def _pool(g: _Graph, x: str, op_type: str, pool: dict) -> str:
    c, h, w = g.shapes[x]
    if pool["window"] == (0, 0):  # dlib's avg_pool_everything
        return g.op("GlobalAveragePool", [x], (c, 1, 1))
    if pool["pad"] != (0, 0):
        raise ValueError("padded pooling is not supported")
    (kh, kw), (sy, sx) = pool["window"], pool["stride"]
    shape = (c, _pooled(h, kh, sy, 0), _pooled(w, kw, sx, 0))
    return g.op(op_type, [x], shape, kernel_shape=[kh, kw], strides=[sy, sx])


def _add(g: _Graph, a: str, b: str) -> str:
    """dlib's add_prev: operands of different shapes are zero-padded (at the end) to match."""
    shape = tuple(max(sa, sb) for sa, sb in zip(g.shapes[a], g.shapes[b]))
    padded = []
    for x in (a, b):
        extra = [target - size for target, size in zip(shape, g.shapes[x])]
        if any(extra):
            x = g.op("Pad", [x, g.const([0, 0, 0, 0, 0, *extra], np.int64)], shape)
        padded.append(x)
    return g.op("Add", padded, shape)


def _build(mean: np.ndarray, layers: list[tuple[_Layer, dict]]) -> onnx.ModelProto:
    g = _Graph()
    # dlib's input layer: (pixel - mean) / 256, laid out as NCHW.
    x = g.op("Sub", ["chips", g.const(mean)], None)
    x = g.op("Mul", [x, g.const(1 / 256)], None)
    x = g.op("Transpose", [x], (3, CHIP_SIZE, CHIP_SIZE), perm=[0, 3, 1, 2])

    tags: dict[str, str] = {}
    pending_con = None
    for layer, params in layers:
        kind = layer.kind
        if kind == "con":
            pending_con = params  # every con_ here is followed by an affine_
        elif kind == "affine":
            x, pending_con = _conv(g, x, pending_con, params), None
        elif kind == "relu":
            x = g.op("Relu", [x], g.shapes[x])
        elif kind in ("max_pool", "avg_pool"):
            x = _pool(g, x, "MaxPool" if kind == "max_pool" else "AveragePool", params)
        elif kind.startswith("tag"):
            tags[kind[-1]] = x
        elif kind.startswith("skip"):
            x = tags[kind[-1]]
        elif kind.startswith("add_prev"):
            x = _add(g, x, tags[kind[-1]])
        elif kind == "fc":
            if g.shapes[x] != (params["weight"].shape[0], 1, 1):
                raise ValueError("fc_ layer input size does not match")
            x = g.op("Flatten", [x], None)
            g.op("MatMul", [x, g.const(params["weight"])], None, output="descriptors")

    graph = helper.make_graph(
        g.nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("chips", TensorProto.FLOAT, ["N", CHIP_SIZE, CHIP_SIZE, 3])],
        [helper.make_tensor_value_info("descriptors", TensorProto.FLOAT, ["N", 128])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION, producer_name="facecluster.embed.dlib_to_onnx")
    onnx.checker.check_model(model)
    return model


def convert(dat_path: str) -> onnx.ModelProto:
    """Convert dlib's face recognition ResNet weights to an ONNX model.

    Parameters
    ----------
    dat_path : str
        Path to ``dlib_face_recognition_resnet_model_v1.dat`` (uncompressed), e.g.
        ``face_recognition_models.face_recognition_model_location()``.

    Returns
    -------
    onnx.ModelProto
        Input ``chips`` float32 ``[N, 150, 150, 3]`` (RGB values 0..255 of aligned chips),
        output ``descriptors`` float32 ``[N, 128]``.

    Raises
    ------
    ValueError
        If the file is not a serialized ``anet_type`` of dlib's face recognition example.

    Examples
    --------
    >>> import face_recognition_models  # doctest: +SKIP
    >>> model = convert(face_recognition_models.face_recognition_model_location())  # doctest: +SKIP
    >>> onnx.save(model, "dlib_resnet.onnx")  # doctest: +SKIP
    """
    data = Path(dat_path).read_bytes()
    try:
        return _build(*_read_network(data))
    except ValueError as error:
        raise ValueError(f"{dat_path} is not dlib's face recognition ResNet: {error}") from None
