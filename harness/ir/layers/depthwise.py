"""Depthwise 2-D convolution (depth multiplier 1) on NHWC images.

Parametrisation::

    w float32 (kh, kw, C), b float32 (C,), input (H, W, C) -> (Ho, Wo, C)
    y[..., c] = act(sum_ij x_pad[.., i + s*h, j + s*w, c] * w[i, j, c] + b[c])
    MACs = Ho * Wo * kh * kw * C

The forward pass is one multiply-add per kernel tap on strided views (no im2col copy). ONNX: a
grouped ``Conv`` (``group = C``, weights ``(C, 1, kh, kw)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import LAYERS, act_grad, apply_act, check_act
from .im2col import Geometry, check_padding, pad_hw, taps, unpad_hw, window_geometry
from .shaped import ShapedLayer, ShapeLike, as_shape, pair

if TYPE_CHECKING:
    from ..export.onnx_graph import OnnxGraph
    from ..export.tflite_graph import TfliteGraph
    from ..quant import QParams


@LAYERS.register("depthwise_conv2d")
class DepthwiseConv2D(ShapedLayer):
    """Per-channel 2-D convolution, ``w`` of shape ``(kh, kw, C)``."""

    kind = "depthwise_conv2d"

    def __init__(
        self,
        w: np.ndarray,
        b: np.ndarray,
        in_shape: ShapeLike,
        *,
        stride: int | Sequence[int] = 1,
        padding: str = "same",
        act: str | None = None,
    ) -> None:
        self.w = np.ascontiguousarray(w, dtype=np.float32)
        self.b = np.ascontiguousarray(b, dtype=np.float32)
        self._in = as_shape(in_shape)
        self.stride = pair(stride, self.kind)
        self.padding = check_padding(self.kind, padding)
        self.act = check_act(self.kind, act)
        if len(self._in) != 3 or self.w.ndim != 3 or self.w.shape[2] != self._in[2]:
            raise ValueError(
                f"depthwise_conv2d: needs input (H, W, C) and w (kh, kw, C), got {self._in} and {self.w.shape}"
            )
        if self.b.shape != (self._in[2],):
            raise ValueError(f"depthwise_conv2d: b {self.b.shape} or stride {self.stride} do not fit")
        self.geometry()

    def geometry(self) -> Geometry:
        """``(kh, kw, ho, wo, pad_h, pad_w)``."""
        h, w, _ = self._in
        return window_geometry((h, w), self.w.shape[:2], self.stride, self.padding)

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self._in

    @property
    def out_shape(self) -> tuple[int, ...]:
        _, _, ho, wo, _, _ = self.geometry()
        return (ho, wo, self._in[2])

    @property
    def bias(self) -> np.ndarray:
        return self.b

    def _padded(self, x: np.ndarray) -> np.ndarray:
        _, _, _, _, ph, pw = self.geometry()
        return pad_hw(x.reshape(-1, *self._in), ph, pw)

    def _apply(self, xp: np.ndarray) -> np.ndarray:
        kh, kw, ho, wo, _, _ = self.geometry()
        w = self.w.astype(xp.dtype, copy=False)
        y = np.zeros((xp.shape[0], ho, wo, self._in[2]), dtype=xp.dtype)
        for i, j, view in taps(xp, kh, kw, *self.stride, ho, wo):
            y += view * w[i, j]
        return y

    def linear(self, x: np.ndarray) -> np.ndarray:
        return self._apply(self._padded(x))

    def params(self) -> list[np.ndarray]:
        return [self.w, self.b]

    def train_forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        xp = self._padded(x)
        z = self._apply(xp) + self.b.astype(x.dtype, copy=False)
        return apply_act(z, self.act), (x.shape, xp, z)

    def train_backward(self, cache: Any, dy: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        x_shape, xp, z = cache
        return self._grads(x_shape, xp, act_grad(z, dy, self.act))

    def backward(self, x: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        return self._grads(x.shape, self._padded(x), dz)

    def _grads(
        self, x_shape: tuple[int, ...], xp: np.ndarray, dz: np.ndarray
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        kh, kw, ho, wo, ph, pw = self.geometry()
        w = self.w.astype(dz.dtype, copy=False)
        dw = np.empty(self.w.shape, dtype=dz.dtype)
        dxp = np.zeros(xp.shape, dtype=dz.dtype)
        for (i, j, view), (_, _, dview) in zip(
            taps(xp, kh, kw, *self.stride, ho, wo), taps(dxp, kh, kw, *self.stride, ho, wo), strict=True
        ):
            dw[i, j] = (view * dz).sum(axis=(0, 1, 2))
            dview += dz * w[i, j]
        return unpad_hw(dxp, ph, pw).reshape(x_shape), [dw, dz.sum(axis=(0, 1, 2))]

    def n_params(self) -> int:
        return int(np.count_nonzero(self.w)) + int(self.b.size)

    def macs(self) -> int:
        kh, kw, ho, wo, _, _ = self.geometry()
        return ho * wo * kh * kw * self._in[2]

    def fold_affine(self, scale: np.ndarray, shift: np.ndarray, act: str | None) -> DepthwiseConv2D:
        """This layer followed by ``y * scale + shift`` per channel (BatchNorm folding)."""
        s = scale.astype(np.float32)
        return DepthwiseConv2D(
            self.w * s, self.b * s + shift, self._in, stride=self.stride, padding=self.padding, act=act
        )

    def state(self) -> dict[str, Any]:
        return {
            "w": self.w,
            "b": self.b,
            "in_shape": list(self._in),
            "stride": list(self.stride),
            "padding": self.padding,
            "act": self.act or "",
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DepthwiseConv2D:
        return cls(
            state["w"],
            state["b"],
            as_shape(state["in_shape"]),
            stride=tuple(state["stride"]),
            padding=str(state["padding"]),
            act=str(state["act"]) or None,
        )

    def to_onnx(self, g: OnnxGraph, x: str) -> str:
        kh, kw, _, _, ph, pw = self.geometry()
        c = self._in[2]
        xt = g.node("Transpose", [x], perm=[0, 3, 1, 2])
        w = g.initializer("w", self.w.transpose(2, 0, 1)[:, None])
        b = g.initializer("b", self.b)
        y = g.node(
            "Conv",
            [xt, w, b],
            kernel_shape=[kh, kw],
            strides=list(self.stride),
            pads=[ph[0], pw[0], ph[1], pw[1]],
            group=c,
        )
        y = g.activation(y, self.act)
        return g.node("Transpose", [y], perm=[0, 2, 3, 1])

    # --- TFLite: DEPTHWISE_CONV_2D, weights (1, kh, kw, C) ---
    def to_tflite(self, g: TfliteGraph, x: int) -> int:
        from ..export.tflite_conv import depthwise_conv2d

        return depthwise_conv2d(
            g, x, self.w[None], self.b, stride=self.stride, padding=self.padding, act=self.act
        )

    def to_tflite_dynamic(self, g: TfliteGraph, x: int) -> int:
        from ..export.tflite_conv import depthwise_conv2d_dynamic

        return depthwise_conv2d_dynamic(
            g, x, self.w[None], self.b, stride=self.stride, padding=self.padding, act=self.act
        )

    def to_tflite_int8(self, g: TfliteGraph, x: int, qin: QParams, qout: QParams) -> int:
        from ..export.tflite_conv import depthwise_conv2d_int8

        return depthwise_conv2d_int8(
            g, x, self.w[None], self.b, qin, qout, stride=self.stride, padding=self.padding, act=self.act
        )
