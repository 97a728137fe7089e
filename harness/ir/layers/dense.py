"""Dense (fully connected) layer; with zeros in ``w`` it is also the unstructured-pruned layer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .base import LAYERS, Layer

if TYPE_CHECKING:
    from ..export.onnx_graph import OnnxGraph
    from ..export.tflite_graph import TfliteGraph
    from ..quant import QParams


@LAYERS.register("dense")
class Dense(Layer):
    """``y = act(x @ w + b)`` with ``w`` of shape ``(in_dim, out_dim)``."""

    kind = "dense"

    def __init__(self, w: np.ndarray, b: np.ndarray, act: str | None = None) -> None:
        self.w = np.ascontiguousarray(w, dtype=np.float32)
        self.b = np.ascontiguousarray(b, dtype=np.float32)
        if self.w.ndim != 2 or self.b.shape != (self.w.shape[1],):
            raise ValueError(f"dense: w {self.w.shape} and b {self.b.shape} do not match")
        self.act = act

    @property
    def in_dim(self) -> int:
        return int(self.w.shape[0])

    @property
    def out_dim(self) -> int:
        return int(self.w.shape[1])

    @property
    def bias(self) -> np.ndarray:
        return self.b

    def linear(self, x: np.ndarray) -> np.ndarray:
        return x @ self.w

    def n_params(self) -> int:
        return int(np.count_nonzero(self.w)) + self.out_dim

    def macs(self) -> int:
        # A dense runtime multiplies the zeros too; sparse kernels report their own count.
        return self.in_dim * self.out_dim

    def state(self) -> dict[str, Any]:
        return {"w": self.w, "b": self.b, "act": self.act or ""}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Dense:
        return cls(state["w"], state["b"], str(state["act"]) or None)

    def to_onnx(self, g: OnnxGraph, x: str) -> str:
        w = g.initializer("w", self.w)
        b = g.initializer("b", self.b)
        y = g.node("MatMul", [x, w])
        y = g.node("Add", [y, b])
        return g.node("Relu", [y]) if self.act == "relu" else y

    def to_tflite(self, g: TfliteGraph, x: int) -> int:
        return g.fully_connected(x, self.w.T.copy(), self.b, relu=self.act == "relu")

    def to_tflite_dynamic(self, g: TfliteGraph, x: int) -> int:
        return g.fully_connected_hybrid(x, self.w.T.copy(), self.b, relu=self.act == "relu")

    def to_tflite_int8(self, g: TfliteGraph, x: int, qin: QParams, qout: QParams) -> int:
        return g.fully_connected_int8(x, self.w.T.copy(), self.b, qin, qout, relu=self.act == "relu")
