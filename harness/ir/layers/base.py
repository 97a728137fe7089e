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

ACTIVATIONS = (None, "relu", "relu6")


def apply_act(z: np.ndarray, act: str | None) -> np.ndarray:
    """The fused activation on a pre-activation array (``None``, ``"relu"`` or ``"relu6"``)."""
    if act == "relu":
        return np.maximum(z, 0.0)
    if act == "relu6":
        return np.clip(z, 0.0, 6.0)
    return z


def act_grad(z: np.ndarray, dy: np.ndarray, act: str | None) -> np.ndarray:
    """Gradient at the pre-activation ``z`` given the gradient ``dy`` at the activation's output."""
    if act == "relu":
        return dy * (z > 0)
    if act == "relu6":
        return dy * ((z > 0) & (z < 6))
    return dy


def check_act(kind: str, act: str | None) -> str | None:
    """``act`` if it is a known activation, else a ValueError naming the layer and the choices."""
    if act not in ACTIVATIONS:
        raise ValueError(f"{kind}: unknown activation {act!r}; use one of {ACTIVATIONS}")
    return act


class Layer(ABC):
    """A map ``y = act(f(x) + b)`` on a float32 batch ``(B, *in_shape)``.

    Dense-family layers work on 2-D batches ``(B, in_dim)`` (``in_shape == (in_dim,)``); the
    convolutional layers (:mod:`.shaped`) declare per-sample shapes such as NHWC ``(H, W, C)`` or
    ``(L, C)`` and keep ``in_dim``/``out_dim`` as the products of those shapes.

    Attributes:
        kind: registry name, stored in saved networks.
        act: ``None``, ``"relu"`` or ``"relu6"`` (fused, as TFLite and CMSIS-NN fuse it into
            requantisation; dense-family layers use ``None`` or ``"relu"``).
    """

    kind: ClassVar[str]
    act: str | None

    @property
    @abstractmethod
    def in_dim(self) -> int: ...

    @property
    @abstractmethod
    def out_dim(self) -> int: ...

    @property
    def in_shape(self) -> tuple[int, ...]:
        """Shape of one input sample (``(in_dim,)`` for dense-family layers)."""
        return (self.in_dim,)

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Shape of one output sample (``(out_dim,)`` for dense-family layers)."""
        return (self.out_dim,)

    @abstractmethod
    def linear(self, x: np.ndarray) -> np.ndarray:
        """The layer without bias and activation: ``f(x)`` for a float batch."""

    @property
    @abstractmethod
    def bias(self) -> np.ndarray: ...

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Float forward pass of a ``(B, *in_shape)`` batch."""
        y = self.linear(np.asarray(x, dtype=np.float32)) + self.bias
        if self.act == "relu":
            y = np.maximum(y, 0.0)
        elif self.act == "relu6":
            y = np.clip(y, 0.0, 6.0)
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
