"""Convolutions on NHWC images and (L, C) sequences: :class:`Conv2D` and :class:`Conv1D` (groups=1).

Parametrisation::

    Conv2D: w float32 (kh, kw, c_in, c_out), b float32 (c_out,), input (H, W, c_in) -> (Ho, Wo, c_out)
    Conv1D: w float32 (k, c_in, c_out),      b float32 (c_out,), input (L, c_in)    -> (Lo, c_out)
    y = act(conv(x, w) + b)                  MACs = Ho * Wo * kh * kw * c_in * c_out

Padding ``"same"``/``"valid"`` with TFLite's SAME convention (:mod:`.im2col`). The forward pass is one
im2col and one matmul; a 1x1 (pointwise) convolution skips im2col and is a plain matmul on the pixels.
A Conv1D is computed as a Conv2D on ``(1, L, c_in)`` and exported as a 1-D ONNX ``Conv``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import LAYERS, act_grad, apply_act, check_act
from .im2col import Geometry, check_padding, col2im, im2col, pad_hw, unpad_hw, window_geometry
from .shaped import ShapedLayer, ShapeLike, as_shape, pair

if TYPE_CHECKING:
    from ..export.onnx_graph import OnnxGraph
    from ..export.tflite_graph import TfliteGraph
    from ..quant import QParams


class _Conv(ShapedLayer):
    """The shared 2-D arithmetic; subclasses map their own weight and sample layout to NHWC."""

    w: np.ndarray
    b: np.ndarray
    stride: tuple[int, int]
    padding: str
    _in: tuple[int, ...]

    # --- the NHWC view of this layer ---
    @property
    def w4(self) -> np.ndarray:
        """Weights as (kh, kw, c_in, c_out)."""
        return self.w

    @property
    def hw_in(self) -> tuple[int, int, int]:
        """The input as (H, W, C)."""
        return self._in  # type: ignore[return-value]

    def geometry(self) -> Geometry:
        """``(kh, kw, ho, wo, pad_h, pad_w)`` for this layer's input size."""
        h, w, _ = self.hw_in
        return window_geometry((h, w), self.w4.shape[:2], self.stride, self.padding)

    def _validate(self) -> None:
        check_padding(self.kind, self.padding)
        check_act(self.kind, self.act)
        w4 = self.w4
        if w4.ndim != 4 or self.b.shape != (w4.shape[3],):
            raise ValueError(f"{self.kind}: w {self.w.shape} and b {self.b.shape} do not match")
        if self.hw_in[2] != w4.shape[2]:
            raise ValueError(f"{self.kind}: input has {self.hw_in[2]} channels but w expects {w4.shape[2]}")
        self.geometry()  # raises when a valid window does not fit

    @property
    def pointwise(self) -> bool:
        """1x1 kernel: no padding and no im2col, a matmul on (strided) pixels."""
        return self.w4.shape[0] == 1 and self.w4.shape[1] == 1

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self._in

    @property
    def bias(self) -> np.ndarray:
        return self.b

    # --- arithmetic on the NHWC view ---
    def _cols(self, x4: np.ndarray) -> np.ndarray:
        kh, kw, ho, wo, ph, pw = self.geometry()
        sh, sw = self.stride
        if self.pointwise:
            return np.ascontiguousarray(x4[:, ::sh, ::sw, :]).reshape(-1, x4.shape[3])
        return im2col(pad_hw(x4, ph, pw), kh, kw, sh, sw, ho, wo)

    def _to4(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(-1, *self.hw_in)

    def linear(self, x: np.ndarray) -> np.ndarray:
        w4 = self.w4.astype(x.dtype, copy=False)
        y = self._cols(self._to4(x)) @ w4.reshape(-1, w4.shape[3])
        return y.reshape(-1, *self.out_shape)

    def params(self) -> list[np.ndarray]:
        return [self.w, self.b]

    def train_forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        w4 = self.w4.astype(x.dtype, copy=False)
        cols = self._cols(self._to4(x))
        z = (cols @ w4.reshape(-1, w4.shape[3]) + self.b.astype(x.dtype, copy=False)).reshape(
            -1, *self.out_shape
        )
        return apply_act(z, self.act), (x.shape, cols, z)

    def train_backward(self, cache: Any, dy: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        x_shape, cols, z = cache
        dz = act_grad(z, dy, self.act)
        return self._grads(x_shape, cols, dz)

    def backward(self, x: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        return self._grads(x.shape, self._cols(self._to4(x)), dz)

    def _grads(
        self, x_shape: tuple[int, ...], cols: np.ndarray, dz: np.ndarray
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        w4 = self.w4.astype(dz.dtype, copy=False)
        c_out = w4.shape[3]
        dz2 = dz.reshape(-1, c_out)
        dw = (cols.T @ dz2).reshape(self.w.shape)
        db = dz2.sum(axis=0)
        dcols = dz2 @ w4.reshape(-1, c_out).T
        kh, kw, ho, wo, ph, pw = self.geometry()
        sh, sw = self.stride
        h, w, c = self.hw_in
        b = x_shape[0]
        if self.pointwise:
            dx4 = np.zeros((b, h, w, c), dtype=dz.dtype)
            dx4[:, ::sh, ::sw, :] = dcols.reshape(b, ho, wo, c)
        else:
            shape = (b, h + ph[0] + ph[1], w + pw[0] + pw[1], c)
            dx4 = unpad_hw(col2im(dcols, shape, kh, kw, sh, sw, ho, wo), ph, pw)
        return dx4.reshape(x_shape), [dw, db]

    # --- cost ---
    def n_params(self) -> int:
        return int(np.count_nonzero(self.w)) + int(self.b.size)

    def macs(self) -> int:
        kh, kw, ho, wo, _, _ = self.geometry()
        return ho * wo * kh * kw * int(self.w4.shape[2]) * int(self.w4.shape[3])

    def fold_affine(self, scale: np.ndarray, shift: np.ndarray, act: str | None) -> _Conv:
        """This layer followed by ``y * scale + shift`` per output channel (BatchNorm folding)."""
        s = scale.astype(np.float32)
        state = self.state()
        state.update(w=self.w * s, b=self.b * s + shift.astype(np.float32), act=act or "")
        return type(self).from_state(state)  # type: ignore[return-value]


@LAYERS.register("conv2d")
class Conv2D(_Conv):
    """2-D convolution on NHWC images, ``w`` of shape ``(kh, kw, c_in, c_out)``."""

    kind = "conv2d"

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
        if len(self._in) != 3:
            raise ValueError(f"conv2d: input shape must be (H, W, C), got {self._in}")
        self.stride = pair(stride, self.kind)
        self.padding = padding
        self.act = act
        self._validate()

    @property
    def out_shape(self) -> tuple[int, ...]:
        _, _, ho, wo, _, _ = self.geometry()
        return (ho, wo, int(self.w.shape[3]))

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
    def from_state(cls, state: dict[str, Any]) -> Conv2D:
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
        xt = g.node("Transpose", [x], perm=[0, 3, 1, 2])
        w = g.initializer("w", self.w.transpose(3, 2, 0, 1))
        b = g.initializer("b", self.b)
        y = g.node(
            "Conv",
            [xt, w, b],
            kernel_shape=[kh, kw],
            strides=list(self.stride),
            pads=[ph[0], pw[0], ph[1], pw[1]],
        )
        y = g.activation(y, self.act)
        return g.node("Transpose", [y], perm=[0, 2, 3, 1])

    # --- TFLite: CONV_2D on the NHWC tensor, weights OHWI ---
    def _ohwi(self) -> np.ndarray:
        return self.w.transpose(3, 0, 1, 2)

    def to_tflite(self, g: TfliteGraph, x: int) -> int:
        from ..export.tflite_conv import conv2d

        return conv2d(g, x, self._ohwi(), self.b, stride=self.stride, padding=self.padding, act=self.act)

    def to_tflite_dynamic(self, g: TfliteGraph, x: int) -> int:
        from ..export.tflite_conv import conv2d_dynamic

        return conv2d_dynamic(
            g, x, self._ohwi(), self.b, stride=self.stride, padding=self.padding, act=self.act
        )

    def to_tflite_int8(self, g: TfliteGraph, x: int, qin: QParams, qout: QParams) -> int:
        from ..export.tflite_conv import conv2d_int8

        return conv2d_int8(
            g, x, self._ohwi(), self.b, qin, qout, stride=self.stride, padding=self.padding, act=self.act
        )


@LAYERS.register("conv1d")
class Conv1D(_Conv):
    """1-D convolution on ``(L, c_in)`` sequences, ``w`` of shape ``(k, c_in, c_out)``."""

    kind = "conv1d"

    def __init__(
        self,
        w: np.ndarray,
        b: np.ndarray,
        in_shape: ShapeLike,
        *,
        stride: int = 1,
        padding: str = "same",
        act: str | None = None,
    ) -> None:
        self.w = np.ascontiguousarray(w, dtype=np.float32)
        self.b = np.ascontiguousarray(b, dtype=np.float32)
        self._in = as_shape(in_shape)
        if len(self._in) != 2 or self.w.ndim != 3:
            raise ValueError(
                f"conv1d: needs input (L, C) and w (k, c_in, c_out), got {self._in} and {self.w.shape}"
            )
        self.stride = (1, int(stride))
        if self.stride[1] < 1:
            raise ValueError(f"conv1d: stride must be positive, got {stride}")
        self.padding = padding
        self.act = act
        self._validate()

    @property
    def w4(self) -> np.ndarray:
        return self.w[None]

    @property
    def hw_in(self) -> tuple[int, int, int]:
        return (1, self._in[0], self._in[1])

    @property
    def out_shape(self) -> tuple[int, ...]:
        _, _, _, wo, _, _ = self.geometry()
        return (wo, int(self.w.shape[2]))

    def state(self) -> dict[str, Any]:
        return {
            "w": self.w,
            "b": self.b,
            "in_shape": list(self._in),
            "stride": self.stride[1],
            "padding": self.padding,
            "act": self.act or "",
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Conv1D:
        return cls(
            state["w"],
            state["b"],
            as_shape(state["in_shape"]),
            stride=int(state["stride"]),
            padding=str(state["padding"]),
            act=str(state["act"]) or None,
        )

    def to_onnx(self, g: OnnxGraph, x: str) -> str:
        _, k, _, _, _, pw = self.geometry()
        xt = g.node("Transpose", [x], perm=[0, 2, 1])
        w = g.initializer("w", self.w.transpose(2, 1, 0))
        b = g.initializer("b", self.b)
        y = g.node("Conv", [xt, w, b], kernel_shape=[k], strides=[self.stride[1]], pads=[pw[0], pw[1]])
        y = g.activation(y, self.act)
        return g.node("Transpose", [y], perm=[0, 2, 1])

    # --- TFLite: a height-1 CONV_2D between two RESHAPEs, weights (out, k, in) ---
    def _oki(self) -> np.ndarray:
        return self.w.transpose(2, 0, 1)

    def to_tflite(self, g: TfliteGraph, x: int) -> int:
        from ..export.tflite_conv import conv1d

        return conv1d(g, x, self._oki(), self.b, stride=self.stride[1], padding=self.padding, act=self.act)

    def to_tflite_dynamic(self, g: TfliteGraph, x: int) -> int:
        from ..export.tflite_conv import conv1d_dynamic

        return conv1d_dynamic(
            g, x, self._oki(), self.b, stride=self.stride[1], padding=self.padding, act=self.act
        )

    def to_tflite_int8(self, g: TfliteGraph, x: int, qin: QParams, qout: QParams) -> int:
        from ..export.tflite_conv import conv1d_int8

        return conv1d_int8(
            g, x, self._oki(), self.b, qin, qout, stride=self.stride[1], padding=self.padding, act=self.act
        )
