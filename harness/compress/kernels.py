"""The weight arrays that unstructured pruning may zero, in dense and convolutional networks.

Dense weights (``w``), convolution kernels (``Conv2D``/``Conv1D``/depthwise ``w``) and the kernels
inside residual blocks are prunable; biases, BatchNorm vectors and factorised layers (Monarch,
butterfly, low-rank) are not. Each entry names the top-level layer and the position of the array in
that layer's ``params()`` list, so the trainer's masks (one per parameter) keep it zero.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..ir.layers import Dense, DepthwiseConv2D, Layer, Residual
from ..ir.layers.conv import _Conv
from ..ir.network import Network
from ..ir.train import Masks, layer_params


class Kernel(NamedTuple):
    """A prunable array: top-level layer ``layer``, index ``param`` in its ``params()``, the array."""

    layer: int
    param: int
    w: np.ndarray


def _inner_kernels(layer: Layer) -> list[np.ndarray]:
    if isinstance(layer, Dense | _Conv | DepthwiseConv2D):
        return [layer.w]
    if isinstance(layer, Residual):
        return [w for la in layer.children for w in _inner_kernels(la)]
    return []


def prunable_kernels(net: Network) -> list[Kernel]:
    """Every prunable weight array of ``net`` (for an MLP: each dense ``w``, position 0)."""
    out = []
    for i, layer in enumerate(net.layers):
        ws = _inner_kernels(layer)
        if not ws:
            continue
        params = layer_params(layer)
        for w in ws:
            pos = next(j for j, p in enumerate(params) if p is w)
            out.append(Kernel(i, pos, w))
    return out


def kernel_masks(net: Network, kernels: list[Kernel], masks: list[np.ndarray]) -> Masks:
    """The trainer's ``{layer: [mask per param or None]}`` for one mask per kernel."""
    out: Masks = {}
    for k, m in zip(kernels, masks, strict=True):
        if k.layer not in out:
            out[k.layer] = [None] * len(layer_params(net.layers[k.layer]))
        out[k.layer][k.param] = m
    return out
