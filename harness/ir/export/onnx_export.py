"""IR → ONNX (float32, opset 17, dynamic batch). Layers append their own nodes."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..network import Network

OPSET = 17
INPUT = "input"
OUTPUT = "output"


class OnnxGraph:
    """A small builder that hands out unique tensor names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._n = 0

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def initializer(self, hint: str, value: np.ndarray) -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], n_out: int = 1, **attrs: Any) -> str:
        outs = [self.fresh(op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.fresh(op), **attrs))
        return outs[0]


def network_to_onnx(net: Network, *, name: str = "frugalbench") -> onnx.ModelProto:
    """Build a checked ONNX model with input ``input`` (N, in_dim) and output ``output``."""
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
