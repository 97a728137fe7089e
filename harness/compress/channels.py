"""Dependency-aware channel pruning of convolutional networks: remove whole channels, rebuild smaller layers.

A *channel group* is a set of channels that must be removed together. Walking the layer stack:

* a convolution, a dense layer or a :class:`~harness.ir.layers.Pointwise` around a dense layer
  starts a new group at its output (its input channels belong to the group before it);
* per-channel layers (BatchNorm, depthwise convolution, pooling, activation, Flatten) keep the group:
  a depthwise convolution ties its input and output channels;
* a :class:`~harness.ir.layers.Residual` block ties the output groups of its body and its shortcut
  (the input group itself with an identity shortcut), since its Add sums them channel by channel;
* the network's input and output channels, and the channels around layers whose structure cannot be
  sliced (Monarch, butterfly, low-rank, a Reshape inside the stack), are never removed.

A channel scores the product of how strongly it is written and read: the L2 norm of its output filter in
every producer times the L2 norm of its input slice in every consumer, each normalised by the layer's mean
(so layers of different scales compare). The lowest ``1 - keep`` of every prunable group go. The result is
a plain, smaller network (fewer channels), so it speeds up on every runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir.layers import (
    Activation,
    AvgPool2D,
    BatchNorm,
    Conv1D,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    GlobalAveragePool,
    Layer,
    MaxPool2D,
    Pointwise,
    Residual,
)
from ..ir.layers.conv import _Conv
from ..ir.network import Network


@dataclass
class Group:
    """Channels tied together; ``size`` channels, removable unless ``fixed``."""

    size: int
    fixed: bool = False
    writes: list[np.ndarray] = field(default_factory=list)  # per producer: (size,) filter norms
    reads: list[np.ndarray] = field(default_factory=list)  # per consumer: (size,) slice norms


def _norm(v: np.ndarray) -> np.ndarray:
    return v / max(float(v.mean()), 1e-12)


def _is_producer(layer: Layer) -> bool:
    """A layer whose output channels are free (and can be sliced on both sides)."""
    if isinstance(layer, Pointwise):
        return isinstance(layer.inner, Dense)
    return isinstance(layer, _Conv | Dense)


def _matrix(layer: Layer) -> np.ndarray:
    """Weights as ``(..., c_in, c_out)`` (rows of a Dense may span several positions after a Flatten)."""
    if isinstance(layer, Pointwise):
        return layer.to_dense()
    return layer.w  # type: ignore[attr-defined, no-any-return]


class ChannelGraph:
    """The channel groups of a network and, per layer object, its input and output group."""

    def __init__(self, net: Network) -> None:
        self.parent: list[int] = []
        self.groups: list[Group] = []
        self.io: dict[int, tuple[int, int]] = {}
        g_in = self._new(net.layers[0].in_shape[-1], fixed=True)
        g_out = self._walk(net.layers, g_in)
        self.group(g_out).fixed = True

    # --- union-find over group ids ---
    def _new(self, size: int, fixed: bool = False) -> int:
        self.parent.append(len(self.groups))
        self.groups.append(Group(size, fixed))
        return len(self.groups) - 1

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def group(self, g: int) -> Group:
        return self.groups[self.find(g)]

    def _union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        ga, gb = self.groups[ra], self.groups[rb]
        if ga.size != gb.size:
            raise ValueError(f"channel groups of {ga.size} and {gb.size} channels cannot be tied")
        ga.fixed = ga.fixed or gb.fixed
        ga.writes += gb.writes
        ga.reads += gb.reads
        self.parent[rb] = ra

    # --- the walk ---
    def _walk(self, layers: list[Layer], g: int) -> int:
        for layer in layers:
            g = self._step(layer, g)
        return g

    def _step(self, layer: Layer, g: int) -> int:
        if isinstance(layer, Residual):
            gb = self._walk(layer.body, g)
            gs = self._walk(layer.shortcut, g) if layer.shortcut else g
            self._union(gb, gs)
            self.io[id(layer)] = (g, gb)
            return gb
        if _is_producer(layer):
            w = _matrix(layer)
            c_in, c_out = self.group(g).size, int(w.shape[-1])
            out = self._new(c_out)
            rows = w.reshape(-1, c_in, c_out)  # a Dense after a Flatten reads each channel at every position
            self.group(g).reads.append(_norm(np.sqrt((rows**2).sum(axis=(0, 2)))))
            self.group(out).writes.append(_norm(np.sqrt((rows**2).sum(axis=(0, 1)))))
            self.io[id(layer)] = (g, out)
            return out
        if isinstance(layer, BatchNorm | DepthwiseConv2D) or _keeps_channels(layer):
            self.io[id(layer)] = (g, g)
            return g
        # a layer whose channels cannot be sliced: both sides stay whole
        self.group(g).fixed = True
        out = self._new(int(layer.out_shape[-1]), fixed=True)
        self.io[id(layer)] = (g, out)
        return out

    def scores(self, g: int) -> np.ndarray:
        """Importance of every channel of group ``g``."""
        grp = self.group(g)
        w = np.mean(grp.writes, axis=0) if grp.writes else np.ones(grp.size)
        r = np.mean(grp.reads, axis=0) if grp.reads else np.ones(grp.size)
        return np.asarray(w * r)


def _keeps_channels(layer: Layer) -> bool:
    """Pooling, activation and Flatten: channel c in, channel c out (Flatten spreads it over positions)."""
    return isinstance(layer, AvgPool2D | MaxPool2D | GlobalAveragePool | Activation | Flatten)


def _with_channels(shape: tuple[int, ...], keep: np.ndarray, full: int) -> list[int]:
    """``shape`` with its channel axis cut to ``keep`` (a flat shape keeps ``positions * len(keep)``)."""
    if len(shape) == 1 and shape[0] != full:
        return [shape[0] // full * len(keep)]
    return [*shape[:-1], len(keep)]


def _rows(keep: np.ndarray, n_rows: int, full: int) -> np.ndarray:
    """Rows of a matrix whose rows are ``positions x full`` channels (position-major), for ``keep``."""
    pos = n_rows // full
    return (np.arange(pos)[:, None] * full + keep[None, :]).ravel()


def _slice(layer: Layer, ki: np.ndarray, ko: np.ndarray, c_in: int, c_out: int) -> Layer:
    """``layer`` keeping input channels ``ki`` (of ``c_in``) and output channels ``ko`` (of ``c_out``)."""
    if isinstance(layer, Residual):
        raise AssertionError("residual blocks are rebuilt by Pruner")
    if isinstance(layer, Dense):
        w = layer.w[_rows(ki, layer.w.shape[0], c_in)][:, ko]
        return Dense(w, layer.b[ko], layer.act)
    if isinstance(layer, Pointwise):
        inner = layer.inner
        assert isinstance(inner, Dense)
        return Pointwise(
            Dense(inner.w[ki][:, ko], inner.b[ko]), _with_channels(layer.in_shape, ki, c_in), layer.act
        )
    if isinstance(layer, Conv2D | Conv1D):
        st = layer.state()
        st.update(
            w=layer.w[..., ki, :][..., ko], b=layer.b[ko], in_shape=_with_channels(layer.in_shape, ki, c_in)
        )
        return type(layer).from_state(st)
    # per-channel layers: every array with the channel axis last is cut
    st = layer.state()
    for key, val in list(st.items()):
        if key in ("in_shape", "shape"):
            st[key] = _with_channels(tuple(int(v) for v in val), ki, c_in)
        elif isinstance(val, np.ndarray) and val.ndim >= 1 and val.shape[-1] == c_in:
            st[key] = val[..., ki]
    return type(layer).from_state(st)


class Pruner:
    """Rebuild a network keeping, per channel group, the channels chosen by :meth:`choose`."""

    def __init__(self, net: Network, keep: float) -> None:
        self.graph = ChannelGraph(net)
        self.net = net
        self.kept: dict[int, np.ndarray] = {}
        for g in range(len(self.graph.groups)):
            r = self.graph.find(g)
            if r in self.kept:
                continue
            grp = self.graph.groups[r]
            if grp.fixed:
                self.kept[r] = np.arange(grp.size)
                continue
            n_keep = max(1, int(round(keep * grp.size)))
            score = self.graph.scores(r)
            self.kept[r] = np.sort(np.argsort(-score, kind="stable")[:n_keep])

    def keep_of(self, g: int) -> np.ndarray:
        return self.kept[self.graph.find(g)]

    def pruned_groups(self) -> dict[str, list[int]]:
        """``{group id: [channels before, after]}`` for the groups that lost channels."""
        out = {}
        for r, k in self.kept.items():
            size = self.graph.groups[r].size
            if len(k) < size:
                out[str(r)] = [size, len(k)]
        return out

    def _rebuild(self, layer: Layer) -> Layer:
        g_in, g_out = self.graph.io[id(layer)]
        if isinstance(layer, Residual):
            body = [self._rebuild(la) for la in layer.body]
            sc = [self._rebuild(la) for la in layer.shortcut] or None
            return Residual(body, sc, layer.act)
        c_in, c_out = self.graph.group(g_in).size, self.graph.group(g_out).size
        ki, ko = self.keep_of(g_in), self.keep_of(g_out)
        if len(ki) == c_in and len(ko) == c_out:
            return layer
        return _slice(layer, ki, ko, c_in, c_out)

    def network(self) -> Network:
        return Network([self._rebuild(layer) for layer in self.net.layers])


def prune_channels(net: Network, keep: float) -> tuple[Network, dict[str, list[int]]]:
    """A smaller network keeping ``keep`` of the channels of every removable group, and what was cut."""
    p = Pruner(net, keep)
    return p.network(), p.pruned_groups()
