"""Convert simple ONNX graphs into the IR (:class:`harness.ir.network.Network`).

What converts: one float input of rank 2 ``(batch, features)`` flowing through a single chain of
``MatMul``/``Gemm`` with constant weights, ``Add`` of constant biases and ``Relu``, as scikit-learn's
MLPs exported by skl2onnx and our own exporter write them; no-op ``Cast``/``Identity``/``Flatten``
on the way, and an input normalisation (skl2onnx's ``Scaler`` for a ``StandardScaler``, or
``Sub``/``Mul``/``Div``/``Add`` by constants) folded into the first layer. The output head may be
``Softmax`` or ``Sigmoid`` (plus skl2onnx's ``[1 - p, p]`` columns); the IR outputs logits chosen so that every metric based on argmax, ranking or the last
column (accuracy, top-k, macro-F1, binary AUC) gives the same value:

* a ``Softmax`` over k > 2 classes is dropped (softmax keeps the order of the logits);
* a 2-class ``Softmax`` becomes the columns ``[0, z1 - z0]`` (the same probabilities, and the last
  column is the log-odds of class 1);
* a 1-unit ``Sigmoid`` becomes ``[0, z]`` (``z > 0`` exactly when ``p > 0.5``; ``z`` is the log-odds).

Convolutional graphs (a ``Conv``-family operator, or an input of rank > 2) go to
:mod:`.onnx_cnn`, which also handles NCHW layouts, residual blocks and BatchNorm.

Anything else raises :class:`NotConvertible` naming the operator that blocks the conversion; the
caller then falls back to post-training techniques.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
from onnx import numpy_helper

from ..layers import Dense
from ..network import Network
from .common import Imported, NotConvertible
from .onnx_cnn import is_cnn, onnx_cnn_to_network

PASSTHROUGH = ("Identity", "Dropout")


def _constants(g: onnx.GraphProto) -> dict[str, np.ndarray]:
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for n in g.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return consts


def node_inputs(n: onnx.NodeProto) -> list[str]:
    """A node's inputs, plus the outer-scope tensors its subgraphs (If/Loop/Scan bodies) read."""
    names = [i for i in n.input if i]
    for a in n.attribute:
        for sub in [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs):
            local = {i.name for i in sub.input} | {i.name for i in sub.initializer}
            for m in sub.node:
                names += [x for x in node_inputs(m) if x not in local]
                local.update(m.output)
    return names


def needed_nodes(g: onnx.GraphProto, outputs: Iterable[str]) -> list[onnx.NodeProto]:
    """Nodes the ``outputs`` depend on, in graph order."""
    producer = {o: n for n in g.node for o in n.output}
    want: set[int] = set()
    stack = list(outputs)
    seen: set[str] = set()
    while stack:
        t = stack.pop()
        if t in seen or t not in producer:
            continue
        seen.add(t)
        n = producer[t]
        want.add(id(n))
        stack.extend(node_inputs(n))
    return [n for n in g.node if id(n) in want]


def _needed(g: onnx.GraphProto, output: str) -> list[onnx.NodeProto]:
    return [n for n in needed_nodes(g, [output]) if n.op_type != "Constant"]


def _attr(n: onnx.NodeProto, name: str, default: object) -> object:
    for a in n.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _op(n: onnx.NodeProto) -> str:
    dom = f" ({n.domain})" if n.domain not in ("", "ai.onnx") else ""
    return f"{n.op_type}{dom}"


def _data_input(g: onnx.GraphProto, consts: dict[str, np.ndarray]) -> onnx.ValueInfoProto:
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1:
        raise NotConvertible(
            f"the graph has {len(inputs)} data inputs {[i.name for i in inputs]}; the IR takes one"
        )
    inp = inputs[0]
    tt = inp.type.tensor_type
    rank = len(tt.shape.dim)
    if rank != 2:
        raise NotConvertible(
            f"input {inp.name!r} has rank {rank}; the IR takes flat (batch, features) vectors"
        )
    return inp


