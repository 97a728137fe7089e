"""Op-level ``.tflite`` builders of convolutional networks: NumPy arrays in, ops appended to a :class:`TfliteGraph`.

Every builder takes the graph ``g`` and the index ``x`` of an NHWC activation tensor (batch may be
``-1``) and returns the index of its output tensor, so a layer's export methods are one call each::

    class Conv2D(Layer):
        def to_tflite(self, g, x):
            return conv2d(g, x, self.w_ohwi, self.b, stride=self.stride, padding=self.padding, act=self.act)

        def to_tflite_dynamic(self, g, x):
            return conv2d_dynamic(g, x, self.w_ohwi, self.b, stride=..., padding=..., act=...)

        def to_tflite_int8(self, g, x, qin, qout):
            return conv2d_int8(g, x, self.w_ohwi, self.b, qin, qout, stride=..., padding=..., act=...)

Float builders: :func:`conv2d`, :func:`depthwise_conv2d`, :func:`conv1d`, :func:`max_pool2d`,
:func:`avg_pool2d`, :func:`mean_hw`, :func:`add`, :func:`reshape`, :func:`relu`. Each has an ``_int8`` twin taking
the input parameters ``qin`` (from :func:`harness.ir.quant.calibrate`) and output parameters ``qout``;
weights are quantised here following the TFLite int8 spec (:func:`harness.ir.quant.quantize_conv`):
symmetric int8 per output channel with zero point 0 (``quantized_dimension`` 0 for CONV_2D's OHWI
weights, 3 for DEPTHWISE_CONV_2D's 1HWC weights), int32 bias of scale ``qin.scale * s_w[c]``,
asymmetric per-tensor int8 activations. Ops whose spec ties the output to the input parameters
(pools, RESHAPE) write their output with ``qin`` and append a requantising QUANTIZE only when ``qout``
differs. Dynamic-range twins exist for the ops with weights (:func:`conv2d_dynamic`,
:func:`depthwise_conv2d_dynamic`, :func:`conv1d_dynamic`): int8 per-channel weights, float
activations; the other ops have no weights, so their float builder is their dynamic-range export.

A layer that receives the IR's flat ``(B, H*W*C)`` batch reshapes first, e.g.
``x = reshape(g, x, [-1, H, W, C])`` (``reshape_int8(g, x, [-1, H, W, C], qin)`` in int8; free at run
time), and flattens its output the same way; global pooling (:func:`mean_hw`) already returns ``(B, C)``.

Layouts: ``conv2d`` weights are ``(out, kh, kw, in)`` (OHWI), ``depthwise_conv2d`` weights are
``(1, kh, kw, channels)`` (depth multiplier 1), ``conv1d`` weights are ``(out, k, in)`` on an input
``(B, L, C)`` and become a height-1 CONV_2D between two RESHAPEs. ``act`` is ``None``, ``"relu"`` or
``"relu6"`` (fused); ``padding`` is ``"same"`` or ``"valid"`` with TFLite's rules.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as tfl

from ..quant import QParams, quantize_conv
from .tflite_graph import (
    TfliteGraph,
    add_options,
    conv2d_options,
    depthwise_conv2d_options,
    pool2d_options,
    reducer_options,
    reshape_options,
)

Pair = tuple[int, int]


def out_size(n: int, k: int, stride: int, pad: str) -> int:
    """Spatial output size of a window ``k`` with ``stride`` under TFLite's SAME/VALID rules."""
    if pad == "same":
        return -(-n // stride)
    if pad == "valid":
        if n < k:
            raise ValueError(f"window {k} is larger than the input {n} with 'valid' padding: use 'same'")
        return (n - k) // stride + 1
    raise ValueError(f"unknown padding {pad!r}: use 'same' or 'valid'")


def _pair(v: int | Pair) -> Pair:
    return (int(v), int(v)) if isinstance(v, int | np.integer) else (int(v[0]), int(v[1]))


def _nhwc(g: TfliteGraph, x: int, what: str) -> list[int]:
    shape = g.shape(x)
    if len(shape) != 4:
        raise ValueError(f"{what} needs an NHWC (rank-4) input, got shape {shape}: reshape it first")
    return shape


def _window_out(g: TfliteGraph, x: int, k: Pair, stride: Pair, pad: str, c_out: int, what: str) -> list[int]:
    b, h, w, _ = _nhwc(g, x, what)
    return [b, out_size(h, k[0], stride[0], pad), out_size(w, k[1], stride[1], pad), c_out]


# CONV_2D


def _conv2d(
    g: TfliteGraph,
    x: int,
    w: np.ndarray,
    wt: int,
    bt: int,
    dtype: Any,
    q: QParams | None,
    stride: Pair,
    pad: str,
    act: str | None,
) -> int:
    if w.ndim != 4 or g.shape(x)[-1] != w.shape[3]:
        raise ValueError(f"conv2d weights {w.shape} must be OHWI with I = input channels {g.shape(x)[-1]}")
    y = g.tensor("conv", _window_out(g, x, w.shape[1:3], stride, pad, w.shape[0], "conv2d"), dtype, q=q)
    opt = conv2d_options(stride, pad, act)
    g.op(tfl.BuiltinOperator.CONV_2D, [x, wt, bt], [y], tfl.BuiltinOptions.Conv2DOptions, opt)
    return y


def conv2d(
    g: TfliteGraph,
    x: int,
    w_ohwi: np.ndarray,
    b: np.ndarray,
    *,
    stride: int | Pair = 1,
    padding: str = "same",
    act: str | None = None,
) -> int:
    """Float CONV_2D of an NHWC tensor with OHWI weights."""
    w = np.asarray(w_ohwi, dtype=np.float32)
    wt, bt = g.const("w", w), g.const("b", np.asarray(b, dtype=np.float32))
    return _conv2d(g, x, w, wt, bt, np.float32, None, _pair(stride), padding, act)


def conv2d_int8(
    g: TfliteGraph,
    x: int,
    w_ohwi: np.ndarray,
    b: np.ndarray,
    qin: QParams,
    qout: QParams,
    *,
    stride: int | Pair = 1,
    padding: str = "same",
    act: str | None = None,
) -> int:
    """int8 CONV_2D: per-output-channel weights (quantized dimension 0), int32 bias."""
    _expect_q(g, x, qin, "conv2d_int8")
    w = np.asarray(w_ohwi, dtype=np.float64)
    wt, bt = _int8_weights(g, w, b, qin, axis=0)
    return _conv2d(g, x, w, wt, bt, np.int8, qout, _pair(stride), padding, act)


def conv2d_dynamic(
    g: TfliteGraph,
    x: int,
    w_ohwi: np.ndarray,
    b: np.ndarray,
    *,
    stride: int | Pair = 1,
    padding: str = "same",
    act: str | None = None,
) -> int:
    """Dynamic-range CONV_2D: int8 per-channel weights, float input, bias and output (hybrid kernel)."""
    w = np.asarray(w_ohwi, dtype=np.float64)
    wt, bt = _dynamic_weights(g, w, b, axis=0)
    return _conv2d(g, x, w, wt, bt, np.float32, None, _pair(stride), padding, act)


def _int8_weights(g: TfliteGraph, w: np.ndarray, b: np.ndarray, qin: QParams, *, axis: int) -> tuple[int, int]:
    """Constants of int8 weights (per channel along ``axis``) and their int32 bias."""
    qw, wq, qb = quantize_conv(w, b, float(qin.scale), axis=axis)
    return g.const("w", qw, wq), g.const("b", qb, _bias_q(qin, wq))


def _dynamic_weights(g: TfliteGraph, w: np.ndarray, b: np.ndarray, *, axis: int) -> tuple[int, int]:
    """Constants of dynamic-range weights (int8 per channel along ``axis``) and their float bias."""
    qw, wq, _ = quantize_conv(w, np.zeros(w.shape[axis]), 1.0, axis=axis)
    return g.const("w", qw, wq), g.const("b", np.asarray(b, dtype=np.float32))


def _bias_q(qin: QParams, wq: QParams) -> QParams:
    """Parameters of an int32 bias: scale ``s_in * s_w[c]`` (float32, as stored), zero point 0, axis 0."""
    s = np.float64(np.float32(qin.scale)) * np.asarray(wq.scale, dtype=np.float64)
    return QParams(s, np.zeros(len(s), dtype=np.int64), axis=0)


# DEPTHWISE_CONV_2D (depth multiplier 1)


def _depthwise(
    g: TfliteGraph,
    x: int,
    w: np.ndarray,
    wt: int,
    bt: int,
    dtype: Any,
    q: QParams | None,
    stride: Pair,
    pad: str,
    act: str | None,
) -> int:
    c = g.shape(x)[-1]
    if w.ndim != 4 or w.shape[0] != 1 or w.shape[3] != c:
        raise ValueError(f"depthwise weights {w.shape} must be (1, kh, kw, {c}) (depth multiplier 1)")
    y = g.tensor("dw", _window_out(g, x, w.shape[1:3], stride, pad, c, "depthwise_conv2d"), dtype, q=q)
    opt = depthwise_conv2d_options(stride, pad, act)
    g.op(
        tfl.BuiltinOperator.DEPTHWISE_CONV_2D,
        [x, wt, bt],
        [y],
        tfl.BuiltinOptions.DepthwiseConv2DOptions,
        opt,
    )
    return y


def depthwise_conv2d(
    g: TfliteGraph,
    x: int,
    w_1hwc: np.ndarray,
    b: np.ndarray,
    *,
    stride: int | Pair = 1,
    padding: str = "same",
    act: str | None = None,
) -> int:
    """Float DEPTHWISE_CONV_2D with ``(1, kh, kw, C)`` weights."""
    w = np.asarray(w_1hwc, dtype=np.float32)
    wt, bt = g.const("w", w), g.const("b", np.asarray(b, dtype=np.float32))
    return _depthwise(g, x, w, wt, bt, np.float32, None, _pair(stride), padding, act)


def depthwise_conv2d_int8(
    g: TfliteGraph,
    x: int,
    w_1hwc: np.ndarray,
    b: np.ndarray,
    qin: QParams,
    qout: QParams,
    *,
    stride: int | Pair = 1,
    padding: str = "same",
    act: str | None = None,
) -> int:
    """int8 DEPTHWISE_CONV_2D: per-channel weights (quantized dimension 3), int32 bias."""
    _expect_q(g, x, qin, "depthwise_conv2d_int8")
    w = np.asarray(w_1hwc, dtype=np.float64)
    wt, bt = _int8_weights(g, w, b, qin, axis=3)
    return _depthwise(g, x, w, wt, bt, np.int8, qout, _pair(stride), padding, act)


def depthwise_conv2d_dynamic(
    g: TfliteGraph,
    x: int,
    w_1hwc: np.ndarray,
    b: np.ndarray,
    *,
    stride: int | Pair = 1,
    padding: str = "same",
    act: str | None = None,
) -> int:
    """Dynamic-range DEPTHWISE_CONV_2D: int8 per-channel weights (axis 3), float activations."""
    w = np.asarray(w_1hwc, dtype=np.float64)
    wt, bt = _dynamic_weights(g, w, b, axis=3)
    return _depthwise(g, x, w, wt, bt, np.float32, None, _pair(stride), padding, act)


# Conv1D: a height-1 CONV_2D between two RESHAPEs


def _conv1d(g: TfliteGraph, x: int, w_oki: np.ndarray, q: QParams | None, run: Any) -> int:
    shape = g.shape(x)
    if len(shape) != 3:
        raise ValueError(f"conv1d needs a (B, L, C) input, got shape {shape}: reshape it first")
    b, n, c = shape
    x4 = _reshape(g, x, [b, 1, n, c], q)
    y4 = run(x4, np.asarray(w_oki)[:, None, :, :])
    _, _, n_out, c_out = g.shape(y4)
    return _reshape(g, y4, [b, n_out, c_out], _tensor_q(g, y4))


def _expect_q(g: TfliteGraph, x: int, q: QParams, what: str) -> None:
    """Refuse an int8 builder call whose ``q`` is not what tensor ``x`` carries (a wiring mistake)."""
    have = _tensor_q(g, x)
    if have is None or not _same_q(have, q):
        raise ValueError(
            f"{what}: input tensor {g.sub.tensors[x].name} is quantised as {have}, not as the given {q}; "
            "pass the parameters of the previous layer's output (act_q[i] of calibrate)"
        )


def _tensor_q(g: TfliteGraph, x: int) -> QParams | None:
    """The per-tensor :class:`QParams` stored on tensor ``x`` (``None`` for a float tensor)."""
    p = g.sub.tensors[x].quantization
    if p is None or not p.scale:
        return None
    return QParams(np.float64(p.scale[0]), np.int64(p.zeroPoint[0]))


def conv1d(
    g: TfliteGraph,
    x: int,
    w_oki: np.ndarray,
    b: np.ndarray,
    *,
    stride: int = 1,
    padding: str = "same",
    act: str | None = None,
) -> int:
    """Float Conv1D of a ``(B, L, C)`` tensor with ``(out, k, in)`` weights; output ``(B, L', out)``."""
    return _conv1d(
        g, x, w_oki, None, lambda x4, w: conv2d(g, x4, w, b, stride=(1, stride), padding=padding, act=act)
    )


def conv1d_int8(
    g: TfliteGraph,
    x: int,
    w_oki: np.ndarray,
    b: np.ndarray,
    qin: QParams,
    qout: QParams,
    *,
    stride: int = 1,
    padding: str = "same",
    act: str | None = None,
) -> int:
    """int8 Conv1D (per-output-channel weights), as :func:`conv1d`."""
    _expect_q(g, x, qin, "conv1d_int8")
    return _conv1d(
        g,
        x,
        w_oki,
        qin,
        lambda x4, w: conv2d_int8(g, x4, w, b, qin, qout, stride=(1, stride), padding=padding, act=act),
    )


def conv1d_dynamic(
    g: TfliteGraph,
    x: int,
    w_oki: np.ndarray,
    b: np.ndarray,
    *,
    stride: int = 1,
    padding: str = "same",
    act: str | None = None,
) -> int:
    """Dynamic-range Conv1D, as :func:`conv1d`."""
    return _conv1d(
        g,
        x,
        w_oki,
        None,
        lambda x4, w: conv2d_dynamic(g, x4, w, b, stride=(1, stride), padding=padding, act=act),
    )


# Pools and global average pooling


def _pool(
    g: TfliteGraph,
    code: int,
    x: int,
    q: QParams | None,
    pool: int | Pair,
    stride: int | Pair | None,
    pad: str,
    act: str | None,
) -> int:
    k = _pair(pool)
    s = k if stride is None else _pair(stride)
    c = g.shape(x)[-1]
    dtype = np.float32 if q is None else np.int8
    y = g.tensor("pool", _window_out(g, x, k, s, pad, c, "pool2d"), dtype, q=q)
    g.op(code, [x], [y], tfl.BuiltinOptions.Pool2DOptions, pool2d_options(k, s, pad, act))
    return y


def max_pool2d(
    g: TfliteGraph,
    x: int,
    pool: int | Pair,
    *,
    stride: int | Pair | None = None,
    padding: str = "valid",
    act: str | None = None,
) -> int:
    """Float MAX_POOL_2D (``stride`` defaults to the window)."""
    return _pool(g, tfl.BuiltinOperator.MAX_POOL_2D, x, None, pool, stride, padding, act)


def avg_pool2d(
    g: TfliteGraph,
    x: int,
    pool: int | Pair,
    *,
    stride: int | Pair | None = None,
    padding: str = "valid",
    act: str | None = None,
) -> int:
    """Float AVERAGE_POOL_2D (SAME padding averages over the in-bounds elements, as TFLite does)."""
    return _pool(g, tfl.BuiltinOperator.AVERAGE_POOL_2D, x, None, pool, stride, padding, act)


def max_pool2d_int8(
    g: TfliteGraph,
    x: int,
    qin: QParams,
    qout: QParams | None,
    pool: int | Pair,
    *,
    stride: int | Pair | None = None,
    padding: str = "valid",
    act: str | None = None,
) -> int:
    """int8 MAX_POOL_2D; the op keeps ``qin`` (spec), a QUANTIZE follows when ``qout`` differs."""
    _expect_q(g, x, qin, "max_pool2d_int8")
    y = _pool(g, tfl.BuiltinOperator.MAX_POOL_2D, x, qin, pool, stride, padding, act)
    return requantize(g, y, qin, qout)


def avg_pool2d_int8(
    g: TfliteGraph,
    x: int,
    qin: QParams,
    qout: QParams | None,
    pool: int | Pair,
    *,
    stride: int | Pair | None = None,
    padding: str = "valid",
    act: str | None = None,
) -> int:
    """int8 AVERAGE_POOL_2D; the op keeps ``qin`` (spec), a QUANTIZE follows when ``qout`` differs."""
    _expect_q(g, x, qin, "avg_pool2d_int8")
    y = _pool(g, tfl.BuiltinOperator.AVERAGE_POOL_2D, x, qin, pool, stride, padding, act)
    return requantize(g, y, qin, qout)


def _mean(g: TfliteGraph, x: int, dtype: Any, q: QParams | None) -> int:
    b, _, _, c = _nhwc(g, x, "mean_hw")
    axes = g.const("axes", np.array([1, 2], dtype=np.int32))
    y = g.tensor("mean", [b, c], dtype, q=q)
    g.op(tfl.BuiltinOperator.MEAN, [x, axes], [y], tfl.BuiltinOptions.ReducerOptions, reducer_options(False))
    return y


def mean_hw(g: TfliteGraph, x: int) -> int:
    """Float global average pooling: MEAN over H and W, ``keep_dims`` false, ``(B, H, W, C)`` → ``(B, C)``."""
    return _mean(g, x, np.float32, None)


def mean_hw_int8(g: TfliteGraph, x: int, qin: QParams, qout: QParams) -> int:
    """int8 global average pooling (MEAN requantises to its own ``qout``); ``qin`` is the input's."""
    _expect_q(g, x, qin, "mean_hw_int8")
    return _mean(g, x, np.int8, qout)


# ADD (residual connections)


def add(g: TfliteGraph, a: int, b: int, *, act: str | None = None) -> int:
    """Float element-wise ADD of two tensors of the same shape."""
    return _add(g, a, b, np.float32, None, act)


def add_int8(
    g: TfliteGraph, a: int, b: int, qa: QParams, qb: QParams, qout: QParams, *, act: str | None = None
) -> int:
    """int8 ADD: each input keeps its own parameters (``qa``, ``qb`` are theirs), output ``qout``."""
    _expect_q(g, a, qa, "add_int8")
    _expect_q(g, b, qb, "add_int8")
    return _add(g, a, b, np.int8, qout, act)


def _add(g: TfliteGraph, a: int, b: int, dtype: Any, q: QParams | None, act: str | None) -> int:
    if g.shape(a) != g.shape(b):
        raise ValueError(f"add needs equal shapes, got {g.shape(a)} and {g.shape(b)}")
    y = g.tensor("add", g.shape(a), dtype, q=q)
    g.op(tfl.BuiltinOperator.ADD, [a, b], [y], tfl.BuiltinOptions.AddOptions, add_options(act))
    return y


# Standalone RELU / RELU6


_RELUS = {"relu": tfl.BuiltinOperator.RELU, "relu6": tfl.BuiltinOperator.RELU6}


def _relu(g: TfliteGraph, x: int, act: str, dtype: Any, q: QParams | None) -> int:
    if act not in _RELUS:
        raise ValueError(f"unknown standalone activation {act!r}: use 'relu' or 'relu6'")
    y = g.tensor(act, g.shape(x), dtype, q=q)
    g.op(_RELUS[act], [x], [y])
    return y


def relu(g: TfliteGraph, x: int, act: str) -> int:
    """Float RELU or RELU6 (``act``) where no op before it can fuse the activation."""
    return _relu(g, x, act, np.float32, None)


def relu_int8(g: TfliteGraph, x: int, act: str, qin: QParams, qout: QParams) -> int:
    """int8 RELU or RELU6; the kernel requantises from ``qin`` to its own ``qout``."""
    _expect_q(g, x, qin, "relu_int8")
    return _relu(g, x, act, np.int8, qout)


# RESHAPE and requantisation


def _reshape(g: TfliteGraph, x: int, shape: list[int], q: QParams | None) -> int:
    src = g.shape(x)
    if src[0] < 0 and shape[0] >= 0:
        raise ValueError(f"reshape of a dynamic-batch tensor {src} needs -1 as the batch of {shape}")
    if src[0] >= 0 and shape.count(-1) == 0 and int(np.prod(src)) != int(np.prod(shape)):
        raise ValueError(f"cannot reshape {src} to {shape}: sizes differ")
    dtype = np.float32 if q is None else np.int8
    st = g.const("shape", np.array(shape, dtype=np.int32))
    y = g.tensor("reshape", shape, dtype, q=q)
    g.op(tfl.BuiltinOperator.RESHAPE, [x, st], [y], tfl.BuiltinOptions.ReshapeOptions, reshape_options(shape))
    return y


def reshape(g: TfliteGraph, x: int, shape: list[int]) -> int:
    """Float RESHAPE to ``shape`` (batch ``-1`` for a dynamic-batch tensor)."""
    return _reshape(g, x, list(shape), None)


def reshape_int8(g: TfliteGraph, x: int, shape: list[int], qin: QParams, qout: QParams | None = None) -> int:
    """int8 RESHAPE (output keeps ``qin``; a QUANTIZE follows when ``qout`` differs)."""
    _expect_q(g, x, qin, "reshape_int8")
    return requantize(g, _reshape(g, x, list(shape), qin), qin, qout)


def requantize(g: TfliteGraph, x: int, qin: QParams, qout: QParams | None) -> int:
    """``x`` itself when ``qout`` is ``None`` or equals ``qin`` (as float32); else an int8→int8 QUANTIZE."""
    if qout is None or _same_q(qin, qout):
        return x
    y = g.tensor("requant", g.shape(x), np.int8, q=qout)
    g.op(tfl.BuiltinOperator.QUANTIZE, [x], [y])
    return y


def _same_q(a: QParams, b: QParams) -> bool:
    return bool(np.float32(a.scale) == np.float32(b.scale)) and int(a.zero_point) == int(b.zero_point)
