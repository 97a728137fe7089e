"""The format-free part of importing a convolutional graph: layouts, the layer sequence, residual diamonds.

The ONNX and TFLite importers translate their files into :class:`Node` lists and give a ``step``
function that turns one node into IR layers; :class:`GraphWalk` walks the graph from the input to the
scored output and turns a *diamond* (one tensor feeding two branches that meet again in an ``Add``)
into a :class:`~harness.ir.layers.Residual`.

Layouts. The IR is channels-last (NHWC images, ``(L, C)`` sequences); a file's tensors may not be.
Each tensor the walk reaches is described by a :class:`Val`: the IR's per-sample shape, and ``perm``,
the IR axis held by each of the file tensor's sample axes (``(2, 0, 1)`` for an NCHW tensor of an
IR ``(H, W, C)`` image). A ``Transpose`` in the file only changes ``perm``; an operator that needs
channels first (ONNX ``Conv``) asks for that ``perm``. When the two layouts hold the values in the
same flat order (a single channel, or 1x1 images) the change is a free IR ``Reshape``. Otherwise:

* at the model input (nothing computed yet), the IR takes the input row in its own order: the
  permutation is returned as ``Imported.input_order`` (IR input element ``j`` is the file's flat
  input element ``input_order[j]``) and the caller reorders its dataset columns once
  (:func:`harness.byo.prepare.flat_rows`); the converted network replaces the file, so every variant
  and export reads the reordered rows;
* a flattened channels-first feature map keeps its element order in ``Val.order``, folded into the
  rows of the next dense layer's weights;
* anywhere else the data would have to be transposed, which the IR has no layer for, and the walk
  stops with :class:`~.common.NotConvertible`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..layers import (
    Activation,
    BatchNorm,
    Conv1D,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    Layer,
    Reshape,
    Residual,
)
from ..layers.im2col import out_len, pads
from .common import NotConvertible


@dataclass(frozen=True)
class Node:
    """One operator of a file: ``op`` (the file's name for it), tensor names in and out, attributes."""

    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)

    def what(self) -> str:
        """``'Conv node "conv1"'`` for messages."""
        return f"{self.op} node {self.name!r}"


@dataclass(frozen=True)
class Val:
    """A tensor as the IR sees it: its per-sample ``shape`` and the file's axis order ``perm``.

    The file's sample axis ``k`` holds the IR axis ``perm[k]``. ``order`` (flat vectors only): the
    file's element ``i`` is the IR's element ``order[i]`` (a flattened channels-first tensor).
    """

    shape: tuple[int, ...]
    perm: tuple[int, ...]
    order: np.ndarray | None = None

    @classmethod
    def plain(cls, shape: Sequence[int]) -> Val:
        """A tensor whose file layout is the IR's."""
        return cls(tuple(int(d) for d in shape), tuple(range(len(shape))))

    @property
    def file_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[a] for a in self.perm)

    @property
    def same_order(self) -> bool:
        """The file tensor holds the values in the IR's flat order."""
        kept = [a for a in self.perm if self.shape[a] != 1]
        return kept == sorted(kept) and self.order is None

    def file_axis_to_ir(self, axis: int) -> int:
        """The IR axis of the file's axis ``axis`` (counting the batch axis as 0, negative allowed)."""
        r = len(self.perm) + 1
        a = axis + r if axis < 0 else axis
        if not 1 <= a < r:
            raise NotConvertible(f"axis {axis} is the batch axis or out of range for rank {r}")
        return self.perm[a - 1]

    def channel_vector(self, c: np.ndarray, node: Node) -> np.ndarray:
        """A constant combined elementwise with this tensor as one value per IR channel (last axis)."""
        fs = self.file_shape
        c = np.asarray(c, np.float64)
        if c.ndim == len(fs) + 1 and c.shape[0] == 1:
            c = c[0]
        if c.ndim > len(fs):
            raise NotConvertible(
                f"{node.what()} combines the data with a constant of shape {c.shape}", node.op
            )
        try:
            full = np.broadcast_to(c, fs)
        except ValueError as e:
            raise NotConvertible(
                f"{node.what()}: constant {c.shape} does not broadcast to {fs}", node.op
            ) from e
        ir = np.transpose(full, np.argsort(self.perm))
        if self.order is not None:
            ir = ir[np.argsort(self.order)]
        rows = ir.reshape(-1, self.shape[-1])
        if not np.array_equal(rows, np.broadcast_to(rows[:1], rows.shape)):
            raise NotConvertible(
                f"{node.what()} combines the data with a constant that varies along a spatial axis", node.op
            )
        return rows[0]


