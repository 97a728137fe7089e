"""What the importers share: the :class:`NotConvertible` error and the :class:`Imported` result."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import ModelError
from ..network import Network

SUPPORTED = (
    "MatMul",
    "Gemm",
    "Add",
    "Relu",
    "Softmax",
    "Sigmoid",
    "Cast (to float)",
    "Identity",
    "Flatten",
    "input normalisation (Scaler, Sub/Mul/Div by constants)",
    "and in convolutional networks Conv (grouped = depthwise), MaxPool, AveragePool, GlobalAveragePool, "
    "ReduceMean over H and W, BatchNormalization, residual Add, Reshape, Transpose, Clip(0, 6) "
    "(TFLite: FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, MAX_POOL_2D, ADD, MEAN, "
    "RESHAPE, SOFTMAX, RELU, RELU6, float or int8)",
)


class NotConvertible(ModelError):
    """The model file holds something the IR cannot express (the message names the operator)."""

    def __init__(self, what: str, op: str | None = None) -> None:
        self.op = op
        super().__init__(
            f"cannot convert to a trainable network: {what}. The IR converts chains of "
            f"{', '.join(SUPPORTED)}; post-training techniques (int8, prune-weights, svd-weights) still apply"
        )


@dataclass(frozen=True)
class Imported:
    """A converted network and what was done to its output head."""

    net: Network
    head: str  # "none", "softmax", "softmax2", "sigmoid", "sigmoid2"
    input_name: str
    output_name: str
    input_order: np.ndarray | None = field(default=None, compare=False)  # rows read row[:, input_order]

    def rows(self, x: np.ndarray) -> np.ndarray:
        """The file's input samples ``x`` as the network's input rows (flattened, reordered if needed)."""
        flat = np.asarray(x).reshape(len(x), -1)
        return flat if self.input_order is None else flat[:, self.input_order]