class _Chain:
    """Builds dense layers while walking the chain."""

    def __init__(self) -> None:
        self.layers: list[Dense] = []
        self.w: np.ndarray | None = None
        self.b: np.ndarray | None = None
        self.act: str | None = None
        self.pre_scale = np.ones(1)  # x -> x * pre_scale + pre_shift before layer 1 (broadcast)
        self.pre_shift = np.zeros(1)

    def affine(self, scale: np.ndarray | float, shift: np.ndarray | float, n: onnx.NodeProto) -> None:
        """An elementwise ``x * scale + shift`` on the input, folded into the first layer."""
        if self.layers or self.w is not None:
            raise NotConvertible(
                f"{_op(n)} node {n.name!r} between layers (only input normalisation folds)", n.op_type
            )
        scale, shift = np.asarray(scale, np.float64), np.asarray(shift, np.float64)
        if scale.ndim > 1 and scale.shape[0] != 1 or shift.ndim > 1 and shift.shape[0] != 1:
            raise NotConvertible(f"{_op(n)} node {n.name!r} with a per-row constant", n.op_type)
        self.pre_scale = self.pre_scale * scale.reshape(-1)
        self.pre_shift = self.pre_shift * scale.reshape(-1) + shift.reshape(-1)

    def start(self, w: np.ndarray, b: np.ndarray | None, n: onnx.NodeProto) -> None:
        if w.ndim != 2:
            raise NotConvertible(f"{_op(n)} node {n.name!r} has a {w.ndim}-D weight", n.op_type)
        self.flush()
        bias = (
            np.zeros(w.shape[1], np.float64) if b is None else self._bias(b, w.shape[1], n).astype(np.float64)
        )
        if not self.layers:  # fold the input normalisation: (x*s + t) @ W = x @ (s[:, None] W) + t @ W
            w64 = np.asarray(w, np.float64)
            bias = bias + np.broadcast_to(self.pre_shift, (w.shape[0],)) @ w64
            w = np.broadcast_to(self.pre_scale, (w.shape[0],))[:, None] * w64
        self.w = np.asarray(w, np.float32)
        self.b = bias.astype(np.float32)
        self.act = None

    def _bias(self, c: np.ndarray, out: int, n: onnx.NodeProto) -> np.ndarray:
        c = np.asarray(c, np.float32)
        if c.size == 1:
            return np.full(out, float(c.ravel()[0]), np.float32)
        if c.size != out or (c.ndim == 2 and c.shape[0] != 1) or c.ndim > 2:
            raise NotConvertible(
                f"{_op(n)} node {n.name!r} adds a constant of shape {c.shape}, not a bias", n.op_type
            )
        return c.reshape(out)

    def add_bias(self, c: np.ndarray, n: onnx.NodeProto) -> None:
        if self.w is None or self.b is None or self.act is not None:
            raise NotConvertible(f"Add node {n.name!r} is not a bias right after MatMul/Gemm", "Add")
        self.b = self.b + self._bias(c, self.w.shape[1], n)

    def relu(self, n: onnx.NodeProto) -> None:
        if self.w is None or self.act is not None:
            raise NotConvertible(f"Relu node {n.name!r} does not follow a MatMul/Gemm", "Relu")
        self.act = "relu"

    def flush(self) -> None:
        if self.w is not None and self.b is not None:
            self.layers.append(Dense(self.w, self.b, self.act))
        self.w, self.b, self.act = None, None, None


def _other(n: onnx.NodeProto, cur: str, consts: dict[str, np.ndarray]) -> np.ndarray:
    others = [i for i in n.input if i and i != cur]
    if len(others) != 1 or others[0] not in consts:
        raise NotConvertible(f"{_op(n)} node {n.name!r} combines two computed tensors", n.op_type)
    return consts[others[0]]


def _tail(nodes: Iterable[onnx.NodeProto], p: str, consts: dict[str, np.ndarray]) -> bool:
    """After a 1-unit Sigmoid ``p``: True for skl2onnx's ``Concat([1 - p, p])``, False for ``p`` itself."""
    rest = [n for n in nodes if n.op_type not in PASSTHROUGH]
    if not rest:
        return False
    ops = sorted(n.op_type for n in rest)
    if ops == ["Concat", "Sub"]:
        sub = next(n for n in rest if n.op_type == "Sub")
        cat = next(n for n in rest if n.op_type == "Concat")
        one = consts.get(sub.input[0])
        if one is not None and np.allclose(one, 1.0) and list(cat.input) == [sub.output[0], p]:
            return True
    bad = (
        next(n for n in rest if n.op_type not in ("Sub", "Concat"))
        if set(ops) - {"Sub", "Concat"}
        else rest[0]
    )
    raise NotConvertible(f"operator {_op(bad)} (node {bad.name!r}) after the Sigmoid output", bad.op_type)