def relayout(val: Val, want: tuple[int, ...], seq: Seq, node: Node) -> Val:
    """``val`` with the file layout ``want`` (same file tensor); an IR ``Reshape`` when the order allows."""
    if val.perm == want:
        return val
    fs = val.file_shape
    shape = [0] * len(fs)
    for k, a in enumerate(want):
        shape[a] = fs[k]
    new = Val(tuple(shape), want)
    if (
        seq.input_order is not None
        and val.order is None
        and all(isinstance(la, Reshape) for la in seq.layers)
    ):
        # still at the model input: reorder the input row once instead of transposing the data
        n = int(np.prod(new.shape))
        step = np.arange(n).reshape(val.shape).transpose(val.perm).transpose(np.argsort(want)).ravel()
        seq.input_order = seq.input_order[step]
        seq.layers = []
        seq.reshape((n,), new.shape)
        return new
    if not (val.same_order and new.same_order):
        raise NotConvertible(
            f"{node.what()} reads a computed tensor of shape {fs} in a layout that the IR (channels last) "
            "could only reach by transposing the data, and the IR has no transpose layer",
            node.op,
        )
    seq.reshape(val.shape, new.shape)
    return new


def reshape_to(val: Val, target: Sequence[int], seq: Seq, node: Node) -> Val:
    """The file's ``Reshape`` of ``val`` to the per-sample shape ``target``."""
    target = tuple(int(d) for d in target)
    if int(np.prod(target)) != int(np.prod(val.shape)):
        raise NotConvertible(f"{node.what()} reshapes {val.file_shape} to {target}", node.op)
    if target == val.file_shape:
        return val
    if val.same_order:
        seq.reshape(val.shape, target)
        return Val.plain(target)
    if len(target) == 1 and len(val.shape) > 1:  # a channels-first flatten: keep the element order
        order = np.arange(int(np.prod(val.shape))).reshape(val.shape).transpose(val.perm).ravel()
        seq.reshape(val.shape, target)
        return Val(target, (0,), order)
    raise NotConvertible(
        f"{node.what()} reshapes a tensor whose file layout differs from the IR's ({val.file_shape} to {target})",
        node.op,
    )


