"""Rewrite pruned 1x1 convolutions of an int8 operator graph into sparse ``pwconv_csr`` ops.

A pruned CNN variant reaches the MCU as any int8 CNN does (the int8 TFLite export, then
:func:`.tflite_graph.tflite_graph`): its pointwise convolutions are ``conv2d`` ops whose weights are
mostly zero. ``pwconv_csr`` has the arithmetic of ``conv2d`` (:mod:`.graph`), so the rewrite changes
no integer, only the kernel the firmware runs: the compressed-rows kernel skips the zeros.
"""

from __future__ import annotations

import numpy as np

from .graph import QGraph, QOp

# Instruction model of the two kernels per output value under QEMU (benches/perf/mcu_conv.py): the
# dense 1x1 kernel 0.8-1.0 per MAC (requantisation included; 0.81 at 256 channels, 1.01 at 64), the
# CSR kernel 2.75-3.5 per nonzero plus about 21 for the requantisation and the row loop. The
# conservative ends (dense 0.8, CSR 3.5) make CSR the choice below a density of about
# (0.8 * Cin - 21) / (3.5 * Cin): 13 % at 64 input channels, 21 % at 256, never below 27 channels.
DENSE_PER_MAC = 0.8
CSR_PER_NNZ = 3.5
CSR_PER_OUTPUT = 21.0


def csr_pays_off(nnz_per_row: float, cin: int) -> bool:
    """Whether the CSR kernel should beat the dense one on a row of ``cin`` weights, ``nnz_per_row`` nonzero."""
    return CSR_PER_OUTPUT + CSR_PER_NNZ * nnz_per_row < DENSE_PER_MAC * cin


def is_pointwise(g: QGraph, op: QOp) -> bool:
    """A ``conv2d`` with a 1x1 kernel, stride 1 and no padding: a dense layer at every pixel."""
    if op.kind != "conv2d" or np.asarray(op.params["w"]).shape[1:3] != (1, 1):
        return False
    a = op.attrs
    same = g.tensors[op.inputs[0]].shape[:-1] == g.tensors[op.output].shape[:-1]
    return (
        same
        and a.get("stride_h", 1) == a.get("stride_w", 1) == 1
        and a.get("pad_top", 0) == a.get("pad_left", 0) == 0
    )


def sparsify_pointwise(g: QGraph) -> int:
    """Turn every pointwise ``conv2d`` of ``g`` sparse enough for the CSR kernel to win
    (:func:`csr_pays_off`) into a ``pwconv_csr`` op, in place; returns how many ops changed (and says
    so in ``g.notes``)."""
    n = 0
    for op in g.ops:
        if not is_pointwise(g, op):
            continue
        w = np.asarray(op.params["w"])
        if csr_pays_off(np.count_nonzero(w) / w.shape[0], w.shape[-1]):
            op.kind = "pwconv_csr"
            op.attrs = {k: v for k, v in op.attrs.items() if k == "rounding"}
            n += 1
    if n:
        g.notes.append(f"{n} pruned 1x1 convolution(s) run as sparse (CSR) pointwise kernels")
    return n
