"""NumPy interpreter of a :class:`~.blob.graph.QGraph`, bit-exact with LiteRT's reference int8 kernels
(and so with the firmware, which runs the same integers).

Batch-first and vectorised: convolutions and fully connected layers are one matrix product per
batch chunk (im2col). The products run in float64, which is exact here: every product of an int8
weight and an input offset by its zero point is below 2**15 in magnitude, so a sum of fewer than
2**38 of them is an integer below 2**53 that float64 holds exactly; the requantisation then runs in
int64 (:func:`harness.ir.quant.multiply_by_quantized_multiplier`). The arithmetic of every operator
is the one :mod:`.blob.graph` documents.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..ir.quant import multiply_by_quantized_multiplier as mbqm
from .blob.container import BlobError
from .blob.factored import sat16
from .blob.graph import QGraph, QOp

# rows of an im2col matrix per matrix product (bounds the float64 temporaries to a few hundred MB)
_CHUNK_ELEMS = 1 << 24

Runner = Callable[[QOp, list[np.ndarray], QGraph], np.ndarray]
RUNNERS: dict[str, Runner] = {}


def _runs(kind: str) -> Callable[[Runner], Runner]:
    def deco(fn: Runner) -> Runner:
        RUNNERS[kind] = fn
        return fn

    return deco


def _windows(x: np.ndarray, op: QOp, kh: int, kw: int, oh: int, ow: int, fill: int) -> np.ndarray:
    """``(B, OH, OW, KH, KW, C)`` view of the windows of an NHWC batch; out-of-bounds taps read ``fill``."""
    a = op.attrs
    sh, sw, pt, pl = a["stride_h"], a["stride_w"], a["pad_top"], a["pad_left"]
    _, h, w, _ = x.shape
    pb = max((oh - 1) * sh + kh - h - pt, 0)
    pr = max((ow - 1) * sw + kw - w - pl, 0)
    if pt or pb or pl or pr:
        x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=fill)
    v = sliding_window_view(x, (kh, kw), axis=(1, 2))  # (B, H', W', C, KH, KW)
    return v[:, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw].transpose(0, 1, 2, 4, 5, 3)


def single_round(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``(acc * mult + 2**(30 - shift)) >> (31 - shift)`` in int64: one rounding, half up."""
    ts = 31 - np.asarray(shift, np.int64)
    return (np.asarray(acc, np.int64) * np.asarray(mult, np.int64) + (np.int64(1) << (ts - 1))) >> ts


def _requant(acc: np.ndarray, op: QOp, g: QGraph) -> np.ndarray:
    """``clamp(MBQM(acc, mult, shift) + zp_out, act_min, act_max)`` per channel on the last axis
    (single rounding instead of MBQM where ``attrs["rounding"]`` is 1)."""
    p = op.params
    scale = single_round if op.attrs.get("rounding", 0) == 1 else mbqm
    y = scale(acc, p["mult"].astype(np.int64), p["shift"].astype(np.int64)) + g.tensors[op.output].zero_point
    return np.clip(y, op.act_min, op.act_max).astype(np.int8)


def _out_hw(op: QOp, g: QGraph) -> tuple[int, int]:
    shape = g.tensors[op.output].shape
    return int(shape[0]), int(shape[1])


