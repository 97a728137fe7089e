"""Compressed pointwise (1x1) convolutions in an int8 operator graph: pruned ones as sparse
``pwconv_csr`` ops, Monarch-factored ones as ``pwconv_monarch`` ops.

A pruned CNN variant reaches the MCU as any int8 CNN does (the int8 TFLite export, then
:func:`.tflite_graph.tflite_graph`): its pointwise convolutions are ``conv2d`` ops whose weights are
mostly zero. ``pwconv_csr`` has the arithmetic of ``conv2d`` (:mod:`.graph`), so the rewrite changes
no integer, only the kernel the firmware runs: the compressed-rows kernel skips the zeros.

A Monarch-factored pointwise convolution (``Pointwise(Monarch)``, from the factorising compressors)
has no int8 TFLite form, so the export carries a dense stand-in of the same function through it (for
the tensors' scales, zero points and clamps) and the factors are put back after the import.
"""

from __future__ import annotations

import numpy as np

from ...ir.layers import Conv2D, Layer
from ...ir.layers.monarch import Monarch
from ...ir.layers.pointwise import Pointwise
from ...ir.network import Network
from ...ir.quant import QParams
from .container import MONARCH, BlobError
from .factored import export_monarch
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


# --- Monarch-factored pointwise convolutions (the IR's Pointwise(Monarch)) ------------------------


def monarch_standins(form: Network) -> tuple[Network, list[int]]:
    """``form`` with every ``Pointwise(Monarch)`` on an (H, W, C) input replaced by the dense 1x1
    ``Conv2D`` of the same function (the int8 TFLite exporter writes no factored layer), and the
    indices of the replaced layers. The stand-ins only carry the tensors' quantisation through the
    export; :func:`monarch_back` puts the factors back into the imported graph."""
    layers: list[Layer] = []
    replaced = []
    for i, layer in enumerate(form.layers):
        if isinstance(layer, Pointwise) and isinstance(layer.inner, Monarch) and len(layer.in_shape) == 3:
            w = layer.to_dense().reshape(1, 1, *layer.to_dense().shape)
            layer = Conv2D(w, layer.inner.bias, layer.in_shape, padding="valid", act=layer.act)
            replaced.append(i)
        layers.append(layer)
    return (Network(layers) if replaced else form), replaced


def monarch_back(g: QGraph, form: Network, replaced: list[int], x_calib: np.ndarray) -> None:
    """Turn the imported stand-ins of :func:`monarch_standins` into ``pwconv_monarch`` ops, in place:
    the Monarch factors quantised as the MLP blob quantises a Monarch layer
    (:func:`.factored.export_monarch`: int8 factors, an int16 intermediate whose shift is calibrated
    on ``x_calib``'s activations at that layer), between the tensors (and clamps) the export gave."""
    if not replaced:
        return
    acts = form.activations(np.asarray(x_calib, dtype=np.float32))
    ops = iter(op for op in g.ops if is_pointwise(g, op))
    for li in replaced:
        layer = form.layers[li]
        assert isinstance(layer, Pointwise) and isinstance(layer.inner, Monarch)
        cin, cout = layer.inner.in_dim, layer.inner.out_dim
        op = next((o for o in ops if np.asarray(o.params["w"]).shape == (cout, 1, 1, cin)), None)
        if op is None:
            raise BlobError(
                f"layer {li} (Monarch pointwise): no matching 1x1 convolution in the exported graph"
            )
        t_in, t_out = g.tensors[op.inputs[0]], g.tensors[op.output]
        qin = QParams(np.float64(t_in.scale), np.int64(t_in.zero_point))
        qout = QParams(np.float64(t_out.scale), np.int64(t_out.zero_point))
        (ql,) = export_monarch(layer.inner, qin, qout, acts[li].reshape(-1, cin), "dense")
        if ql.kind != MONARCH:  # block sizes not multiples of 4: the dense stand-in stays (same function)
            g.notes.append(f"layer {li}: {ql.note}")
            continue
        if op.act_min not in (-128, max(-128, t_out.zero_point)):
            raise BlobError(f"layer {li} (Monarch pointwise): a lower clamp at {op.act_min} is not a ReLU")
        op.kind, op.attrs = "pwconv_monarch", {}
        op.params = {k: ql.params[k] for k in ("w1", "bias1", "sh1", "w2", "bias", "mult", "shift")}
        op.where = f"{op.where} as Monarch".strip()
    g.notes.append(f"{len(replaced)} Monarch pointwise layer(s) run as factored kernels (pwconv_monarch)")
