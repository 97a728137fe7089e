"""Convert ``.tflite`` files (float32 or int8) into the IR (:class:`harness.ir.network.Network`).

Operators: ``FULLY_CONNECTED``, ``CONV_2D``, ``DEPTHWISE_CONV_2D`` (depth multiplier 1),
``AVERAGE_POOL_2D``, ``MAX_POOL_2D``, ``MEAN`` over H and W, ``ADD`` (of two branches of one tensor:
a :class:`~harness.ir.layers.Residual`; of a constant: a bias), ``MUL`` by a per-channel constant,
``RESHAPE``/``SQUEEZE``, ``RELU``/``RELU6`` (standalone or fused), ``QUANTIZE``/``DEQUANTIZE``
(no-ops for the float IR) and a final ``SOFTMAX`` (k > 2 dropped; 2 classes become ``[0, z1 - z0]``,
as in :mod:`.onnx_import`). TFLite is NHWC, the IR's own layout, and the network takes the model
input flattened (it starts with a ``Reshape`` to the input's per-sample shape).

Quantised files: the IR is float, so int8 weights and int32 biases are *dequantised*
(``(q - zero_point) * scale``, per channel where the file is) and the activations' quantisation is
dropped. The imported network therefore computes the float function the int8 file approximates: its
outputs match the file's within the file's own quantisation error, not exactly. Fine-tuned
techniques then start from those weights, and our exporters re-quantise the result when asked.

Anything else raises :class:`NotConvertible` naming the operator.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..layers import AvgPool2D, Conv2D, Dense, DepthwiseConv2D, GlobalAveragePool, MaxPool2D
from ..network import Network
from .common import Imported, NotConvertible
from .graph import GraphWalk, Node, Seq, Val, reshape_to
from .tflite_file import TfliteFile

_ACTS = {0: None, 1: "relu", 3: "relu6"}  # ActivationFunctionType NONE, RELU, RELU6
_PASS = ("QUANTIZE", "DEQUANTIZE")


def _name(t: Any) -> str:
    return t.name.decode() if isinstance(t.name, bytes) else str(t.name)


class _File:
    """The first subgraph of a ``.tflite``: constants (dequantised), nodes and the per-node conversion."""

    def __init__(self, raw: bytes) -> None:
        try:
            f = TfliteFile(raw)
        except ValueError as e:
            raise NotConvertible(str(e)) from None
        self.s = f.s
        self.g = f.graph
        self.tensors = f.tensors
        self.consts: dict[str, np.ndarray] = {}
        for i, t in enumerate(self.tensors):
            if f.is_const(i):
                data = f.model.buffers[t.buffer].data
                self.consts[str(i)] = self._value(t, bytes(np.asarray(data, np.uint8)))
        self.nodes = []
        for op in f.ops:
            ins = [str(i) if i >= 0 else "" for i in op.inputs]
            outs = [str(i) for i in op.outputs]
            label = f"#{op.index}" + (f" {f.name(op.outputs[0])}" if outs else "")
            self.nodes.append(Node(op.name, label, ins, outs, {"opt": op.options}))
        self.head = "none"

    def _value(self, t: Any, buf: bytes) -> np.ndarray:
        s = self.s
        types = {
            s.TensorType.FLOAT32: np.float32,
            s.TensorType.INT8: np.int8,
            s.TensorType.UINT8: np.uint8,
            s.TensorType.INT32: np.int32,
            s.TensorType.INT64: np.int64,
        }
        if t.type not in types:
            raise NotConvertible(
                f"constant {_name(t)!r} has TFLite type {t.type} (float32, int8 and int32 convert)"
            )
        shape = [int(d) for d in t.shape] if t.shape is not None else []
        q = np.frombuffer(buf, types[t.type]).reshape(shape)
        qp = t.quantization
        if t.type == s.TensorType.FLOAT32 or qp is None or qp.scale is None or len(qp.scale) == 0:
            return q.copy()
        scale = np.asarray(qp.scale, np.float64)
        zero = np.asarray(qp.zeroPoint if qp.zeroPoint is not None else [0], np.float64)
        if scale.size > 1:  # per channel along quantizedDimension
            bshape = [1] * q.ndim
            bshape[int(qp.quantizedDimension)] = scale.size
            scale, zero = scale.reshape(bshape), zero.reshape(bshape) if zero.size > 1 else zero
        return ((q.astype(np.float64) - zero) * scale).astype(np.float32)

    def const(self, n: Node, i: int) -> np.ndarray | None:
        name = n.inputs[i] if i < len(n.inputs) else ""
        return self.consts.get(name) if name else None

    def weights(self, n: Node, i: int) -> np.ndarray:
        w = self.const(n, i)
        if w is None:
            raise NotConvertible(f"{n.what()} with computed weights", n.op)
        return np.asarray(w, np.float32)

    def sample_shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(d) for d in self.tensors[int(name)].shape[1:])

    def act(self, n: Node) -> str | None:
        code = int(getattr(n.attrs["opt"], "fusedActivationFunction", 0) or 0)
        if code not in _ACTS:
            raise NotConvertible(f"{n.what()} with fused activation {code}", n.op)
        return _ACTS[code]

    def _fused(self, n: Node, val: Val, seq: Seq) -> Val:
        a = self.act(n)
        if a is not None:
            seq.act(a, val)
        return val

    def _padding(self, n: Node) -> str:
        return "same" if n.attrs["opt"].padding == self.s.Padding.SAME else "valid"

    def _stride(self, n: Node) -> tuple[int, int]:
        o = n.attrs["opt"]
        if getattr(o, "dilationHFactor", 1) != 1 or getattr(o, "dilationWFactor", 1) != 1:
            raise NotConvertible(f"{n.what()} with dilation", n.op)
        return int(o.strideH), int(o.strideW)

    def step(self, n: Node, val: Val, seq: Seq) -> Val:
        op = n.op
        if self.head != "none":
            raise NotConvertible(f"{n.what()} after the SOFTMAX head", op)
        if op in _PASS:
            return val
        if op in ("RESHAPE", "SQUEEZE"):
            return reshape_to(val, self.sample_shape(n.outputs[0]), seq, n)
        if op in ("RELU", "RELU6"):
            seq.act(op.lower(), val)
            return val
        if op == "FULLY_CONNECTED":
            if len(val.shape) != 1:
                val = reshape_to(val, (int(np.prod(val.shape)),), seq, n)
            w = self.weights(n, 1)
            b = self.const(n, 2)
            if w.ndim != 2 or w.shape[1] != val.shape[0]:
                raise NotConvertible(f"{n.what()} has weights {w.shape} for {val.shape[0]} inputs", op)
            bias = np.zeros(w.shape[0], np.float32) if b is None else np.asarray(b, np.float32).reshape(-1)
            seq.add(Dense(w.T, bias))
            return self._fused(n, Val.plain((w.shape[0],)), seq)
        if op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            if len(val.shape) != 3:
                raise NotConvertible(f"{n.what()} on a tensor of per-sample shape {val.shape}", op)
            w = self.weights(n, 1)
            b = self.const(n, 2)
            bias = np.zeros(w.shape[-1] if op != "CONV_2D" else w.shape[0], np.float32) if b is None else b
            stride, padding = self._stride(n), self._padding(n)
            if op == "CONV_2D":
                layer: Any = Conv2D(w.transpose(1, 2, 3, 0), bias, val.shape, stride=stride, padding=padding)
            else:
                if w.shape[3] != val.shape[2]:
                    raise NotConvertible(f"{n.what()} with depth multiplier {w.shape[3] // val.shape[2]}", op)
                layer = DepthwiseConv2D(w[0], bias, val.shape, stride=stride, padding=padding)
            seq.add(layer)
            return self._fused(n, Val.plain(layer.out_shape), seq)
        if op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            o = n.attrs["opt"]
            cls = MaxPool2D if op == "MAX_POOL_2D" else AvgPool2D
            layer = cls(
                val.shape,
                (int(o.filterHeight), int(o.filterWidth)),
                stride=self._stride(n),
                padding=self._padding(n),
            )
            seq.add(layer)
            return self._fused(n, Val.plain(layer.out_shape), seq)
        if op == "MEAN":
            axes = self.const(n, 1)
            rank = len(val.shape)
            if axes is None or {val.file_axis_to_ir(int(a)) for a in np.ravel(axes)} != set(range(rank - 1)):
                raise NotConvertible(f"{n.what()} over axes other than the spatial ones", op)
            seq.add(GlobalAveragePool(val.shape))
            c = val.shape[-1]
            out = self.sample_shape(n.outputs[0])
            seq.reshape((c,), out)
            return Val.plain(out)
        if op in ("ADD", "MUL", "SUB"):
            cur = next(i for i in n.inputs if i and i not in self.consts)
            other = [i for i in n.inputs if i and i != cur]
            if len(other) != 1 or other[0] not in self.consts:
                raise NotConvertible(f"{n.what()} combines two computed tensors outside a residual block", op)
            vec = val.channel_vector(self.consts[other[0]], n)
            if op == "SUB" and n.inputs[0] != cur:
                raise NotConvertible(f"{n.what()} subtracts the data from a constant", op)
            one, zero = np.ones_like(vec), np.zeros_like(vec)
            shift = vec if op == "ADD" else -vec if op == "SUB" else zero
            seq.affine(vec if op == "MUL" else one, shift, val)
            return self._fused(n, val, seq)
        if op == "SOFTMAX":
            return self.softmax(n, val, seq)
        raise NotConvertible(f"operator {op} (node {n.name!r})", op)

    def softmax(self, n: Node, val: Val, seq: Seq) -> Val:
        last = seq.layers[-1] if seq.layers else None
        if len(val.shape) != 1 or not isinstance(last, Dense) or last.act is not None:
            raise NotConvertible(f"{n.what()} does not follow a linear layer", n.op)
        if val.shape[0] == 2:
            seq.layers[-1] = Dense(last.w - last.w[:, :1], last.b - last.b[:1])
            self.head = "softmax2"
        else:
            self.head = "softmax"
        return val


def tflite_to_network(raw: bytes) -> Imported:
    """Convert a ``.tflite`` (first subgraph, first output; float32 or int8) to a :class:`Network` of logits."""
    f = _File(raw)
    g = f.g
    if len(g.inputs) != 1:
        raise NotConvertible(f"the .tflite has {len(g.inputs)} inputs; the IR takes one")
    inp = f.tensors[g.inputs[0]]
    sample = f.sample_shape(str(g.inputs[0]))
    if len(inp.shape) < 2 or not sample or min(sample) < 1:
        raise NotConvertible(
            f"input {_name(inp)!r} needs a batch axis and fixed sample sizes, got {list(inp.shape)}"
        )
    out = str(int(g.outputs[0]))
    walk = GraphWalk(f.nodes, set(f.consts), out, f.step, ("ADD",), f.act)
    seq = Seq(int(np.prod(sample)))
    seq.reshape((int(np.prod(sample)),), sample)
    val = Val.plain(sample)
    if inp.type != f.s.TensorType.FLOAT32:  # an integer interface: the row holds quantised values
        qp = inp.quantization
        if qp is None or qp.scale is None or len(qp.scale) != 1:
            raise NotConvertible(f"input {_name(inp)!r} is of TFLite type {inp.type} without one scale")
        sc, zp = float(qp.scale[0]), float(qp.zeroPoint[0]) if qp.zeroPoint is not None else 0.0
        c = np.ones(sample[-1], np.float32)
        seq.affine(c * sc, -c * zp * sc, val)
    val = walk.run(str(int(g.inputs[0])), val, seq)
    if len(val.shape) != 1:
        raise NotConvertible(f"the first output is not a vector of scores per sample (shape {val.shape})")
    layers = seq.collapsed()
    if not layers:
        raise NotConvertible("the .tflite computes nothing the IR can train")
    return Imported(Network(layers), f.head, _name(inp), _name(f.tensors[int(out)]))
