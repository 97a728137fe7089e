"""Layer types of the model IR. Each layer is one module registered in :data:`LAYERS`.

A layer knows its float forward pass, its cost (parameters, MACs) and how to write itself to
ONNX and TFLite (float and int8). Exporters only walk the layer list, so a new structured layer
(Monarch, butterfly, low-rank...) is one module here and nothing else changes.

Convolutional layers (:mod:`.shaped` and below) work on NHWC images and ``(L, C)`` sequences.
"""

from .base import LAYERS, Layer
from .batchnorm import BatchNorm
from .butterfly import Butterfly
from .conv import Conv1D, Conv2D
from .dense import Dense
from .depthwise import DepthwiseConv2D
from .fold import fold_batchnorm_layers
from .lowrank import LowRank
from .monarch import Monarch
from .pointwise import Pointwise
from .pool import AvgPool2D, GlobalAveragePool, MaxPool2D
from .reshape import Activation, Flatten, Reshape
from .residual import Residual
from .shaped import ShapedLayer

__all__ = [
    "LAYERS",
    "Activation",
    "AvgPool2D",
    "BatchNorm",
    "Butterfly",
    "Conv1D",
    "Conv2D",
    "Dense",
    "DepthwiseConv2D",
    "Flatten",
    "GlobalAveragePool",
    "Layer",
    "LowRank",
    "MaxPool2D",
    "Monarch",
    "Pointwise",
    "Reshape",
    "Residual",
    "ShapedLayer",
    "fold_batchnorm_layers",
]
