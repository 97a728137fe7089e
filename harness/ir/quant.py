"""int8 quantisation arithmetic as TFLite defines it, shared by the TFLite and MCU exporters.

Activations: asymmetric per-tensor int8 (scale, zero point). Weights: symmetric per output channel
(zero point 0). Bias: int32 with scale ``s_in * s_w[c]``. Requantisation: a Q31 multiplier and a
shift per channel, as in TFLite's ``QuantizeMultiplier``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class QParams:
    """Quantisation of one tensor: ``real = scale * (q - zero_point)``."""

    scale: Any  # numpy scalar per tensor, (C,) array per channel
    zero_point: Any
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return np.ndim(self.scale) > 0

    def quantize(self, x: np.ndarray) -> np.ndarray:
        q = np.round(np.asarray(x, dtype=np.float64) / self.scale) + self.zero_point
        return np.clip(q, -128, 127).astype(np.int8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return ((q.astype(np.float64) - self.zero_point) * self.scale).astype(np.float32)


def activation_qparams(lo: float, hi: float) -> QParams:
    """Asymmetric int8 parameters covering ``[lo, hi]`` (widened to include 0, as TFLite needs)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-8:
        hi = lo + 1e-8
    scale = (hi - lo) / 255.0
    zp = int(np.clip(round(-128 - lo / scale), -128, 127))
    return QParams(np.float64(scale), np.int64(zp))


def weight_qparams(w_out_in: np.ndarray) -> QParams:
    """Symmetric per-output-channel parameters for a ``(out, ...)`` weight array."""
    flat = np.abs(w_out_in.reshape(w_out_in.shape[0], -1)).max(axis=1).astype(np.float64)
    scale = np.where(flat > 0, flat / 127.0, 1.0)
    return QParams(scale, np.zeros(len(scale), dtype=np.int64), axis=0)