@_runs("conv2d")
def _conv2d(op: QOp, ins: list[np.ndarray], g: QGraph) -> np.ndarray:
    x = ins[0].astype(np.int64) - g.tensors[op.inputs[0]].zero_point
    w = op.params["w"]
    co, kh, kw, ci = w.shape
    oh, ow = _out_hw(op, g)
    wm = w.reshape(co, -1).astype(np.float64).T
    per = max(1, _CHUNK_ELEMS // max(1, oh * ow * kh * kw * ci))
    acc = np.empty((len(x), oh, ow, co), np.int64)
    for s in range(0, len(x), per):
        cols = _windows(x[s : s + per], op, kh, kw, oh, ow, 0).reshape(-1, kh * kw * ci)
        acc[s : s + per] = np.rint(cols.astype(np.float64) @ wm).astype(np.int64).reshape(-1, oh, ow, co)
    return _requant(acc + op.params["bias"], op, g)


@_runs("dwconv2d")
def _dwconv2d(op: QOp, ins: list[np.ndarray], g: QGraph) -> np.ndarray:
    # int32 suffices: |acc| <= KH*KW * 255 * 127 for any window that fits a model
    x = ins[0].astype(np.int32) - np.int32(g.tensors[op.inputs[0]].zero_point)
    w = op.params["w"].astype(np.int32)  # (KH, KW, C)
    kh, kw, _ = w.shape
    oh, ow = _out_hw(op, g)
    acc = np.zeros((len(x), oh, ow, w.shape[2]), np.int32)
    win = _windows(x, op, kh, kw, oh, ow, 0)
    for i in range(kh):  # tap by tap: no (B, OH, OW, KH, KW, C) temporary
        for j in range(kw):
            acc += win[:, :, :, i, j, :] * w[i, j]
    return _requant(acc.astype(np.int64) + op.params["bias"], op, g)


@_runs("dense")
def _dense(op: QOp, ins: list[np.ndarray], g: QGraph) -> np.ndarray:
    x = ins[0].reshape(len(ins[0]), -1).astype(np.float64) - g.tensors[op.inputs[0]].zero_point
    acc = np.rint(x @ op.params["w"].astype(np.float64).T).astype(np.int64)
    return _requant(acc + op.params["bias"], op, g)


@_runs("maxpool")
def _maxpool(op: QOp, ins: list[np.ndarray], g: QGraph) -> np.ndarray:
    oh, ow = _out_hw(op, g)
    win = _windows(ins[0].astype(np.int16), op, op.attrs["kh"], op.attrs["kw"], oh, ow, -(1 << 14))
    return np.clip(win.max(axis=(3, 4)), op.act_min, op.act_max).astype(np.int8)


def _div_round_away(s: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """``s / n`` rounded half away from zero, as C's ``s > 0 ? (s + n/2) / n : (s - n/2) / n``."""
    return np.where(s > 0, (s + n // 2) // n, -((-s + n // 2) // n))


@_runs("avgpool")
def _avgpool(op: QOp, ins: list[np.ndarray], g: QGraph) -> np.ndarray:
    oh, ow = _out_hw(op, g)
    kh, kw = op.attrs["kh"], op.attrs["kw"]
    x = ins[0].astype(np.int64)
    s = _windows(x, op, kh, kw, oh, ow, 0).sum(axis=(3, 4))
    ones = np.ones((1, *x.shape[1:3], 1), np.int64)
    n = _windows(ones, op, kh, kw, oh, ow, 0).sum(axis=(3, 4))  # in-bounds taps per output position
    return np.clip(_div_round_away(s, n), op.act_min, op.act_max).astype(np.int8)


@_runs("mean")
def _mean(op: QOp, ins: list[np.ndarray], g: QGraph) -> np.ndarray:
    x = ins[0].astype(np.int64) - g.tensors[op.inputs[0]].zero_point
    acc = mbqm(x.sum(axis=(1, 2)), op.params["mult"].astype(np.int64), op.params["shift"].astype(np.int64))
    y = np.clip(acc + g.tensors[op.output].zero_point, op.act_min, op.act_max).astype(np.int8)
    return y.reshape(len(x), *g.tensors[op.output].shape)


@_runs("add")
def _add(op: QOp, ins: list[np.ndarray], g: QGraph) -> np.ndarray:
    p = {k: v.astype(np.int64) for k, v in op.params.items()}
    left = np.int64(1) << p["left_shift"][0]
    a = (ins[0].astype(np.int64) - g.tensors[op.inputs[0]].zero_point) * left
    b = (ins[1].astype(np.int64) - g.tensors[op.inputs[1]].zero_point) * left
    raw = mbqm(a, p["mult_a"][0], p["shift_a"][0]) + mbqm(b, p["mult_b"][0], p["shift_b"][0])
    y = mbqm(raw, p["mult_out"][0], p["shift_out"][0]) + g.tensors[op.output].zero_point
    return np.clip(y, op.act_min, op.act_max).astype(np.int8)


@_runs("reshape")
def _reshape(op: QOp, ins: list[np.ndarray], g: QGraph) -> np.ndarray:
    return ins[0].reshape(len(ins[0]), *g.tensors[op.output].shape)


@_runs("pwconv_csr")
def _pwconv_csr(op: QOp, ins: list[np.ndarray], g: QGraph) -> np.ndarray:
    w = op.params["w"]
    cin = w.shape[-1]
    x = ins[0].reshape(-1, cin).astype(np.float64) - g.tensors[op.inputs[0]].zero_point
    acc = np.rint(x @ w.reshape(w.shape[0], cin).astype(np.float64).T).astype(np.int64)
    y = _requant(acc + op.params["bias"], op, g)
    return y.reshape(len(ins[0]), *g.tensors[op.output].shape)


@_runs("pwconv_monarch")
def _pwconv_monarch(op: QOp, ins: list[np.ndarray], g: QGraph) -> np.ndarray:
    p = op.params
    k, q, pp = p["w1"].shape
    s = p["w2"].shape[1]
    x = ins[0].reshape(-1, k, pp).astype(np.int64)  # raw int8: bias1 holds the zero point
    acc1 = np.einsum("bip,iqp->biq", x, p["w1"].astype(np.int64)) + p["bias1"].astype(np.int64).reshape(k, q)
    h = sat16(acc1, int(p["sh1"].reshape(-1)[0]))  # (B, k, q)
    acc = np.einsum("bij,jti->bjt", h, p["w2"].astype(np.int64)).reshape(-1, q * s)
    acc = acc + p["bias"].astype(np.int64)
    y = single_round(acc, p["mult"], p["shift"]) + g.tensors[op.output].zero_point
    y = np.clip(y, op.act_min, op.act_max).astype(np.int8)
    return y.reshape(len(ins[0]), *g.tensors[op.output].shape)


def run_graph_all(g: QGraph, x_int8: np.ndarray) -> list[np.ndarray | None]:
    """Every tensor of ``g`` (``None`` for one no operator wrote) for the int8 batch ``x_int8``
    (``(B, *input shape)`` or flat rows ``(B, input size)``)."""
    x = np.asarray(x_int8)
    if x.dtype != np.int8:
        raise BlobError(f"the graph takes int8 inputs, got {x.dtype}: quantise with QGraph.quantize_input")
    t_in = g.in_tensor
    if x.ndim < 1 or x[0].size != t_in.size:
        raise BlobError(f"input rows of {x[0].size if x.ndim else 0} values; the graph takes {t_in.size}")
    vals: list[np.ndarray | None] = [None] * len(g.tensors)
    vals[g.input] = x.reshape(len(x), *t_in.shape)
    for op in g.ops:
        run = RUNNERS.get(op.kind)
        if run is None:
            raise BlobError(f"operator kind {op.kind!r} ({op.where}) has no reference runner")
        ins = [vals[i] for i in op.inputs]
        if any(v is None for v in ins):
            raise BlobError(f"{op.where}: an input tensor is read before it is written")
        vals[op.output] = run(op, ins, g)  # type: ignore[arg-type]
    return vals


def run_graph(g: QGraph, x_int8: np.ndarray) -> np.ndarray:
    """The int8 output batch ``(B, *output shape)`` of ``g`` for the int8 batch ``x_int8``."""
    out = run_graph_all(g, x_int8)[g.output]
    if out is None:
        raise BlobError("no operator writes the graph's output tensor")
    return out
