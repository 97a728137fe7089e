"""Layer types of the model IR. Each layer is one module registered in :data:`LAYERS`.

A layer knows its float forward pass, its cost (parameters, MACs) and how to write itself to
ONNX and TFLite (float and int8). Exporters only walk the layer list, so a new structured layer
(Monarch, butterfly, low-rank...) is one module here and nothing else changes.
"""

from .base import LAYERS, Layer
from .butterfly import Butterfly
from .dense import Dense
from .lowrank import LowRank
from .monarch import Monarch

__all__ = ["LAYERS", "Butterfly", "Dense", "Layer", "LowRank", "Monarch"]
