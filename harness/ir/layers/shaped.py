"""The base of the convolutional-network layers: per-sample shapes, training hooks, export stubs.

A :class:`ShapedLayer` maps a float batch ``(B, *in_shape)`` to ``(B, *out_shape)``; images are
NHWC ``(H, W, C)``, 1-D sequences ``(L, C)``. ``in_dim``/``out_dim`` are the products of the shapes,
so code that only knows flat vectors (dataset widths, ONNX/TFLite model inputs) keeps working: a
CNN starts with a :class:`~.reshape.Reshape` from ``(features,)``.

Training protocol (used by :func:`harness.ir.train.fit` and by :class:`~.residual.Residual`):

* ``params()``: the trainable arrays, updated in place;
* ``buffers()``: other state that training changes (BatchNorm running statistics);
* ``train_forward(x) -> (y, cache)`` and ``train_backward(cache, dy) -> (dx, grads)``, where ``dy``
  is the gradient at the layer's output (after its fused activation) and ``grads`` matches
  ``params()``. The default runs ``linear + bias``, the fused activation and ``backward(x, dz)``
  (``dz`` at the pre-activation output, the convention of the dense-family layers).

The arithmetic keeps the dtype of its input, so gradient checks can run in float64.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from .base import Layer, act_grad, apply_act

if TYPE_CHECKING:
    from ..export.tflite_graph import TfliteGraph
    from ..quant import QParams


ShapeLike: TypeAlias = Sequence[int]
"""A per-sample shape as given by a caller (tuple or list of ints)."""


def pair(v: int | Sequence[int], kind: str, what: str = "stride") -> tuple[int, int]:
    """An int or a pair of ints as a pair of positive ints (strides, pool windows)."""
    t = (int(v), int(v)) if isinstance(v, int | np.integer) else tuple(int(a) for a in v)
    if len(t) != 2 or min(t) < 1:
        raise ValueError(f"{kind}: {what} must be a positive int or a pair, got {v!r}")
    return t[0], t[1]


def as_shape(shape: Any) -> tuple[int, ...]:
    """A per-sample shape as a tuple of positive ints (from a tuple, a list or a saved array)."""
    out = tuple(int(v) for v in np.atleast_1d(np.asarray(shape)).tolist())
    if not out or min(out) < 1:
        raise ValueError(f"a sample shape needs positive sizes, got {shape!r}")
    return out


class ShapedLayer(Layer):
    """A layer with explicit per-sample shapes and the training hooks described in the module."""

    act: str | None = None

    @property
    @abstractmethod
    def in_shape(self) -> tuple[int, ...]: ...

    @property
    @abstractmethod
    def out_shape(self) -> tuple[int, ...]: ...

    @property
    def in_dim(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def out_dim(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def bias(self) -> np.ndarray:
        return np.zeros((), np.float32)

    def check_input(self, x: np.ndarray) -> None:
        """Raise a ValueError when a batch does not have this layer's sample shape."""
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(
                f"{self.kind} expects batches of shape (B, {', '.join(map(str, self.in_shape))}), "
                f"got {tuple(x.shape)}"
            )

    # --- training ---
    def params(self) -> list[np.ndarray]:
        """Trainable arrays (updated in place by the trainer); none by default."""
        return []

    def buffers(self) -> list[np.ndarray]:
        """Non-trainable arrays that training changes (running statistics); none by default."""
        return []

    def backward(self, x: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """``(dx, grads)`` from the input and the gradient at the pre-activation output."""
        raise NotImplementedError(f"{self.kind} has no backward pass")

    def train_forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        """Training-mode forward pass: the output and what :meth:`train_backward` needs."""
        z = self.linear(x) + self.bias.astype(x.dtype, copy=False)
        return apply_act(z, self.act), (x, z)

    def train_backward(self, cache: Any, dy: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """``(dx, grads)`` from the cache of :meth:`train_forward` and the gradient at the output."""
        x, z = cache
        return self.backward(x, act_grad(z, dy, self.act))

    # --- TFLite: each layer calls the op builders of harness/ir/export/tflite_conv.py ---
    def to_tflite(self, g: TfliteGraph, x: int) -> int:
        raise NotImplementedError(f"{self.kind} layers have no TFLite export yet; export to ONNX")

    def to_tflite_dynamic(self, g: TfliteGraph, x: int) -> int:
        """Dynamic-range ops; a layer without weights writes its float ops (layers with weights override)."""
        return self.to_tflite(g, x)

    def to_tflite_int8(self, g: TfliteGraph, x: int, qin: QParams, qout: QParams) -> int:
        raise NotImplementedError(f"{self.kind} layers have no int8 TFLite export yet; export to ONNX")
