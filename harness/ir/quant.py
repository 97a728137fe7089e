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


def calibrate(net: Calibratable, x: np.ndarray) -> list[QParams]:
    """Activation parameters for the network input and every layer output (min/max over ``x``).

    Layers with internal tensors (Monarch, butterfly, low-rank) also record their own ranges here
    through their ``calibrate(layer_input)`` method.
    """
    acts = net.activations(x)
    for layer, a in zip(net.layers, acts, strict=False):
        hook = getattr(layer, "calibrate", None)
        if callable(hook):
            hook(a)
    return [activation_qparams(a.min(), a.max()) for a in acts]
