"""Convert simple float ``.tflite`` files into the IR (:class:`harness.ir.network.Network`).

What converts: one float32 input ``(batch, features)`` through ``FULLY_CONNECTED`` ops with constant
float32 weights ``(out, in)``, optional bias and fused ``RELU``, with ``RESHAPE`` of a 2-D tensor on
the way and an optional final ``SOFTMAX`` (k > 2 dropped; 2 classes become ``[0, z1 - z0]``, as in
:mod:`harness.ir.importers.onnx_import`). Quantised files (int8 weights or tensors) do not convert: they are
already compressed, and run as they are. Anything else raises :class:`NotConvertible` naming the
operator.
"""

from __future__ import annotations

import numpy as np

from ..layers import Dense
from ..network import Network
from .onnx_import import Imported, NotConvertible


def _schema():  # type: ignore[no-untyped-def]
    from ai_edge_litert import schema_py_generated as s

    return s


def tflite_to_network(raw: bytes) -> Imported:
    """Convert a float ``.tflite`` MLP (first subgraph, first output) to a :class:`Network` of logits."""
    s = _schema()
    m = s.ModelT.InitFromObj(s.Model.GetRootAs(raw, 0))
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    g = m.subgraphs[0]
    if len(g.inputs) != 1:
        raise NotConvertible(f"the .tflite has {len(g.inputs)} inputs; the IR takes one")
    tensors = g.tensors

    def const(i: int) -> np.ndarray | None:
        t = tensors[i]
        data = m.buffers[t.buffer].data if t.buffer < len(m.buffers) else None
        if data is None or len(data) == 0:
            return None
        if t.type != s.TensorType.FLOAT32:
            raise NotConvertible(f"tensor {t.name!r} is not float32 (a quantised .tflite runs as it is)")
        return np.frombuffer(bytes(np.asarray(data, np.uint8)), np.float32).reshape(list(t.shape)).copy()

    inp = tensors[g.inputs[0]]
    if inp.type != s.TensorType.FLOAT32 or len(inp.shape) != 2:
        raise NotConvertible(
            f"input {inp.name!r} must be float32 (batch, features); got shape {list(inp.shape)}"
        )
    layers: list[Dense] = []
    head = "none"
    cur = g.inputs[0]
    for op in g.operators:
        oc = m.operatorCodes[op.opcodeIndex]
        name = names.get(max(oc.builtinCode, oc.deprecatedBuiltinCode), str(oc.builtinCode))
        ins = [int(i) for i in op.inputs]
        if not ins or ins[0] != cur:
            raise NotConvertible(f"operator {name} does not continue a single chain from the input", name)
        if head != "none":
            raise NotConvertible(f"operator {name} after the SOFTMAX head", name)
        if name == "FULLY_CONNECTED":
            w = const(ins[1])
            b = const(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
            if w is None or w.ndim != 2:
                raise NotConvertible("FULLY_CONNECTED with computed weights", name)
            fused = getattr(op.builtinOptions, "fusedActivationFunction", 0)
            if fused not in (s.ActivationFunctionType.NONE, s.ActivationFunctionType.RELU):
                raise NotConvertible(f"FULLY_CONNECTED with fused activation {fused}", name)
            bias = np.zeros(w.shape[0], np.float32) if b is None else b.reshape(-1)
            act = "relu" if fused == s.ActivationFunctionType.RELU else None
            layers.append(Dense(w.T, bias, act))
        elif name == "RESHAPE":
            if len(tensors[op.outputs[0]].shape) != 2:
                raise NotConvertible("RESHAPE to a rank other than 2", name)
        elif name == "SOFTMAX":
            if not layers or layers[-1].act is not None:
                raise NotConvertible("SOFTMAX that does not follow a linear layer", name)
            head = "softmax"
        else:
            raise NotConvertible(f"operator {name}", name)
        cur = int(op.outputs[0])
    if cur != int(g.outputs[0]) or not layers:
        raise NotConvertible("the first output is not the end of a FULLY_CONNECTED chain")
    if head == "softmax" and layers[-1].out_dim == 2:
        last = layers[-1]
        layers[-1] = Dense(last.w - last.w[:, :1], last.b - last.b[:1], None)
        head = "softmax2"
    return Imported(
        Network(layers),
        head,
        inp.name.decode() if isinstance(inp.name, bytes) else str(inp.name),
        str(tensors[cur].name),
    )