def quantize_weights(w_out_in: np.ndarray) -> tuple[np.ndarray, QParams]:
    """int8 weights (symmetric, per output channel) and their parameters."""
    qp = weight_qparams(w_out_in)
    shape = (-1,) + (1,) * (w_out_in.ndim - 1)
    q = np.clip(np.round(w_out_in / qp.scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, qp


INT32_MAX = 2**31 - 1


def quantize_bias(b: np.ndarray, s_in: float, s_w: np.ndarray) -> np.ndarray:
    """int32 bias with scale ``s_in * s_w`` (saturated; :func:`quantize_dense` avoids saturation)."""
    q = np.round(np.asarray(b, dtype=np.float64) / (s_in * np.asarray(s_w, dtype=np.float64)))
    return np.clip(q, -INT32_MAX, INT32_MAX).astype(np.int32)


def quantize_dense(
    w_out_in: np.ndarray, b: np.ndarray, s_in: float
) -> tuple[np.ndarray, QParams, np.ndarray]:
    """int8 weights, their parameters and the int32 bias of one dense layer.

    A channel whose weights are almost zero (a dead unit) would get so small a scale that its bias
    overflows int32; its scale is raised until the bias fits (its weights then quantise to ~0, which
    is what they are).
    """
    w = np.asarray(w_out_in, dtype=np.float64)
    qp = weight_qparams(w)
    need = np.abs(np.asarray(b, dtype=np.float64)) / (s_in * INT32_MAX) * 1.001
    scale = np.maximum(qp.scale, need)
    shape = (-1,) + (1,) * (w.ndim - 1)
    qw = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    wq = QParams(scale, qp.zero_point, axis=0)
    return qw, wq, quantize_bias(b, s_in, scale)


def quantize_multiplier(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q31 multiplier and left shift with ``m ≈ mult * 2**(shift - 31)`` (TFLite convention)."""
    m = np.atleast_1d(np.asarray(m, dtype=np.float64))
    mant, exp = np.frexp(m)
    q = np.round(mant * (1 << 31)).astype(np.int64)
    overflow = q == (1 << 31)
    q[overflow] //= 2
    exp[overflow] += 1
    q[m == 0] = 0
    exp[m == 0] = 0
    return q.astype(np.int32), exp.astype(np.int32)


class Calibratable(Protocol):
    """What :func:`calibrate` needs of a network (:class:`harness.ir.network.Network` is one).

    A protocol, not an import: this module is plain arithmetic under the IR, and the layers and
    exporters above it import it.
    """

    @property
    def layers(self) -> Sequence[object]: ...

    def activations(self, x: np.ndarray) -> list[np.ndarray]: ...


# Layers whose TFLite int8 op must keep its input's parameters (RESHAPE, MAX_POOL_2D and
# AVERAGE_POOL_2D by the int8 spec): their output values lie inside the input's range, so they are
# given the input's parameters and need no requantising QUANTIZE after them.
SAME_Q_KINDS = frozenset({"reshape", "flatten", "maxpool2d", "avgpool2d"})


@dataclass(frozen=True)
class BlockQ:
    """int8 parameters of the tensors inside a residual block, set by :func:`calibrate` as the
    block's ``inner_q``: the output of every body layer and of every shortcut layer, in order. The
    block's input and output parameters are the enclosing list's; an identity shortcut has none."""

    body: list[QParams]
    shortcut: list[QParams]


def calibrate(net: Calibratable, x: np.ndarray) -> list[QParams]:
    """Activation parameters for the network input and every layer output (min/max over ``x``).

    Layers with internal tensors (Monarch, butterfly, low-rank) also record their own ranges here
    through their ``calibrate(layer_input)`` method. Residual blocks (layers with ``body`` and
    ``shortcut`` lists) are calibrated inside, recursively, and receive a :class:`BlockQ` as
    ``inner_q``. Layout-only and pooling layers (:data:`SAME_Q_KINDS`) keep their input's parameters.
    Calibrate the network that is exported: with BatchNorm folded (``fold_batchnorm``), as
    :func:`harness.ir.export.prepare.quantisable` does.
    """
    return _calibrate(net.layers, net.activations(x))


def _calibrate(layers: Sequence[object], acts: list[np.ndarray]) -> list[QParams]:
    for layer, a in zip(layers, acts, strict=False):
        hook = getattr(layer, "calibrate", None)
        if callable(hook):
            hook(a)
    q = [activation_qparams(acts[0].min(), acts[0].max())]
    for layer, a_in, a in zip(layers, acts, acts[1:], strict=False):
        body = getattr(layer, "body", None)
        if body is not None:
            shortcut = list(getattr(layer, "shortcut", None) or [])
            inner = BlockQ(_calibrate(body, _run(body, a_in))[1:], [])
            if shortcut:
                inner = BlockQ(inner.body, _calibrate(shortcut, _run(shortcut, a_in))[1:])
            layer.inner_q = inner  # type: ignore[attr-defined]
        same = getattr(layer, "kind", None) in SAME_Q_KINDS
        q.append(q[-1] if same else activation_qparams(a.min(), a.max()))
    return q


def _run(layers: Sequence[object], x: np.ndarray) -> list[np.ndarray]:
    """The input and every layer's output (float forward passes)."""
    out = [np.asarray(x, dtype=np.float32)]
    for layer in layers:
        out.append(layer.forward(out[-1]))  # type: ignore[attr-defined]
    return out


# Convolutions (additions for CONV_2D / DEPTHWISE_CONV_2D and the integer ops around them)


def weight_qparams_axis(w: np.ndarray, axis: int) -> QParams:
    """Symmetric per-channel parameters along ``axis`` (0 for OHWI CONV_2D, 3 for 1HWC depthwise)."""
    w = np.asarray(w, dtype=np.float64)
    flat = np.abs(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)).max(axis=1)
    scale = np.where(flat > 0, flat / 127.0, 1.0)
    return QParams(scale, np.zeros(len(scale), dtype=np.int64), axis=axis)


def quantize_conv(
    w: np.ndarray, b: np.ndarray, s_in: float, axis: int
) -> tuple[np.ndarray, QParams, np.ndarray]:
    """int8 weights (symmetric per channel along ``axis``, zero point 0), their parameters and the
    int32 bias (scale ``s_in * s_w[c]``, zero point 0), as the TFLite int8 spec defines them.

    As in :func:`quantize_dense`, a channel whose bias would overflow int32 gets a larger scale.
    Scales are rounded to float32 first (what the ``.tflite`` file stores), so the bias and the
    weights are quantised with exactly the scales the kernels read back.
    """
    w = np.asarray(w, dtype=np.float64)
    qp = weight_qparams_axis(w, axis)
    s_in32 = float(np.float32(s_in))
    need = np.abs(np.asarray(b, dtype=np.float64)) / (s_in32 * INT32_MAX) * 1.001
    scale = np.maximum(qp.scale, need).astype(np.float32).astype(np.float64)
    shape = [1] * w.ndim
    shape[axis] = -1
    qw = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return qw, QParams(scale, qp.zero_point, axis=axis), quantize_bias(b, s_in32, scale)


def quantize_multiplier_tflite(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`quantize_multiplier` with TFLite's edge rules: a multiplier below ``2**-31``
    (shift < -31) becomes ``(0, 0)``, rounding of the mantissa is half away from zero."""
    m = np.atleast_1d(np.asarray(m, dtype=np.float64))
    mant, exp = np.frexp(m)
    q = (np.sign(mant) * np.floor(np.abs(mant) * (1 << 31) + 0.5)).astype(np.int64)
    overflow = q == (1 << 31)
    q[overflow] //= 2
    exp[overflow] += 1
    tiny = (exp < -31) | (m == 0)
    q[tiny] = 0
    exp[tiny] = 0
    return q.astype(np.int32), exp.astype(np.int32)


def conv_multipliers(s_in: float, s_w: np.ndarray, s_out: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel requantisation multiplier and shift as TFLite's ``PopulateConvolutionQuantizationParams``
    computes them: float32 scales (as stored) multiplied in double, ``s_in * s_w[c] / s_out``."""
    f32 = np.float32
    real = np.float64(f32(s_in)) * np.asarray(s_w, dtype=f32).astype(np.float64) / np.float64(f32(s_out))
    return quantize_multiplier_tflite(real)


_Q31_LOW = (1 << 31) - 1


def _srdhm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` on int64 arrays holding int32 values."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    num = a * b
    # nudge 2**30 for a non-negative product, 1 - 2**30 for a negative one (bit tricks: no np.where)
    num += (1 << 30) - ((num >> 63) & _Q31_LOW)
    # C++ integer division truncates toward zero: add 2**31 - 1 to negative numerators, then shift
    num += (num >> 63) & _Q31_LOW
    num >>= 31
    if np.any(b == -(1 << 31)):  # the one overflowing case, -2**31 * -2**31
        num = np.where((a == b) & (a == -(1 << 31)), INT32_MAX, num)
    return num


def _rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT`` (round half away from zero)."""
    x = np.asarray(x, dtype=np.int64)
    e = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << e) - 1
    up = (x & mask) > (mask >> 1) + ((x >> 63) & 1)
    return (x >> e) + up


def multiply_by_quantized_multiplier(x: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """TFLite's ``MultiplyByQuantizedMultiplier`` (the default double-rounding build) on int arrays,
    broadcasting ``mult``/``shift`` (e.g. per channel on the last axis)."""
    shift = np.asarray(shift, dtype=np.int64)
    m = np.asarray(mult, dtype=np.int64)
    xs = np.asarray(x, dtype=np.int64)
    if np.any(shift > 0):
        xs = np.clip(xs * (np.int64(1) << np.maximum(shift, 0)), -(1 << 31), INT32_MAX)
    right = np.maximum(-shift, 0)
    if np.any(m < 0):  # not a TFLite multiplier, but keep the general definition
        return _rounding_divide_by_pot(_srdhm(xs, m), right)
    # m >= 0: both roundings are half away from zero, so work on magnitudes (fewer array passes):
    # |SRDHM| = (|x m| + 2**30 - [x m < 0]) >> 31, then |RDBPOT| = (|SRDHM| + 2**(e-1)) >> e
    prod = xs * m
    neg = prod < 0
    mag = np.abs(prod)
    mag += 1 << 30
    mag -= neg
    mag >>= 31
    mag += (np.int64(1) << right) >> 1
    mag >>= right
    return np.negative(mag, out=mag, where=neg)


def activation_range_int8(q: QParams, act: str | None) -> tuple[int, int]:
    """int8 clamp range of a fused activation (``None``, ``"relu"``, ``"relu6"``) on output ``q``,
    as TFLite's ``CalculateActivationRangeQuantized`` computes it."""
    scale, zp = float(np.float32(q.scale)), int(q.zero_point)

    def at(v: float) -> int:
        r = np.float32(v) / np.float32(scale)
        return zp + int(np.sign(r) * np.floor(abs(r) + 0.5))

    if act is None:
        return -128, 127
    if act == "relu":
        return max(-128, at(0.0)), 127
    if act == "relu6":
        return max(-128, at(0.0)), min(127, at(6.0))
    raise ValueError(f"unknown fused activation {act!r}: use None, 'relu' or 'relu6'")
