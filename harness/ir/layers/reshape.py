"""Layout-only layers: :class:`Reshape` (a flat input row to an image or a sequence), :class:`Flatten`
(back to a row, in NHWC order) and :class:`Activation` (a standalone ReLU/ReLU6 where no layer fuses it).

Datasets, runtimes and model files keep 2-D inputs ``(B, features)``; a convolutional network starts
with ``Reshape((features,), (H, W, C))``.
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


@LAYERS.register("reshape")
class Reshape(ShapedLayer):
    """Reinterpret each sample of shape ``in_shape`` as ``out_shape`` (same number of values)."""

    kind = "reshape"

    def __init__(self, in_shape: ShapeLike, out_shape: ShapeLike) -> None:
        self._in, self._out = as_shape(in_shape), as_shape(out_shape)
        if int(np.prod(self._in)) != int(np.prod(self._out)):
            raise ValueError(f"reshape: {self._in} and {self._out} hold different numbers of values")
        self.act = None

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self._in

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self._out

    def linear(self, x: np.ndarray) -> np.ndarray:
        self.check_input(x)  # a wrong width could otherwise reshape silently into more samples
        return x.reshape(-1, *self._out)

    def backward(self, x: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        return dz.reshape(x.shape), []

    def n_params(self) -> int:
        return 0

    def macs(self) -> int:
        return 0

    def state(self) -> dict[str, Any]:
        return {"in_shape": list(self._in), "out_shape": list(self._out)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Reshape:
        return cls(as_shape(state["in_shape"]), as_shape(state["out_shape"]))

    def to_onnx(self, g: OnnxGraph, x: str) -> str:
        shape = g.initializer("shape", np.array([-1, *self._out], np.int64))
        return g.node("Reshape", [x, shape])

    # --- TFLite: RESHAPE to (-1, *out_shape); Flatten inherits it ---
    def to_tflite(self, g: TfliteGraph, x: int) -> int:
        from ..export.tflite_conv import reshape

        return reshape(g, x, [-1, *self._out])

    def to_tflite_int8(self, g: TfliteGraph, x: int, qin: QParams, qout: QParams) -> int:
        from ..export.tflite_conv import reshape_int8

        return reshape_int8(g, x, [-1, *self._out], qin, qout)


@LAYERS.register("flatten")
class Flatten(Reshape):
    """``(B, *in_shape)`` to ``(B, prod(in_shape))``, keeping the NHWC order of the values."""

    kind = "flatten"

    def __init__(self, in_shape: ShapeLike) -> None:
        shape = as_shape(in_shape)
        super().__init__(shape, (int(np.prod(shape)),))

    def state(self) -> dict[str, Any]:
        return {"in_shape": list(self._in)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Flatten:
        return cls(as_shape(state["in_shape"]))

    def to_onnx(self, g: OnnxGraph, x: str) -> str:
        return g.node("Flatten", [x], axis=1)


@LAYERS.register("activation")
class Activation(ShapedLayer):
    """A standalone ``relu`` or ``relu6`` on any sample shape."""

    kind = "activation"

    def __init__(self, act: str, shape: ShapeLike) -> None:
        if act is None:
            raise ValueError("activation: give 'relu' or 'relu6'")
        self.act = check_act(self.kind, act)
        self._shape = as_shape(shape)

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self._shape

    def linear(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, x: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        return dz, []

    def train_forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return apply_act(x, self.act), x

    def train_backward(self, cache: Any, dy: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        return act_grad(cache, dy, self.act), []

    def n_params(self) -> int:
        return 0

    def macs(self) -> int:
        return 0

    def state(self) -> dict[str, Any]:
        return {"act": self.act, "shape": list(self._shape)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Activation:
        return cls(str(state["act"]), as_shape(state["shape"]))

    def to_onnx(self, g: OnnxGraph, x: str) -> str:
        return g.activation(x, self.act)

    # --- TFLite: a standalone RELU / RELU6 ---
    def to_tflite(self, g: TfliteGraph, x: int) -> int:
        from ..export.tflite_conv import relu

        return relu(g, x, str(self.act))

    def to_tflite_int8(self, g: TfliteGraph, x: int, qin: QParams, qout: QParams) -> int:
        from ..export.tflite_conv import relu_int8

        return relu_int8(g, x, str(self.act), qin, qout)
