"""A dense-family layer applied at every position of an NHWC image or ``(L, C)`` sequence.

A pointwise (1x1, stride 1) convolution is one ``(C_in, C_out)`` matrix applied to the channel vector of
every pixel. :class:`Pointwise` wraps any dense-family layer on that matrix (:class:`~.dense.Dense`,
:class:`~.lowrank.LowRank`, :class:`~.monarch.Monarch`, :class:`~.butterfly.Butterfly`), so the
factorising compressors replace a pointwise convolution exactly as they replace a dense layer.

Parametrisation::

    inner: a dense-family layer (in_dim = C_in, out_dim = C_out, its own act None)
    input (..., C_in) -> (..., C_out);   y = act(inner.linear(x[p]) + inner.bias) at every position p
    params = inner's;   MACs = positions * inner.macs()

The activation lives on the wrapper (so ``relu6`` works whatever the inner layer supports). ONNX: a
``Reshape`` to ``(B*positions, C_in)``, the inner layer's nodes, a ``Reshape`` back and the
activation. Saved as the inner layer's state under the prefix ``inner.`` (with its ``kind``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .base import LAYERS, Layer, check_act
from .dense import Dense
from .lowrank import LowRank
from .monarch import Monarch
from .shaped import ShapedLayer, ShapeLike, as_shape

if TYPE_CHECKING:
    from ..export.onnx_graph import OnnxGraph


@LAYERS.register("pointwise")
class Pointwise(ShapedLayer):
    """``inner`` applied to the channel vector at every position of a ``shape`` sample."""

    kind = "pointwise"

    def __init__(self, inner: Layer, shape: ShapeLike, act: str | None = None) -> None:
        if isinstance(inner, ShapedLayer):
            raise ValueError(f"pointwise: the inner layer must be dense-family, got {inner.kind}")
        if inner.act is not None:
            raise ValueError(
                f"pointwise: the inner {inner.kind} carries act={inner.act!r}; give the activation to "
                "Pointwise(act=...) and build the inner layer with act=None"
            )
        self.inner = inner
        self._in = as_shape(shape)
        if len(self._in) < 2 or self._in[-1] != inner.in_dim:
            raise ValueError(
                f"pointwise: sample shape {self._in} must be (..., C) with C = the inner layer's "
                f"in_dim {inner.in_dim}"
            )
        self.act = check_act(self.kind, act)

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self._in

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (*self._in[:-1], self.inner.out_dim)

    @property
    def positions(self) -> int:
        """Pixels (or sequence steps) the inner layer runs on per sample."""
        return int(np.prod(self._in[:-1]))

    @property
    def bias(self) -> np.ndarray:
        return self.inner.bias

    def linear(self, x: np.ndarray) -> np.ndarray:
        y = self.inner.linear(np.asarray(x).reshape(-1, self._in[-1]))
        return y.reshape(-1, *self.out_shape)

    def to_dense(self) -> np.ndarray:
        """The ``(C_in, C_out)`` matrix the layer applies at every position."""
        if isinstance(self.inner, Dense):
            return self.inner.w
        return np.asarray(self.inner.to_dense())  # type: ignore[attr-defined]

    # --- training ---
    def params(self) -> list[np.ndarray]:
        if isinstance(self.inner, Dense):
            return [self.inner.w, self.inner.b]
        return list(self.inner.params())  # type: ignore[attr-defined]

    def backward(self, x: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        x2 = x.reshape(-1, self._in[-1])
        dz2 = dz.reshape(-1, self.inner.out_dim)
        if isinstance(self.inner, Dense):
            w = self.inner.w.astype(dz.dtype, copy=False)
            return (dz2 @ w.T).reshape(x.shape), [x2.T @ dz2, dz2.sum(axis=0)]
        dx2, grads = self.inner.backward(x2, dz2)  # type: ignore[attr-defined]
        return dx2.reshape(x.shape), grads

    def calibrate(self, x: np.ndarray) -> None:
        """Let the inner layer record its internal ranges on the per-position rows."""
        fn = getattr(self.inner, "calibrate", None)
        if fn is not None:
            fn(np.asarray(x, dtype=np.float32).reshape(-1, self._in[-1]))

    # --- cost ---
    def n_params(self) -> int:
        return self.inner.n_params()

    def macs(self) -> int:
        return self.positions * self.inner.macs()

    def fold_affine(self, scale: np.ndarray, shift: np.ndarray, act: str | None) -> Pointwise | None:
        """This layer followed by ``y * scale + shift`` per channel (BatchNorm folding), or None when the
        inner structure cannot absorb a per-output scale (butterfly)."""
        s = scale.astype(np.float32)
        b = self.inner.bias * s + shift.astype(np.float32)
        inner: Layer
        if isinstance(self.inner, Dense):
            inner = Dense(self.inner.w * s, b)
        elif isinstance(self.inner, LowRank):
            inner = LowRank(self.inner.u, self.inner.v * s, b)
        elif isinstance(self.inner, Monarch):
            q, _, sz = self.inner.w2.shape
            inner = Monarch(self.inner.w1, self.inner.w2 * s.reshape(q, 1, sz), b, form=self.inner.form)
        else:
            return None
        return Pointwise(inner, self._in, act)

    # --- persistence, export ---
    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"shape": list(self._in), "act": self.act or "", "inner.kind": self.inner.kind}
        for key, val in self.inner.state().items():
            out[f"inner.{key}"] = val
        return out

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Pointwise:
        sub = {k[len("inner.") :]: v for k, v in state.items() if k.startswith("inner.")}
        inner = LAYERS.get(str(sub.pop("kind"))).from_state(sub)
        return cls(inner, as_shape(state["shape"]), str(state["act"]) or None)

    def to_onnx(self, g: OnnxGraph, x: str) -> str:
        rows = g.node("Reshape", [x, g.initializer("shape", np.array([-1, self._in[-1]], np.int64))])
        y = self.inner.to_onnx(g, rows)
        y = g.node("Reshape", [y, g.initializer("shape", np.array([-1, *self.out_shape], np.int64))])
        return g.activation(y, self.act)
