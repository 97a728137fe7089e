"""Batch normalisation over the channel (last) axis, with a fused activation.

Parametrisation::

    gamma, beta (trainable), mean, var (running statistics): float32 (C,)
    inference: y = act((x - mean) / sqrt(var + eps) * gamma + beta)
    training:  the batch's own mean and (biased) variance over every axis but C; the running
               statistics move by ``momentum`` towards the batch mean and the unbiased variance

``n_params()`` counts the four stored vectors (``4 * C``, as Keras does); ``macs()`` counts one
multiply-add per value, which disappears once :func:`harness.ir.network.fold_batchnorm` folds the
layer into the convolution before it (the export and int8 form).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .base import LAYERS, act_grad, apply_act, check_act
from .shaped import ShapedLayer, ShapeLike, as_shape

if TYPE_CHECKING:
    from ..export.onnx_graph import OnnxGraph
    from ..export.tflite_graph import TfliteGraph
    from ..quant import QParams


@LAYERS.register("batchnorm")
class BatchNorm(ShapedLayer):
    """Per-channel normalisation of ``(B, *shape)`` batches (channels last)."""

    kind = "batchnorm"

    def __init__(
        self,
        shape: ShapeLike,
        gamma: np.ndarray | None = None,
        beta: np.ndarray | None = None,
        mean: np.ndarray | None = None,
        var: np.ndarray | None = None,
        *,
        eps: float = 1e-3,
        momentum: float = 0.9,
        act: str | None = None,
    ) -> None:
        self._shape = as_shape(shape)
        c = self._shape[-1]

        def vec(v: np.ndarray | None, fill: float) -> np.ndarray:
            out = np.full(c, fill, np.float32) if v is None else np.array(v, dtype=np.float32)
            if out.shape != (c,):
                raise ValueError(f"batchnorm: a statistic of shape {out.shape} does not fit {c} channels")
            return out

        self.gamma, self.beta = vec(gamma, 1.0), vec(beta, 0.0)
        self.mean, self.var = vec(mean, 0.0), vec(var, 1.0)
        self.eps, self.momentum = float(eps), float(momentum)
        self.act = check_act(self.kind, act)

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self._shape

    def scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """The inference-time affine map ``y = x * scale + shift`` per channel (float64)."""
        scale = self.gamma.astype(np.float64) / np.sqrt(self.var.astype(np.float64) + self.eps)
        return scale, self.beta - self.mean * scale

    @property
    def bias(self) -> np.ndarray:
        return self.scale_shift()[1].astype(np.float32)

    def linear(self, x: np.ndarray) -> np.ndarray:
        return x * self.scale_shift()[0].astype(x.dtype)

    @property
    def _axes(self) -> tuple[int, ...]:
        return tuple(range(len(self._shape)))

    # --- training: batch statistics ---
    def params(self) -> list[np.ndarray]:
        return [self.gamma, self.beta]

    def buffers(self) -> list[np.ndarray]:
        return [self.mean, self.var]

    def train_forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        x2 = x.reshape(-1, self._shape[-1])
        n = x2.shape[0]
        mu = x2.mean(axis=0)
        var = x2.var(axis=0)
        inv = 1.0 / np.sqrt(var + self.eps)
        xhat = (x2 - mu) * inv
        z = (xhat * self.gamma.astype(x.dtype) + self.beta.astype(x.dtype)).reshape(x.shape)
        m = self.momentum
        self.mean[...] = m * self.mean + (1 - m) * mu
        self.var[...] = m * self.var + (1 - m) * var * (n / max(n - 1, 1))
        return apply_act(z, self.act), (xhat, inv, z)

    def train_backward(self, cache: Any, dy: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        xhat, inv, z = cache
        dz = act_grad(z, dy, self.act).reshape(xhat.shape)
        n = xhat.shape[0]
        dgamma = (dz * xhat).sum(axis=0)
        dbeta = dz.sum(axis=0)
        dxhat = dz * self.gamma.astype(dz.dtype)
        dx = (inv / n) * (n * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0))
        return dx.reshape(z.shape), [dgamma, dbeta]

    def backward(self, x: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Inference-mode gradients (running statistics held fixed)."""
        inv = 1.0 / np.sqrt(self.var.astype(dz.dtype) + self.eps)
        xhat = (x - self.mean.astype(dz.dtype)) * inv
        axes = tuple(range(dz.ndim - 1))
        return dz * (self.gamma * inv).astype(dz.dtype), [(dz * xhat).sum(axis=axes), dz.sum(axis=axes)]

    # --- cost, persistence, export ---
    def n_params(self) -> int:
        return 4 * self._shape[-1]

    def macs(self) -> int:
        return int(np.prod(self._shape))

    def state(self) -> dict[str, Any]:
        return {
            "shape": list(self._shape),
            "gamma": self.gamma,
            "beta": self.beta,
            "mean": self.mean,
            "var": self.var,
            "eps": self.eps,
            "momentum": self.momentum,
            "act": self.act or "",
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BatchNorm:
        return cls(
            as_shape(state["shape"]),
            state["gamma"],
            state["beta"],
            state["mean"],
            state["var"],
            eps=float(state["eps"]),
            momentum=float(state["momentum"]),
            act=str(state["act"]) or None,
        )

    def to_onnx(self, g: OnnxGraph, x: str) -> str:
        scale, shift = self.scale_shift()
        y = g.node("Mul", [x, g.initializer("scale", scale.astype(np.float32))])
        y = g.node("Add", [y, g.initializer("shift", shift.astype(np.float32))])
        return g.activation(y, self.act)

    # --- TFLite: the exporters fold BatchNorm; one that cannot fold is a 1x1 DEPTHWISE_CONV_2D ---
    def _depthwise(self) -> tuple[np.ndarray, np.ndarray, list[int] | None]:
        """Weights ``(1, 1, 1, C)``, bias, and the NHWC shape to reshape to (None for images)."""
        scale, shift = self.scale_shift()
        c = self._shape[-1]
        nhwc = None if len(self._shape) == 3 else [-1, 1, int(np.prod(self._shape[:-1])), c]
        return scale.astype(np.float32).reshape(1, 1, 1, c), shift.astype(np.float32), nhwc

    def to_tflite(self, g: TfliteGraph, x: int) -> int:
        from ..export.tflite_conv import depthwise_conv2d, reshape

        w, b, nhwc = self._depthwise()
        y = depthwise_conv2d(g, x if nhwc is None else reshape(g, x, nhwc), w, b, act=self.act)
        return y if nhwc is None else reshape(g, y, [-1, *self._shape])

    def to_tflite_dynamic(self, g: TfliteGraph, x: int) -> int:
        from ..export.tflite_conv import depthwise_conv2d_dynamic, reshape

        w, b, nhwc = self._depthwise()
        y = depthwise_conv2d_dynamic(g, x if nhwc is None else reshape(g, x, nhwc), w, b, act=self.act)
        return y if nhwc is None else reshape(g, y, [-1, *self._shape])

    def to_tflite_int8(self, g: TfliteGraph, x: int, qin: QParams, qout: QParams) -> int:
        from ..export.tflite_conv import depthwise_conv2d_int8, reshape_int8

        w, b, nhwc = self._depthwise()
        x4 = x if nhwc is None else reshape_int8(g, x, nhwc, qin)
        y = depthwise_conv2d_int8(g, x4, w, b, qin, qout, act=self.act)
        return y if nhwc is None else reshape_int8(g, y, [-1, *self._shape], qout)
