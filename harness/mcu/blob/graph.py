"""An int8 operator graph for the MCU: tensors with their own quantisation, operators in execution order.

This is what a full-integer convolutional network becomes before it is packed into a blob (format
version 2, see ``boards/firmware/src/blob.h``): the TFLite importer (:mod:`.tflite_graph`) builds it from
any supported int8 ``.tflite``, the memory planner (:mod:`..plan`) gives every tensor an arena offset,
the NumPy interpreter (:mod:`..graph_ref`) runs it bit-exact with LiteRT's reference kernels, and the
firmware runs the packed bytes with the same integers.

Arithmetic (TFLite's default, *double-rounding* build; NumPy model in
:func:`harness.ir.quant.multiply_by_quantized_multiplier`):

``MBQM(x, M, s)`` = ``RoundingDivideByPOT(SRDHM(x * 2**max(s, 0), M), max(-s, 0))`` where ``SRDHM`` is
gemmlowp's saturating rounding doubling high multiply and ``RoundingDivideByPOT`` rounds half away
from zero.

- ``conv2d``: inputs ``[x]`` (H, W, Cin); ``w`` int8 (Cout, KH, KW, Cin), ``bias`` int32 (Cout),
  ``mult``/``shift`` int32 (Cout). ``acc = bias[c] + Σ w * (x - zp_in)`` over the in-bounds taps
  (padding contributes nothing), ``y = clamp(MBQM(acc, mult[c], shift[c]) + zp_out, act_min, act_max)``.
  Attrs: ``stride_h``, ``stride_w``, ``pad_top``, ``pad_left`` (bottom/right follow from the output shape).
- ``dwconv2d``: as ``conv2d`` per channel, depth multiplier 1; ``w`` int8 (KH, KW, C).
- ``dense``: inputs ``[x]`` flattened; ``w`` int8 (out, in), ``bias``/``mult``/``shift`` per output
  (a per-tensor multiplier is repeated). ``acc`` as for ``conv2d``, but LiteRT's FULLY_CONNECTED
  requantises with *single* rounding (its int64-accumulator path), marked by ``attrs["rounding"] = 1``:
  ``y = clamp(((acc * mult + 2**(30 - shift)) >> (31 - shift)) + zp_out, act_min, act_max)`` (int64),
  per-tensor and per-channel weights alike. ``rounding`` 0 or absent means ``MBQM`` as for ``conv2d``.
- ``maxpool``: max over the in-bounds window, clamped; attrs ``kh``, ``kw``, ``stride_h``, ``stride_w``,
  ``pad_top``, ``pad_left``. Input and output share scale and zero point.
- ``avgpool``: same window; ``s = Σ x`` over the in-bounds taps, ``n`` their count,
  ``y = clamp((s + n//2) // n if s > 0 else (s - n//2) / n truncated toward zero, act_min, act_max)``
  (TFLite's reference rounding: half away from zero). Input and output share scale and zero point.
- ``mean``: mean over H and W of (H, W, C) → (C,) (TFLite ``MEAN`` on axes 1, 2, either
  ``keep_dims``); scalar params ``mult``/``shift`` with ``1 / (H*W)`` folded in as LiteRT's
  ``QuantizedMeanOrSum`` does it (from ``M, s`` of ``s_in / s_out``: ``k = min(floor(log2(H*W)), 32,
  31 + s)``, ``mult = (M << k) // (H*W)``, ``shift = s - k``);
  ``y = clamp(MBQM(Σ (x - zp_in), mult, shift) + zp_out, -128, 127)``.
- ``add``: inputs ``[a, b]`` of one shape; scalar params ``left_shift`` (20), ``mult_a``/``shift_a``,
  ``mult_b``/``shift_b``, ``mult_out``/``shift_out`` as TFLite's ``Prepare`` computes them;
  ``ya = MBQM((a - zp_a) << left_shift, mult_a, shift_a)``, same for b,
  ``y = clamp(MBQM(ya + yb, mult_out, shift_out) + zp_out, act_min, act_max)``.
- ``reshape``: the same bytes under another shape (the planner aliases it in place).
- ``pwconv_csr``: a pointwise (1x1, stride 1, no padding) ``conv2d`` whose weights are mostly zero,
  stored by the blob in compressed sparse rows (the kernel skips the zeros). Same params and the
  same arithmetic as ``conv2d`` (``w`` int8 (Cout, 1, 1, Cin) with its zeros, per-channel MBQM, or
  single rounding with ``attrs["rounding"] = 1``): the integers are those of the dense op, so a
  pruned 1x1 ``conv2d`` of any imported ``.tflite`` may be rewritten into it
  (:func:`harness.mcu.blob.pointwise.sparsify_pointwise`). Input (H, W, Cin) or (W, Cin).
- ``pwconv_monarch``: a Monarch-factored pointwise convolution (the IR's ``Pointwise(Monarch)``),
  at every pixel the MLP blob's Monarch layer (:mod:`.factored`) with its integers:
  ``w1`` int8 (k, q, p), ``bias1`` int32 (k*q) that already holds ``-zp_in * Σ w1`` of its row,
  ``sh1`` (1,), ``w2`` int8 (q, s, k), ``bias``/``mult``/``shift`` per output (q*s). Cin = k*p,
  Cout = q*s, all of k, p, q, s multiples of 4.
  ``h[i, j] = sat16((bias1[i*q + j] + Σ_t w1[i, j, t] * x[i*p + t] + 2**(sh1 - 1)) >> sh1)`` (floor
  shift, saturated to int16; no rounding term when ``sh1`` is 0),
  ``acc[j*s + t] = bias[j*s + t] + Σ_i w2[j, t, i] * h[i, j]``,
  ``y = clamp(((acc * mult + 2**(30 - shift)) >> (31 - shift)) + zp_out, act_min, act_max)``
  (single rounding, as every MLP-blob layer); ``act_min`` is -128 or ``max(-128, zp_out)`` (ReLU).

A ``SOFTMAX`` at the end of a ``.tflite`` is dropped (the MCU returns the int8 scores before it: same
class order) and said in :attr:`QGraph.notes`; comparisons with LiteRT read the tensor before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

OP_KINDS = (
    "conv2d", "dwconv2d", "dense", "maxpool", "avgpool", "mean", "add", "reshape", "pwconv_csr", "pwconv_monarch",
)  # fmt: skip


@dataclass
class QTensor:
    """An int8 activation tensor: shape without the batch axis, NHWC order ((H, W, C) or (N,))."""

    name: str
    shape: tuple[int, ...]
    scale: float
    zero_point: int
    offset: int = -1  # arena offset in bytes, set by the memory planner

    @property
    def size(self) -> int:
        """Bytes (one per int8 element)."""
        return int(np.prod(self.shape)) if self.shape else 1


@dataclass
class QOp:
    """One int8 operator. ``where`` names its origin for errors (e.g. ``"CONV_2D #3 (conv1)"``)."""

    kind: str
    inputs: list[int]
    output: int
    params: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, int] = field(default_factory=dict)
    act_min: int = -128
    act_max: int = 127
    where: str = ""


@dataclass
class QGraph:
    """Tensors, operators in execution order, the graph input and output tensor ids."""

    tensors: list[QTensor]
    ops: list[QOp]
    input: int
    output: int
    model_id: str = "fbnet01"
    notes: list[str] = field(default_factory=list)

    @property
    def in_tensor(self) -> QTensor:
        return self.tensors[self.input]

    @property
    def out_tensor(self) -> QTensor:
        return self.tensors[self.output]

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float inputs ``(B, *shape)`` to int8 with the input tensor's own scale and zero point, as
        LiteRT's QUANTIZE does it: ``x / scale`` in float32, rounded half away from zero."""
        t = self.in_tensor
        v = (np.asarray(x, dtype=np.float32) / np.float32(t.scale)).astype(np.float64)
        q = np.where(v >= 0, np.floor(v + 0.5), np.ceil(v - 0.5)) + t.zero_point
        return np.clip(q, -128, 127).astype(np.int8)

    def dequantize_output(self, q: np.ndarray) -> np.ndarray:
        t = self.out_tensor
        return ((q.astype(np.float64) - t.zero_point) * t.scale).astype(np.float32)
