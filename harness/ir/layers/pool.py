"""Pooling on NHWC images (:class:`MaxPool2D`, :class:`AvgPool2D`) and :class:`GlobalAveragePool`.

Windows ``(ph, pw)`` with a stride (default: the window) and ``"valid"``/``"same"`` padding (TFLite
convention, :mod:`.im2col`). As in TFLite and ONNX (``count_include_pad=0``), padded positions are
ignored: the maximum skips them and the average divides by the number of real pixels in the window.
Pooling has no weights and no multiply-accumulates (``macs() == 0``: comparisons and additions only).
``GlobalAveragePool`` averages every axis but the channels: ``(H, W, C)`` or ``(L, C)`` to ``(C,)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import LAYERS
from .im2col import Geometry, check_padding, pad_hw, taps, unpad_hw, window_geometry
from .shaped import ShapedLayer, ShapeLike, as_shape, pair

if TYPE_CHECKING:
    from ..export.onnx_graph import OnnxGraph
    from ..export.tflite_graph import TfliteGraph
    from ..quant import QParams


class _Pool2D(ShapedLayer):
    """Shared window arithmetic of the 2-D pools."""

    onnx_op: str

    def __init__(
        self,
        in_shape: ShapeLike,
        pool: int | Sequence[int] = 2,
        *,
        stride: int | Sequence[int] | None = None,
        padding: str = "valid",
    ) -> None:
        self._in = as_shape(in_shape)
        if len(self._in) != 3:
            raise ValueError(f"{self.kind}: input shape must be (H, W, C), got {self._in}")
        self.pool = pair(pool, self.kind, "pool")
        self.stride = pair(stride, self.kind) if stride is not None else self.pool
        self.padding = check_padding(self.kind, padding)
        self.act = None
        self.geometry()

    def geometry(self) -> Geometry:
        """``(kh, kw, ho, wo, pad_h, pad_w)``."""
        h, w, _ = self._in
        return window_geometry((h, w), self.pool, self.stride, self.padding)

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self._in

    @property
    def out_shape(self) -> tuple[int, ...]:
        _, _, ho, wo, _, _ = self.geometry()
        return (ho, wo, self._in[2])

    def n_params(self) -> int:
        return 0

    def macs(self) -> int:
        return 0

    def state(self) -> dict[str, Any]:
        return {
            "in_shape": list(self._in),
            "pool": list(self.pool),
            "stride": list(self.stride),
            "padding": self.padding,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _Pool2D:
        return cls(
            as_shape(state["in_shape"]),
            tuple(state["pool"]),
            stride=tuple(state["stride"]),
            padding=str(state["padding"]),
        )

    def to_onnx(self, g: OnnxGraph, x: str) -> str:
        kh, kw, _, _, ph, pw = self.geometry()
        xt = g.node("Transpose", [x], perm=[0, 3, 1, 2])
        y = g.node(
            self.onnx_op,
            [xt],
            kernel_shape=[kh, kw],
            strides=list(self.stride),
            pads=[ph[0], pw[0], ph[1], pw[1]],
        )
        return g.node("Transpose", [y], perm=[0, 2, 3, 1])

    # --- TFLite: MAX_POOL_2D / AVERAGE_POOL_2D (int8: the op keeps ``qin``, then requantises) ---
    def _tflite(self, g: TfliteGraph, x: int, q: tuple[QParams, QParams] | None) -> int:
        from ..export import tflite_conv as tc

        s, p = self.stride, self.padding
        if q is None:
            build = tc.max_pool2d if self.kind == "maxpool2d" else tc.avg_pool2d
            return build(g, x, self.pool, stride=s, padding=p)
        build8 = tc.max_pool2d_int8 if self.kind == "maxpool2d" else tc.avg_pool2d_int8
        return build8(g, x, q[0], q[1], self.pool, stride=s, padding=p)

    def to_tflite(self, g: TfliteGraph, x: int) -> int:
        return self._tflite(g, x, None)

    def to_tflite_int8(self, g: TfliteGraph, x: int, qin: QParams, qout: QParams) -> int:
        return self._tflite(g, x, (qin, qout))

    def _views(self, xp: np.ndarray) -> list[np.ndarray]:
        kh, kw, ho, wo, _, _ = self.geometry()
        return [v for _, _, v in taps(xp, kh, kw, *self.stride, ho, wo)]

    def _padded_zeros(self, b: int, dtype: Any) -> np.ndarray:
        _, _, _, _, ph, pw = self.geometry()
        h, w, c = self._in
        return np.zeros((b, h + sum(ph), w + sum(pw), c), dtype=dtype)


@LAYERS.register("maxpool2d")
class MaxPool2D(_Pool2D):
    """Maximum over each window."""

    kind = "maxpool2d"
    onnx_op = "MaxPool"

    def linear(self, x: np.ndarray) -> np.ndarray:
        _, _, _, _, ph, pw = self.geometry()
        views = self._views(pad_hw(x.reshape(-1, *self._in), ph, pw, -np.inf))
        y = views[0].copy()
        for v in views[1:]:
            np.maximum(y, v, out=y)
        return y

    def train_forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        _, _, _, _, ph, pw = self.geometry()
        stack = np.stack(self._views(pad_hw(x.reshape(-1, *self._in), ph, pw, -np.inf)))
        arg = stack.argmax(axis=0)  # the first maximum of each window receives the gradient
        return np.take_along_axis(stack, arg[None], axis=0)[0], (x.shape, arg)

    def train_backward(self, cache: Any, dy: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        x_shape, arg = cache
        _, _, _, _, ph, pw = self.geometry()
        dxp = self._padded_zeros(x_shape[0], dy.dtype)
        for t, view in enumerate(self._views(dxp)):
            view += np.where(arg == t, dy, 0.0)
        return unpad_hw(dxp, ph, pw).reshape(x_shape), []

    def backward(self, x: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        return self.train_backward(self.train_forward(x)[1], dz)


@LAYERS.register("avgpool2d")
class AvgPool2D(_Pool2D):
    """Mean over the real (unpadded) pixels of each window."""

    kind = "avgpool2d"
    onnx_op = "AveragePool"

    def _counts(self, dtype: Any) -> np.ndarray:
        _, _, _, _, ph, pw = self.geometry()
        h, w, _ = self._in
        ones = pad_hw(np.ones((1, h, w, 1), dtype=dtype), ph, pw)
        return sum(self._views(ones))  # type: ignore[return-value]

    def linear(self, x: np.ndarray) -> np.ndarray:
        _, _, _, _, ph, pw = self.geometry()
        views = self._views(pad_hw(x.reshape(-1, *self._in), ph, pw))
        y = views[0].copy()
        for v in views[1:]:
            y += v
        return y / self._counts(x.dtype)

    def backward(self, x: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        _, _, _, _, ph, pw = self.geometry()
        d = dz / self._counts(dz.dtype)
        dxp = self._padded_zeros(x.shape[0], dz.dtype)
        for view in self._views(dxp):
            view += d
        return unpad_hw(dxp, ph, pw).reshape(x.shape), []


@LAYERS.register("global_avg_pool")
class GlobalAveragePool(ShapedLayer):
    """Mean over every axis but the last: ``(H, W, C)`` or ``(L, C)`` to ``(C,)``."""

    kind = "global_avg_pool"

    def __init__(self, in_shape: ShapeLike) -> None:
        self._in = as_shape(in_shape)
        if len(self._in) < 2:
            raise ValueError(f"global_avg_pool: needs (..., C) with spatial axes, got {self._in}")
        self.act = None

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self._in

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self._in[-1],)

    @property
    def _axes(self) -> tuple[int, ...]:
        return tuple(range(1, len(self._in)))

    def linear(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(-1, *self._in).mean(axis=self._axes)

    def backward(self, x: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        n = int(np.prod(self._in[:-1]))
        dx = np.broadcast_to((dz / n).reshape(-1, *([1] * (len(self._in) - 1)), self._in[-1]), x.shape)
        return np.ascontiguousarray(dx), []

    def n_params(self) -> int:
        return 0

    def macs(self) -> int:
        return 0

    def state(self) -> dict[str, Any]:
        return {"in_shape": list(self._in)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> GlobalAveragePool:
        return cls(as_shape(state["in_shape"]))

    def to_onnx(self, g: OnnxGraph, x: str) -> str:
        return g.node("ReduceMean", [x], axes=list(self._axes), keepdims=0)

    # --- TFLite: MEAN over H and W (other ranks are reshaped to (B, 1, N, C) first) ---
    def _nhwc(self) -> list[int] | None:
        if len(self._in) == 3:
            return None
        return [-1, 1, int(np.prod(self._in[:-1])), self._in[-1]]

    def to_tflite(self, g: TfliteGraph, x: int) -> int:
        from ..export.tflite_conv import mean_hw, reshape

        shape = self._nhwc()
        return mean_hw(g, x if shape is None else reshape(g, x, shape))

    def to_tflite_int8(self, g: TfliteGraph, x: int, qin: QParams, qout: QParams) -> int:
        from ..export.tflite_conv import mean_hw_int8, reshape_int8

        shape = self._nhwc()
        return mean_hw_int8(g, x if shape is None else reshape_int8(g, x, shape, qin), qin, qout)