class Seq:
    """The IR layers of one branch, with activation and affine folding."""

    def __init__(self, input_size: int | None = None) -> None:
        self.layers: list[Layer] = []
        # the main sequence from the model input: IR input element j is the file's element input_order[j]
        self.input_order = None if input_size is None else np.arange(input_size)

    def add(self, layer: Layer) -> None:
        self.layers.append(layer)

    def reshape(self, src: tuple[int, ...], dst: tuple[int, ...]) -> None:
        if src != dst:
            self.layers.append(Reshape(src, dst))

    def act(self, act: str, val: Val) -> None:
        """Fuse ``act`` into the last layer when it has none, else append an :class:`Activation`."""
        last = self.layers[-1] if self.layers else None
        fusable = (Conv2D, Conv1D, DepthwiseConv2D, BatchNorm, Residual)
        if isinstance(last, fusable) and last.act is None:
            last.act = act
        elif isinstance(last, Dense) and last.act is None and act == "relu":
            self.layers[-1] = Dense(last.w, last.b, "relu")
        else:
            self.layers.append(Activation(act, val.shape))

    def affine(self, scale: np.ndarray, shift: np.ndarray, val: Val) -> None:
        """``x * scale + shift`` per IR channel: folded into the layer before, else a BatchNorm."""
        s, t = np.asarray(scale, np.float32), np.asarray(shift, np.float32)
        last = self.layers[-1] if self.layers else None
        if isinstance(last, Conv2D | Conv1D | DepthwiseConv2D) and last.act is None:
            self.layers[-1] = last.fold_affine(s, t, None)
        elif isinstance(last, Dense) and last.act is None:
            self.layers[-1] = Dense(last.w * s, last.b * s + t, None)
        elif isinstance(last, BatchNorm) and last.act is None:
            g, b = last.scale_shift()
            self.layers[-1] = BatchNorm(last.in_shape, g * s, b * s + t, eps=0.0)
        else:
            self.layers.append(BatchNorm(val.shape, s, t, eps=0.0))

    def collapsed(self) -> list[Layer]:
        """The layers with runs of reshapes merged (and dropped where they cancel)."""
        out: list[Layer] = []
        for layer in self.layers:
            if isinstance(layer, Reshape) and out and isinstance(out[-1], Reshape):
                layer = Reshape(out.pop().in_shape, layer.out_shape)
            if isinstance(layer, Reshape) and layer.in_shape == layer.out_shape:
                continue
            if isinstance(layer, Reshape) and len(layer.out_shape) == 1 and len(layer.in_shape) > 1:
                layer = Flatten(layer.in_shape)
            out.append(layer)
        return out


Step = Callable[[Node, Val, Seq], Val]


def needed(nodes: Sequence[Node], output: str) -> list[Node]:
    """The nodes ``output`` depends on, in file order."""
    producer = {o: n for n in nodes for o in n.outputs}
    want: set[int] = set()
    stack, seen = [output], set()
    while stack:
        t = stack.pop()
        if t in seen or t not in producer:
            continue
        seen.add(t)
        want.add(id(producer[t]))
        stack.extend(producer[t].inputs)
    return [n for n in nodes if id(n) in want]


class GraphWalk:
    """Walks single chains and residual diamonds from the input tensor to ``output``.

    ``step`` converts one node; ``is_join`` tells which nodes add two computed tensors (``Add``/
    ``ADD``) and ``join_act`` the activation such a node fuses (TFLite's ``ADD`` may carry one).
    """

    def __init__(
        self,
        nodes: Sequence[Node],
        consts: set[str],
        output: str,
        step: Step,
        join_ops: tuple[str, ...],
        join_act: Callable[[Node], str | None] = lambda n: None,
    ) -> None:
        self.nodes = needed(nodes, output)
        self.consts = consts
        self.output = output
        self.step = step
        self.join_ops = join_ops
        self.join_act = join_act
        self.consumers: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in dict.fromkeys(self.computed(n)):
                self.consumers.setdefault(i, []).append(n)

    def computed(self, n: Node) -> list[str]:
        return [i for i in n.inputs if i and i not in self.consts]

    def is_join(self, n: Node) -> bool:
        return n.op in self.join_ops and len(self.computed(n)) == 2

    def run(self, start: str, val: Val, seq: Seq) -> Val:
        """Walk from ``start`` to the output; the layers go to ``seq``."""
        cur, val, join = self.chain(start, val, seq, None)
        if join is not None:
            raise NotConvertible(
                f"{join.what()} adds a tensor that does not branch from the same input", join.op
            )
        return val

    def chain(self, cur: str, val: Val, seq: Seq, first: Node | None) -> tuple[str, Val, Node | None]:
        """Walk from ``cur`` (running ``first`` first) until the output or a join; ``(tensor, val, join)``."""
        pending = first
        while True:
            if pending is None:
                if cur == self.output:
                    return cur, val, None
                cons = self.consumers.get(cur, [])
                if len(cons) == 1 and self.is_join(cons[0]):
                    return cur, val, cons[0]
                if len(cons) == 1:
                    pending = cons[0]
                elif len(cons) == 2:
                    cur, val = self.residual(cur, val, cons, seq)
                    continue
                else:
                    ops = ", ".join(n.what() for n in cons) or "nothing"
                    raise NotConvertible(
                        f"tensor {cur!r} feeds {len(cons)} nodes ({ops}); the IR converts chains and "
                        "two-branch residual blocks"
                    )
            node, pending = pending, None
            val = self.step(node, val, seq)
            cur = node.outputs[0]

    def residual(self, cur: str, val: Val, cons: list[Node], seq: Seq) -> tuple[str, Val]:
        """The diamond from ``cur`` through the two consumers ``cons`` to their common ``Add``."""
        ends: list[tuple[Val, Node, Seq]] = []
        for c in cons:
            branch = Seq()
            if self.is_join(c):
                ends.append((val, c, branch))
                continue
            _, v, join = self.chain(cur, val, branch, c)
            if join is None:
                raise NotConvertible(f"tensor {cur!r} feeds two branches that do not meet in an Add")
            ends.append((v, join, branch))
        (va, ja, ba), (vb, jb, bb) = ends
        if ja is not jb:
            raise NotConvertible(
                f"the two branches from tensor {cur!r} end in different nodes ({ja.what()}, {jb.what()})"
            )
        if va.shape != vb.shape or va.perm != vb.perm or va.order is not None or vb.order is not None:
            raise NotConvertible(f"{ja.what()} adds branches of different layouts", ja.op)
        la, lb = ba.collapsed(), bb.collapsed()
        if not la and not lb:
            raise NotConvertible(f"{ja.what()} adds a tensor to itself", ja.op)
        body, short = (la, lb) if len(la) >= len(lb) else (lb, la)
        seq.add(Residual(body, short or None, self.join_act(ja)))
        return ja.outputs[0], va


