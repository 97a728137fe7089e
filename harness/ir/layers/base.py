"""The layer contract of the model IR."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ...registry import Registry

if TYPE_CHECKING:
    from ..export.onnx_graph import OnnxGraph
    from ..export.tflite_graph import TfliteGraph
    from ..quant import QParams

LAYERS: Registry[type[Layer]] = Registry("layer")

ACTIVATIONS = (None, "relu")


class Layer(ABC):
    """A linear map ``y = act(f(x) + b)`` on the last axis of a 2-D float32 batch ``(B, in_dim)``.

    Attributes:
        kind: registry name, stored in saved networks.
        act: ``None`` or ``"relu"`` (fused, as TFLite and CMSIS-NN fuse it into requantisation).
    """

    kind: ClassVar[str]
    act: str | None

    @property
    @abstractmethod
    def in_dim(self) -> int: ...

    @property
    @abstractmethod
    def out_dim(self) -> int: ...

    @abstractmethod
    def linear(self, x: np.ndarray) -> np.ndarray:
        """The layer without bias and activation: ``f(x)`` for a float batch."""

    @property
    @abstractmethod
    def bias(self) -> np.ndarray: ...

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Float forward pass of a ``(B, in_dim)`` batch."""
        y = self.linear(np.asarray(x, dtype=np.float32)) + self.bias
        if self.act == "relu":
            y = np.maximum(y, 0.0)
        return y.astype(np.float32, copy=False)

    @abstractmethod
    def n_params(self) -> int:
        """Stored parameters (non-zero weights for sparse layers, plus biases)."""

    @abstractmethod
    def macs(self) -> int:
        """Multiply-accumulates per sample."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """Arrays and scalars that :meth:`from_state` needs (saved in ``.npz``)."""

    @classmethod
    @abstractmethod
    def from_state(cls, state: dict[str, Any]) -> Layer: ...

    @abstractmethod
    def to_onnx(self, g: OnnxGraph, x: str) -> str:
        """Append float nodes computing this layer on tensor ``x``; return the output name."""

    @abstractmethod
    def to_tflite(self, g: TfliteGraph, x: int) -> int:
        """Append float ops on tensor index ``x``; return the output tensor index."""

    def to_tflite_dynamic(self, g: TfliteGraph, x: int) -> int:
        """Append dynamic-range ops (int8 weights, float activations)."""
        raise NotImplementedError(f"{self.kind} has no dynamic-range TFLite export yet")

    def to_tflite_int8(self, g: TfliteGraph, x: int, qin: QParams, qout: QParams) -> int:
        """Append int8 ops (input quantised with ``qin``, output with ``qout``)."""
        raise NotImplementedError(f"{self.kind} has no int8 TFLite export yet")
