"""IR → ONNX (float32, opset 17, dynamic batch). Layers append their own nodes; BatchNorm is folded first."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from ..network import Network
from .onnx_graph import OnnxGraph
from .prepare import export_form

OPSET = 17
INPUT = "input"
OUTPUT = "output"


def network_to_onnx(net: Network, *, name: str = "frugalbench") -> onnx.ModelProto:
    """Build a checked ONNX model with input ``input`` (N, in_dim) and output ``output``."""
    net = export_form(net)
    g = OnnxGraph()
    x = INPUT
    for layer in net.layers:
        x = layer.to_onnx(g, x)
    g.nodes.append(helper.make_node("Identity", [x], [OUTPUT], name="output_identity"))
    graph = helper.make_graph(
        g.nodes,
        name,
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", net.in_dim])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", net.out_dim])],
        g.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="frugalbench"
    )
    model.ir_version = 8  # readable by every onnxruntime of the last years
    onnx.checker.check_model(model)
    return model


def network_to_onnx_bytes(net: Network) -> bytes:
    return network_to_onnx(net).SerializeToString()
