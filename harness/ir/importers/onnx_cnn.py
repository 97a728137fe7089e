"""Convert convolutional ONNX graphs into the IR (channels last) through :class:`.graph.GraphWalk`.

Operators: ``Conv`` (2-D and 1-D; ``group == channels`` with one filter per channel is a depthwise
convolution), ``MaxPool``/``AveragePool`` (2-D), ``GlobalAveragePool``, ``ReduceMean`` over the
spatial axes, ``BatchNormalization``, ``Add`` of two branches of one tensor (a
:class:`~harness.ir.layers.Residual`), ``Add``/``Sub``/``Mul``/``Div`` by per-channel constants
(folded into the layer before, else a BatchNorm), ``Reshape``/``Flatten``/``Transpose``,
``Relu``/``Clip(0, 6)``, ``Gemm``/``MatMul`` and a final ``Softmax``/``Sigmoid`` (handled as in
:mod:`.onnx_import`); ``Identity``/``Dropout``/``Cast`` to float pass through.

Layout (see :mod:`.graph`). The dataset row is the model input flattened in the file's order, and the
IR network takes that same row: it starts with a ``Reshape`` to the input's per-sample shape.

* An NHWC input ``(B, H, W, C)`` (or a flat ``(B, F)`` input reshaped and transposed in the graph, as
  our exporter writes it) maps directly.
* An NCHW input ``(B, C, H, W)`` — what PyTorch exports — maps directly when ``C == 1`` (the flat
  order is the same). With ``C > 1`` the IR network takes the row in NHWC order:
  ``Imported.input_order`` says which file column each IR input reads, and :meth:`Imported.rows`
  turns the file's samples into the network's rows (the bring-your-own path reorders its dataset
  once, :func:`harness.byo.prepare.flat_rows`).
* Inside the graph, NCHW tensors are tracked, weights are converted to the IR's layout (OIHW to
  HWIO), and a flattened NCHW feature map has its order folded into the next ``Gemm``'s weight rows.

Explicit ``pads`` that are not TFLite's SAME/VALID (e.g. PyTorch's ``padding=1`` at stride 2) are
met with a larger zero-padded kernel (:func:`.graph.fit_padding`); pools need exactly SAME or VALID.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ..layers import (
    AvgPool2D,
    BatchNorm,
    Conv1D,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    GlobalAveragePool,
    MaxPool2D,
)
from ..network import Network
from .common import Imported, NotConvertible
from .graph import GraphWalk, Node, Seq, Val, embed_kernel, fit_padding, pool_padding, relayout, reshape_to

CNN_OPS = {
    "Conv",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "ReduceMean",
    "BatchNormalization",
    "Transpose",
    "Clip",
}


def is_cnn(model: onnx.ModelProto) -> bool:
    """Whether ``model`` needs the convolutional converter (a convolution-family op or an input of rank > 2)."""
    inits = {i.name for i in model.graph.initializer}
    ranks = [len(i.type.tensor_type.shape.dim) for i in model.graph.input if i.name not in inits]
    return any(n.op_type in CNN_OPS for n in model.graph.node) or any(r > 2 for r in ranks)


def _constants(g: onnx.GraphProto) -> dict[str, np.ndarray]:
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for n in g.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return consts


def _nodes(g: onnx.GraphProto) -> list[Node]:
    out = []
    for n in g.node:
        if n.op_type == "Constant":
            continue
        op = n.op_type if n.domain in ("", "ai.onnx") else f"{n.op_type} ({n.domain})"
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        out.append(Node(op, n.name, list(n.input), list(n.output), attrs))
    return out


class _Onnx:
    """The per-node conversion (``step``) and the output head."""

    def __init__(self, consts: dict[str, np.ndarray]) -> None:
        self.consts = consts
        self.head = "none"

    def const(self, n: Node, i: int, what: str = "weights") -> np.ndarray:
        name = n.inputs[i] if i < len(n.inputs) else ""
        if name not in self.consts:
            raise NotConvertible(f"{n.what()} with computed {what}", n.op)
        return np.asarray(self.consts[name])

    def other(self, n: Node, val_name: str) -> np.ndarray:
        others = [i for i in n.inputs if i and i != val_name]
        if len(others) != 1 or others[0] not in self.consts:
            raise NotConvertible(f"{n.what()} combines two computed tensors outside a residual block", n.op)
        return np.asarray(self.consts[others[0]], np.float64)

    def step(self, n: Node, val: Val, seq: Seq) -> Val:
        op = n.op
        if self.head != "none" and op not in ("Identity", "Dropout"):
            raise NotConvertible(f"{n.what()} after the {self.head} output head", op)
        if op in ("Identity", "Dropout"):
            return val
        if op == "Cast":
            if n.attrs.get("to") != onnx.TensorProto.FLOAT:
                raise NotConvertible(f"{n.what()} to a non-float type", op)
            return val
        if op == "Transpose":
            perm = list(n.attrs.get("perm", range(len(val.perm) + 1))[::1])
            if perm[0] != 0:
                raise NotConvertible(f"{n.what()} moves the batch axis", op)
            return Val(val.shape, tuple(val.perm[p - 1] for p in perm[1:]), val.order)
        if op == "Reshape":
            return reshape_to(val, self._target(n, val), seq, n)
        if op == "Flatten":
            if n.attrs.get("axis", 1) != 1:
                raise NotConvertible(f"{n.what()} with axis != 1", op)
            return reshape_to(val, (int(np.prod(val.shape)),), seq, n)
        if op == "Conv":
            return self.conv(n, val, seq)
        if op in ("MaxPool", "AveragePool"):
            return self.pool(n, val, seq)
        if op in ("GlobalAveragePool", "ReduceMean"):
            return self.mean(n, val, seq)
        if op == "BatchNormalization":
            val = relayout(val, _channels_first(len(val.shape)), seq, n) if len(val.shape) > 1 else val
            gamma, beta, mean, var = (self.const(n, i, "statistics").astype(np.float32) for i in (1, 2, 3, 4))
            eps = float(n.attrs.get("epsilon", 1e-5))
            seq.add(BatchNorm(val.shape, gamma, beta, mean, var, eps=eps))
            return val
        if op in ("Add", "Sub", "Mul", "Div"):
            return self.affine(n, val, seq)
        if op == "Relu":
            seq.act("relu", val)
            return val
        if op == "Clip":
            seq.act(self._clip(n), val)
            return val
        if op in ("MatMul", "Gemm"):
            return self.dense(n, val, seq)
        if op in ("Softmax", "Sigmoid"):
            return self.output_head(n, val, seq)
        raise NotConvertible(f"operator {op} (node {n.name!r})", op)

    # --- shapes ---
    def _target(self, n: Node, val: Val) -> tuple[int, ...]:
        shape = [int(d) for d in self.const(n, 1, "shape")]
        fs = val.file_shape
        if not shape:
            raise NotConvertible(f"{n.what()} to a scalar", n.op)
        rest = [fs[i - 1] if d == 0 and 0 < i <= len(fs) else d for i, d in enumerate(shape) if i > 0]
        total = int(np.prod(fs))
        if shape[0] not in (-1, 0, 1) and -1 not in rest:
            raise NotConvertible(f"{n.what()} changes the batch size", n.op)
        if rest.count(-1) > 1 or (shape[0] == -1 and -1 in rest):
            raise NotConvertible(f"{n.what()} leaves two sizes open", n.op)
        if -1 in rest:
            known = int(np.prod([d for d in rest if d != -1]))
            rest[rest.index(-1)] = total // max(known, 1)
        return tuple(rest)

    def _clip(self, n: Node) -> str:
        lo = float(self.const(n, 1, "bounds")) if len(n.inputs) > 1 and n.inputs[1] else n.attrs.get("min")
        hi = float(self.const(n, 2, "bounds")) if len(n.inputs) > 2 and n.inputs[2] else n.attrs.get("max")
        if lo == 0.0 and hi == 6.0:
            return "relu6"
        if lo == 0.0 and (hi is None or hi == float("inf")):
            return "relu"
        raise NotConvertible(f"{n.what()} clips to [{lo}, {hi}] (only ReLU and ReLU6 convert)", n.op)

    # --- layers ---
    def _spatial(
        self, n: Node, val: Val, k: list[int], seq: Seq
    ) -> tuple[Val, list[int], list[int], list[int], list[int]]:
        """Channels-first input, then ``(val, sizes, strides, pads before, pads after)``."""
        rank = len(val.shape)
        if rank - 1 != len(k) or rank not in (2, 3):
            raise NotConvertible(f"{n.what()} over {len(k)} spatial axes of a rank-{rank + 1} tensor", n.op)
        val = relayout(val, _channels_first(rank), seq, n)
        if any(d != 1 for d in n.attrs.get("dilations", [1] * len(k))):
            raise NotConvertible(f"{n.what()} with dilations", n.op)
        sizes = list(val.shape[:-1])
        strides = [int(s) for s in n.attrs.get("strides", [1] * len(k))]
        auto = n.attrs.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else str(auto)
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            tot = [
                max((-(-s // st) - 1) * st + kk - s, 0) for s, st, kk in zip(sizes, strides, k, strict=True)
            ]
            small = [t // 2 for t in tot]
            big = [t - t // 2 for t in tot]
            before, after = (small, big) if auto == "SAME_UPPER" else (big, small)
        elif auto == "VALID":
            before, after = [0] * len(k), [0] * len(k)
        else:
            p = [int(v) for v in n.attrs.get("pads", [0] * 2 * len(k))]
            before, after = p[: len(k)], p[len(k) :]
        return val, sizes, strides, before, after

    def conv(self, n: Node, val: Val, seq: Seq) -> Val:
        w = self.const(n, 1).astype(np.float32)  # (c_out, c_in / group, *k)
        b = (
            self.const(n, 2).astype(np.float32)
            if len(n.inputs) > 2 and n.inputs[2]
            else np.zeros(w.shape[0], np.float32)
        )
        k = list(w.shape[2:])
        val, sizes, strides, before, after = self._spatial(n, val, k, seq)
        c_in, group = val.shape[-1], int(n.attrs.get("group", 1))
        fit = fit_padding(sizes, k, strides, before, after)
        if fit is None:
            raise NotConvertible(
                f"{n.what()} with pads {before + after} that no SAME/VALID kernel reproduces", n.op
            )
        padding, size, offset = fit
        if group == 1 and w.shape[1] == c_in:
            wk = embed_kernel(w.transpose(*range(2, w.ndim), 1, 0), size, offset)  # spatial, c_in, c_out
            if len(k) == 2:
                layer: Any = Conv2D(wk, b, val.shape, stride=strides, padding=padding)
            else:
                layer = Conv1D(wk, b, val.shape, stride=strides[0], padding=padding)
        elif len(k) == 2 and group == c_in == w.shape[0] and w.shape[1] == 1:
            wk = embed_kernel(w[:, 0].transpose(1, 2, 0), size, offset)  # kh, kw, c
            layer = DepthwiseConv2D(wk, b, val.shape, stride=strides, padding=padding)
        else:
            raise NotConvertible(
                f"{n.what()} with group={group} over {c_in} channels (only 1 or depthwise, one filter per channel)",
                n.op,
            )
        seq.add(layer)
        return Val(layer.out_shape, val.perm)

    def pool(self, n: Node, val: Val, seq: Seq) -> Val:
        k = [int(v) for v in n.attrs.get("kernel_shape", [])]
        val, sizes, strides, before, after = self._spatial(n, val, k, seq)
        if len(k) != 2:
            raise NotConvertible(f"{n.what()} over {len(k)} axes (the IR pools 2-D images)", n.op)
        if n.attrs.get("ceil_mode", 0) or n.attrs.get("storage_order", 0):
            raise NotConvertible(f"{n.what()} with ceil_mode or storage_order", n.op)
        if n.op == "AveragePool" and n.attrs.get("count_include_pad", 0) and any(before + after):
            raise NotConvertible(f"{n.what()} counting padded pixels (count_include_pad=1)", n.op)
        padding = pool_padding(sizes, k, strides, before, after)
        if padding is None:
            raise NotConvertible(f"{n.what()} with pads {before + after} other than SAME/VALID", n.op)
        cls = MaxPool2D if n.op == "MaxPool" else AvgPool2D
        layer = cls(val.shape, tuple(k), stride=tuple(strides), padding=padding)
        seq.add(layer)
        return Val(layer.out_shape, val.perm)

    def mean(self, n: Node, val: Val, seq: Seq) -> Val:
        rank = len(val.shape)
        if n.op == "GlobalAveragePool":
            val = relayout(val, _channels_first(rank), seq, n)
            axes, keep = set(range(rank - 1)), True
        else:
            raw = n.attrs.get("axes")
            if raw is None and len(n.inputs) > 1 and n.inputs[1]:
                raw = self.const(n, 1, "axes").tolist()
            if raw is None:
                raise NotConvertible(f"{n.what()} over every axis", n.op)
            axes = {val.file_axis_to_ir(int(a)) for a in raw}
            keep = bool(n.attrs.get("keepdims", 1))
        if rank < 2 or axes != set(range(rank - 1)):
            raise NotConvertible(f"{n.what()} over axes other than the spatial ones", n.op)
        layer = GlobalAveragePool(val.shape)
        seq.add(layer)
        c = val.shape[-1]
        if not keep:
            return Val.plain((c,))
        kept = (1,) * (rank - 1) + (c,)
        seq.reshape((c,), kept)
        return Val(kept, val.perm)

    def affine(self, n: Node, val: Val, seq: Seq) -> Val:
        cur = next(i for i in n.inputs if i and i not in self.consts)
        c = val.channel_vector(self.other(n, cur), n)
        if n.op == "Div" and n.inputs[0] != cur:
            raise NotConvertible(f"{n.what()} divides a constant by the data", n.op)
        if n.op == "Sub" and n.inputs[0] != cur:
            seq.affine(-np.ones_like(c), c, val)
        else:
            scale = c if n.op == "Mul" else 1.0 / c if n.op == "Div" else np.ones_like(c)
            shift = {"Add": c, "Sub": -c}.get(n.op, np.zeros_like(c))
            seq.affine(scale, shift, val)
        return val

    def dense(self, n: Node, val: Val, seq: Seq) -> Val:
        if len(val.shape) != 1:
            raise NotConvertible(f"{n.what()} on a tensor of per-sample shape {val.file_shape}", n.op)
        if n.op == "MatMul":
            if n.inputs[1] not in self.consts:
                raise NotConvertible(f"{n.what()} multiplies a constant by the data", n.op)
            w, c = self.const(n, 1).astype(np.float64), None
        else:
            if n.attrs.get("transA", 0) or n.inputs[0] in self.consts:
                raise NotConvertible(f"{n.what()} with the data as B or transposed", n.op)
            w = self.const(n, 1).astype(np.float64)
            w = (w.T if n.attrs.get("transB", 0) else w) * float(n.attrs.get("alpha", 1.0))
            c = (
                self.const(n, 2) * float(n.attrs.get("beta", 1.0))
                if len(n.inputs) > 2 and n.inputs[2]
                else None
            )
        if w.ndim != 2 or w.shape[0] != val.shape[0]:
            raise NotConvertible(f"{n.what()} has weights {w.shape} for {val.shape[0]} inputs", n.op)
        if val.order is not None:
            w = w[np.argsort(val.order)]
        b = (
            np.zeros(w.shape[1])
            if c is None
            else np.broadcast_to(np.asarray(c, np.float64).reshape(-1), (w.shape[1],))
        )
        seq.add(Dense(w.astype(np.float32), np.asarray(b, np.float32)))
        return Val.plain((w.shape[1],))

    def output_head(self, n: Node, val: Val, seq: Seq) -> Val:
        last = seq.layers[-1] if seq.layers else None
        if (n.op == "Softmax" and n.attrs.get("axis", -1) not in (-1, 1)) or len(val.shape) != 1:
            raise NotConvertible(f"{n.what()} over a non-class axis", n.op)
        if not isinstance(last, Dense) or last.act is not None:
            raise NotConvertible(f"{n.what()} does not follow a linear layer", n.op)
        if n.op == "Sigmoid" and val.shape[0] != 1:
            raise NotConvertible(f"{n.what()} over {val.shape[0]} units (multi-label)", n.op)
        if n.op == "Softmax" and val.shape[0] == 2:
            seq.layers[-1] = Dense(last.w - last.w[:, :1], last.b - last.b[:1])
            self.head = "softmax2"
        elif n.op == "Sigmoid":
            z = np.zeros_like
            seq.layers[-1] = Dense(
                np.concatenate([z(last.w), last.w], 1), np.concatenate([z(last.b), last.b])
            )
            self.head = "sigmoid"
            return Val.plain((2,))
        else:
            self.head = "softmax"
        return val


def _channels_first(rank: int) -> tuple[int, ...]:
    """The file layout of a channels-first tensor of an IR sample of rank ``rank``: ``(C, *spatial)``."""
    return (rank - 1, *range(rank - 1))


def onnx_cnn_to_network(model: onnx.ModelProto, output: str | None = None) -> Imported:
    """Convert a convolutional ``model`` (scored output ``output``, default the first) to a :class:`Network`."""
    g = model.graph
    consts = _constants(g)
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1:
        raise NotConvertible(
            f"the graph has {len(inputs)} data inputs {[i.name for i in inputs]}; the IR takes one"
        )
    inp = inputs[0]
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
    if len(dims) < 2 or any(d is None or d < 1 for d in dims[1:]):
        raise NotConvertible(f"input {inp.name!r} needs a batch axis and fixed sample sizes, got {dims}")
    sample = tuple(int(d) for d in dims[1:] if d is not None)
    out = output or g.output[0].name
    if out not in {o.name for o in g.output}:
        raise NotConvertible(f"no graph output named {out!r}")
    conv = _Onnx(consts)
    walk = GraphWalk(_nodes(g), set(consts), out, conv.step, ("Add",))
    seq = Seq(int(np.prod(sample)))
    seq.reshape((int(np.prod(sample)),), sample)
    val = walk.run(inp.name, Val.plain(sample), seq)
    if len(val.shape) != 1 or val.order is not None:
        raise NotConvertible(
            f"the output {out!r} is not a vector of scores per sample (shape {val.file_shape})"
        )
    layers = seq.collapsed()
    if not layers:
        raise NotConvertible("the graph computes nothing the IR can train")
    order = seq.input_order
    keep = None if order is None or np.array_equal(order, np.arange(order.size)) else order
    return Imported(Network(layers), conv.head, inp.name, out, keep)