def onnx_to_network(model: onnx.ModelProto | bytes, output: str | None = None) -> Imported:
    """Convert ``model`` (output ``output``, default the first) to a :class:`Network` of logits."""
    if isinstance(model, bytes | bytearray):
        model = onnx.load_from_string(bytes(model))
    if is_cnn(model):
        return onnx_cnn_to_network(model, output)
    g = model.graph
    consts = _constants(g)
    inp = _data_input(g, consts)
    out = output or g.output[0].name
    if out not in {o.name for o in g.output}:
        raise NotConvertible(f"no graph output named {out!r}")
    nodes = _needed(g, out)
    chain = _Chain()
    cur = inp.name
    head = "none"
    done: set[int] = set()
    while cur != out:
        cons = [n for n in nodes if cur in node_inputs(n) and id(n) not in done]
        if head == "sigmoid":
            if cons:
                head = "sigmoid2" if _tail(cons, cur, consts) else head
            break
        if len(cons) != 1:
            ops = ", ".join(_op(n) for n in cons) or "nothing"
            raise NotConvertible(
                f"tensor {cur!r} feeds {len(cons)} nodes ({ops}); only single chains convert"
            )
        n = cons[0]
        done.add(id(n))
        op = n.op_type
        if n.domain == "ai.onnx.ml" and op == "Scaler":  # skl2onnx's StandardScaler: (x - offset) * scale
            off = np.asarray(_attr(n, "offset", [0.0]), np.float64)
            sc = np.asarray(_attr(n, "scale", [1.0]), np.float64)
            chain.affine(sc, -off * sc, n)
            cur = n.output[0]
            continue
        if n.domain not in ("", "ai.onnx"):
            raise NotConvertible(f"operator {_op(n)} (node {n.name!r})", op)
        if head != "none" and op not in PASSTHROUGH:
            raise NotConvertible(f"operator {op} (node {n.name!r}) after the {head} output head", op)
        if op in PASSTHROUGH:
            pass
        elif op == "Cast":
            if _attr(n, "to", 0) != onnx.TensorProto.FLOAT:
                raise NotConvertible(f"Cast node {n.name!r} to a non-float type", op)
        elif op == "Flatten":
            if _attr(n, "axis", 1) != 1:
                raise NotConvertible(f"Flatten node {n.name!r} with axis != 1", op)
        elif op == "MatMul":
            if n.input[0] != cur:
                raise NotConvertible(f"MatMul node {n.name!r} multiplies a constant by the data", op)
            chain.start(_other(n, cur, consts), None, n)
        elif op == "Gemm":
            if n.input[0] != cur or _attr(n, "transA", 0):
                raise NotConvertible(f"Gemm node {n.name!r} with the data as B or transposed", op)
            if n.input[1] not in consts or (len(n.input) > 2 and n.input[2] and n.input[2] not in consts):
                raise NotConvertible(f"Gemm node {n.name!r} with computed weights", op)
            w = consts[n.input[1]]
            w = w.T if _attr(n, "transB", 0) else w
            alpha, beta = float(_attr(n, "alpha", 1.0)), float(_attr(n, "beta", 1.0))  # type: ignore[arg-type]
            c = consts[n.input[2]] * beta if len(n.input) > 2 and n.input[2] else None
            chain.start(w * alpha, c, n)
        elif op in ("Sub", "Mul", "Div") or op == "Add" and chain.w is None:
            c = _other(n, cur, consts).astype(np.float64)
            if op == "Sub" and n.input[0] != cur:
                chain.affine(-1.0, c, n)  # c - x
            elif op == "Div" and n.input[0] != cur:
                raise NotConvertible(f"Div node {n.name!r} divides a constant by the data", op)
            else:
                scale = {"Mul": c, "Div": 1.0 / c}.get(op, 1.0)
                shift = {"Sub": -c, "Add": c}.get(op, 0.0)
                chain.affine(scale, shift, n)
        elif op == "Add":
            chain.add_bias(_other(n, cur, consts), n)
        elif op == "Relu":
            chain.relu(n)
        elif op in ("Softmax", "Sigmoid"):
            if chain.w is None or chain.act is not None:
                raise NotConvertible(f"{op} node {n.name!r} does not follow a linear layer", op)
            if op == "Softmax" and _attr(n, "axis", -1) not in (-1, 1):
                raise NotConvertible(f"Softmax node {n.name!r} over axis {_attr(n, 'axis', -1)}", op)
            if op == "Sigmoid" and chain.w.shape[1] != 1:
                raise NotConvertible(
                    f"Sigmoid node {n.name!r} over {chain.w.shape[1]} units (multi-label)", op
                )
            head = op.lower()
        else:
            raise NotConvertible(f"operator {_op(n)} (node {n.name!r})", op)
        cur = n.output[0]
    if chain.w is None:
        raise NotConvertible(
            "the output does not end in a MatMul/Gemm layer (with optional Relu/Softmax/Sigmoid)"
        )
    assert chain.b is not None
    if head == "softmax" and chain.w.shape[1] == 2:
        chain.w = chain.w - chain.w[:, :1]  # [0, z1 - z0]: same softmax, last column = log-odds
        chain.b = chain.b - chain.b[:1]
        head = "softmax2"
    elif head in ("sigmoid", "sigmoid2"):
        chain.w = np.concatenate([np.zeros_like(chain.w), chain.w], axis=1)
        chain.b = np.concatenate([np.zeros_like(chain.b), chain.b])
    chain.flush()
    return Imported(Network(chain.layers), head, inp.name, out)
