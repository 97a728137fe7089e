"""Fold every BatchNorm into the convolution or dense layer before it (for export and int8).

``conv -> batchnorm(act)`` becomes one ``conv(act)`` with ``w * scale`` and ``b * scale + shift`` per
output channel, where ``scale = gamma / sqrt(var + eps)`` and ``shift = beta - mean * scale``. Folding
needs the producer to carry no activation of its own (otherwise the BatchNorm stays). Residual blocks
are folded inside.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import Layer
from .batchnorm import BatchNorm
from .dense import Dense
from .residual import Residual


def _fold_pair(prev: Layer, bn: BatchNorm) -> Layer | None:
    """``prev`` followed by ``bn`` as one layer, or None when ``prev`` cannot absorb it."""
    if prev.act is not None:
        return None
    scale, shift = bn.scale_shift()
    if isinstance(prev, Dense):
        s = scale.astype(np.float32)
        return Dense(prev.w * s, prev.b * s + shift.astype(np.float32), bn.act)
    fold = getattr(prev, "fold_affine", None)
    return fold(scale, shift, bn.act) if fold is not None else None


def fold_batchnorm_layers(layers: Sequence[Layer]) -> list[Layer]:
    """The layer list with every foldable BatchNorm merged into its producer."""
    out: list[Layer] = []
    for layer in layers:
        if isinstance(layer, Residual):
            sc = fold_batchnorm_layers(layer.shortcut) if layer.shortcut else None
            layer = Residual(fold_batchnorm_layers(layer.body), sc, layer.act)
        if isinstance(layer, BatchNorm) and out:
            folded = _fold_pair(out[-1], layer)
            if folded is not None:
                out[-1] = folded
                continue
        out.append(layer)
    return out
