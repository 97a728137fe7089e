"""IR → ``.tflite`` without TensorFlow, through the flatbuffer object API that ships in ai-edge-litert.

Float models: FULLY_CONNECTED (fused ReLU). int8 models follow the TFLite int8 spec: QUANTIZE at the
input, int8 ops with per-channel symmetric weights and int32 biases, DEQUANTIZE at the output, so the
model keeps a float interface. Layers append their own ops to a :class:`~.tflite_graph.TfliteGraph`.
Convolutional layers use the builders of :mod:`.tflite_conv` (NHWC tensors, a RESHAPE from the flat
input row first). Networks with BatchNorm are exported BatchNorm-folded (:mod:`.prepare`); their int8
parameters must come from that folded form (:func:`.prepare.quantisable`).
"""

from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as tfl

from ..network import Network
from ..quant import QParams
from .prepare import check_act_q, export_form
from .tflite_graph import TfliteGraph


def network_to_tflite(net: Network) -> bytes:
    """Float32 ``.tflite`` of ``net`` (input ``(-1, in_dim)``)."""
    net = export_form(net)
    g = TfliteGraph()
    x_in = g.tensor("input", [-1, net.in_dim], np.float32)
    x = x_in
    for layer in net.layers:
        x = layer.to_tflite(g, x)
    return g.finish([x_in], [x])


def network_to_tflite_int8(net: Network, act_q: list[QParams]) -> bytes:
    """Full-integer ``.tflite`` with a float interface; ``act_q`` from :func:`harness.ir.quant.calibrate`
    of the exported form (:func:`.prepare.quantisable` for a network with BatchNorm)."""
    net = export_form(net)
    check_act_q(net, act_q)
    g = TfliteGraph()
    x_in = g.tensor("input", [-1, net.in_dim], np.float32)
    x = g.out_like(x_in, net.in_dim, np.int8, act_q[0])
    g.op(tfl.BuiltinOperator.QUANTIZE, [x_in], [x])
    for i, layer in enumerate(net.layers):
        x = layer.to_tflite_int8(g, x, act_q[i], act_q[i + 1])
    y = g.out_like(x, net.out_dim, np.float32)
    g.op(tfl.BuiltinOperator.DEQUANTIZE, [x], [y])
    return g.finish([x_in], [y])


def network_to_tflite_dynamic(net: Network) -> bytes:
    """Dynamic-range ``.tflite``: int8 weights, float input/output and activations (LiteRT hybrid kernels).

    Layers without weights (pools, reshapes, ADD) write their float ops."""
    net = export_form(net)
    g = TfliteGraph()
    x_in = g.tensor("input", [-1, net.in_dim], np.float32)
    x = x_in
    for layer in net.layers:
        x = layer.to_tflite_dynamic(g, x)
    return g.finish([x_in], [x])
