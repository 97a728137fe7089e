"""Rewrite pruned 1x1 convolutions of an int8 operator graph into sparse ``pwconv_csr`` ops.

A pruned CNN variant reaches the MCU as any int8 CNN does (the int8 TFLite export, then
:func:`.tflite_graph.tflite_graph`): its pointwise convolutions are ``conv2d`` ops whose weights are
mostly zero. ``pwconv_csr`` has the arithmetic of ``conv2d`` (:mod:`.graph`), so the rewrite changes
no integer, only the kernel the firmware runs: the compressed-rows kernel skips the zeros.
"""

from __future__ import annotations

import numpy as np

from .graph import QGraph, QOp

# Densest 1x1 weights worth the sparse kernel. Under QEMU at 64x25x5 the CSR kernel costs about
# 1.7x the dense kernel's instructions per MAC (benches/perf/mcu_conv.py), so it gains below ~60 %
# density; 0.5 keeps a margin for the requantisation both pay.
MAX_DENSITY = 0.5


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


def sparsify_pointwise(g: QGraph, max_density: float = MAX_DENSITY) -> int:
    """Turn every pointwise ``conv2d`` of ``g`` with at most ``max_density`` nonzero weights into a
    ``pwconv_csr`` op, in place; returns how many ops changed (and says so in ``g.notes``)."""
    n = 0
    for op in g.ops:
        if is_pointwise(g, op) and np.count_nonzero(op.params["w"]) <= max_density * np.size(op.params["w"]):
            op.kind = "pwconv_csr"
            op.attrs = {k: v for k, v in op.attrs.items() if k == "rounding"}
            n += 1
    if n:
        g.notes.append(f"{n} pruned 1x1 convolution(s) run as sparse (CSR) pointwise kernels")
    return n
