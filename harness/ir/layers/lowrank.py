"""Low-rank layer: a dense layer factored as ``x @ u @ v`` (truncated SVD, then fine-tuned).

Parametrisation::

    u: float32 (in_dim, r)
    v: float32 (r, out_dim)
    b: float32 (out_dim,)
    y = act(x @ u @ v + b)         r * (in_dim + out_dim) weights and MACs

int8 export needs the range of ``x @ u``: :meth:`LowRank.calibrate` stores it in ``ranges``
(shape ``(1, 2)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..quant import QParams, activation_qparams
from .base import LAYERS, Layer
from .monarch import range_of

if TYPE_CHECKING:
    from ..export.onnx_graph import OnnxGraph
    from ..export.tflite_graph import TfliteGraph


def svd_factors(w: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Best rank-``rank`` factors ``(u, v)`` of ``w`` (singular values split evenly)."""
    u, s, vt = np.linalg.svd(np.asarray(w, dtype=np.float64), full_matrices=False)
    root = np.sqrt(s[:rank])
    return (u[:, :rank] * root).astype(np.float32), (root[:, None] * vt[:rank]).astype(np.float32)


@LAYERS.register("lowrank")
class LowRank(Layer):
    """``y = act(x @ u @ v + b)``."""

    kind = "lowrank"

    def __init__(
        self,
        u: np.ndarray,
        v: np.ndarray,
        b: np.ndarray,
        act: str | None = None,
        ranges: np.ndarray | None = None,
    ) -> None:
        self.u = np.ascontiguousarray(u, dtype=np.float32)
        self.v = np.ascontiguousarray(v, dtype=np.float32)
        self.b = np.ascontiguousarray(b, dtype=np.float32)
        if self.u.ndim != 2 or self.v.shape[0] != self.u.shape[1] or self.b.shape != (self.v.shape[1],):
            raise ValueError(f"lowrank: u {self.u.shape}, v {self.v.shape}, b {self.b.shape} do not match")
        self.act = act
        self.ranges = None if ranges is None or np.size(ranges) == 0 else np.asarray(ranges, np.float64)

    @classmethod
    def from_dense(cls, w: np.ndarray, b: np.ndarray, act: str | None, rank: int) -> LowRank:
        u, v = svd_factors(w, rank)
        return cls(u, v, b, act)

    @property
    def rank(self) -> int:
        return int(self.u.shape[1])

    @property
    def in_dim(self) -> int:
        return int(self.u.shape[0])

    @property
    def out_dim(self) -> int:
        return int(self.v.shape[1])

    @property
    def bias(self) -> np.ndarray:
        return self.b

    def linear(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float32) @ self.u) @ self.v

    def to_dense(self) -> np.ndarray:
        return self.u @ self.v

    def n_params(self) -> int:
        return int(self.u.size + self.v.size + self.b.size)

    def macs(self) -> int:
        """``r * (in_dim + out_dim)`` per sample."""
        return int(self.u.size + self.v.size)

    def params(self) -> list[np.ndarray]:
        return [self.u, self.v, self.b]

    def backward(self, x: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        h = x @ self.u
        dh = dz @ self.v.T
        return dh @ self.u.T, [x.T @ dh, h.T @ dz, dz.sum(axis=0)]

    def calibrate(self, x: np.ndarray) -> None:
        self.ranges = np.array([range_of(np.asarray(x, dtype=np.float32) @ self.u)])

    def state(self) -> dict[str, Any]:
        st: dict[str, Any] = {"u": self.u, "v": self.v, "b": self.b, "act": self.act or ""}
        if self.ranges is not None:
            st["ranges"] = self.ranges
        return st

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LowRank:
        return cls(state["u"], state["v"], state["b"], str(state["act"]) or None, state.get("ranges"))

    def to_onnx(self, g: OnnxGraph, x: str) -> str:
        t = g.node("MatMul", [x, g.initializer("u", self.u)])
        t = g.node("MatMul", [t, g.initializer("v", self.v)])
        t = g.node("Add", [t, g.initializer("b", self.b)])
        return g.node("Relu", [t]) if self.act == "relu" else t

    def to_tflite(self, g: TfliteGraph, x: int) -> int:
        h = g.fully_connected(x, self.u.T.copy(), np.zeros(self.rank, np.float32), relu=False)
        return g.fully_connected(h, self.v.T.copy(), self.b, relu=self.act == "relu")

    def to_tflite_int8(self, g: TfliteGraph, x: int, qin: QParams, qout: QParams) -> int:
        if self.ranges is not None:
            lo, hi = self.ranges[0]
        else:  # loose bound from the input range
            xmax = float(
                max(abs(qin.scale * (-128 - qin.zero_point)), abs(qin.scale * (127 - qin.zero_point)))
            )
            hi = xmax * float(np.abs(self.u).sum(axis=0).max())
            lo = -hi
        qh = activation_qparams(lo, hi)
        h = g.fully_connected_int8(x, self.u.T.copy(), np.zeros(self.rank, np.float32), qin, qh, relu=False)
        return g.fully_connected_int8(h, self.v.T.copy(), self.b, qh, qout, relu=self.act == "relu")