def embed_kernel(w: np.ndarray, size: Sequence[int], offset: Sequence[int]) -> np.ndarray:
    """``w`` (spatial axes first) placed at ``offset`` in a zero kernel of spatial ``size``."""
    out = np.zeros((*size, *w.shape[len(size) :]), np.float32)
    idx = tuple(slice(o, o + k) for o, k in zip(offset, w.shape[: len(size)], strict=True))
    out[idx] = w
    return out


def fit_padding(
    sizes: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    before: Sequence[int],
    after: Sequence[int],
) -> tuple[str, list[int], list[int]] | None:
    """Explicit convolution padding as the IR's ``"valid"``/``"same"``: ``(padding, kernel, offsets)``.

    TFLite's SAME pads the extra row at the end; PyTorch's ``padding=1`` on a stride-2 convolution
    pads both ends, which no IR padding does with the same kernel. A larger kernel holding the real
    one at an offset (zeros around it) reads exactly the same input positions, so such convolutions
    convert with a few zero taps (which count in MACs, not in parameters). ``None`` when nothing fits.
    """
    for mode in ("valid", "same"):
        found: list[tuple[int, int]] = []
        for n, k, s, b, a in zip(sizes, kernel, strides, before, after, strict=True):
            want = (n + b + a - k) // s + 1
            hit = None
            for k2 in range(k, k + b + a + s + 1):
                if mode == "valid" and k2 > n:
                    break
                if out_len(n, k2, s, mode) != want:
                    continue
                d = pads(n, k2, s, mode)[0] - b
                if 0 <= d <= k2 - k:
                    hit = (k2, d)
                    break
            if hit is None:
                break
            found.append(hit)
        else:
            return mode, [k for k, _ in found], [d for _, d in found]
    return None


def pool_padding(
    sizes: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    before: Sequence[int],
    after: Sequence[int],
) -> str | None:
    """The IR padding whose pads are exactly ``before``/``after`` (pools cannot grow their window)."""
    for mode in ("valid", "same"):
        if all(
            pads(n, k, s, mode) == (b, a) and (n + b + a - k) // s + 1 == out_len(n, k, s, mode)
            for n, k, s, b, a in zip(sizes, kernel, strides, before, after, strict=True)
        ):
            return mode
    return None
