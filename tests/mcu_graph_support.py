"""Random int8 operator graphs (blob version 2) for the firmware and planner tests."""

from __future__ import annotations

import numpy as np

from harness.mcu.blob.graph import QGraph
from harness.mcu.random_graph import GraphBuilder


def random_graph(kind: str, rng: np.random.Generator) -> QGraph:
    """A small graph exercising one operator kind (several geometries and activations)."""
    if kind == "conv":
        b = GraphBuilder(rng, (9, 7, 3))
        x = b.conv(b.input, 6, (3, 3), (1, 1), True, "relu")  # 3 input channels, same padding
        x = b.conv(x, 8, (3, 2), (2, 2), True, "relu6")  # stride 2, odd sizes, channels not /4
        x = b.conv(x, 5, (2, 2), (1, 2), False)  # valid padding, mixed strides
        return b.graph(x)
    if kind == "conv-wide":  # Cin multiple of 4: taps widened straight from the input, 1x1 fast path
        b = GraphBuilder(rng, (6, 5, 8))
        x = b.conv(b.input, 12, (3, 3), (1, 1), True, "relu")
        x = b.conv(x, 16, (1, 1), (1, 1), False)
        x = b.conv(x, 7, (1, 1), (2, 2), False, "relu")
        return b.graph(x)
    if kind == "conv1ch":  # KWS-like first layer: 1 input channel, tall kernel, stride 2
        b = GraphBuilder(rng, (13, 6, 1))
        return b.graph(b.conv(b.input, 8, (5, 3), (2, 2), True, "relu"))
    if kind == "dwconv":
        b = GraphBuilder(rng, (7, 5, 6))
        x = b.conv(b.input, 0, (3, 3), (1, 1), True, "relu", depthwise=True)
        x = b.conv(x, 0, (3, 3), (2, 2), True, "relu6", depthwise=True)
        x = b.conv(x, 0, (2, 1), (1, 1), False, depthwise=True)  # generic path
        return b.graph(x)
    if kind == "dwconv-wide":
        b = GraphBuilder(rng, (8, 5, 16))
        x = b.conv(b.input, 0, (3, 3), (1, 1), True, "relu", depthwise=True)
        x = b.conv(x, 0, (3, 3), (2, 2), False, depthwise=True)
        return b.graph(x)
    if kind == "pool":
        b = GraphBuilder(rng, (9, 7, 5))
        x = b.pool(b.input, "maxpool", (3, 3), (2, 2), True)
        x = b.pool(x, "avgpool", (2, 3), (1, 1), True)
        x = b.pool(x, "avgpool", (2, 2), (2, 2), False)
        x = b.pool(x, "maxpool", (2, 2), (1, 1), False)
        return b.graph(x)
    if kind == "mean-dense":
        b = GraphBuilder(rng, (5, 4, 10))
        x = b.mean(b.input)
        x = b.dense(x, 9, "relu")
        x = b.dense(x, 6, rounding=1)
        return b.graph(x)
    if kind == "residual":  # conv -> conv -> add(residual) -> reshape -> dense
        b = GraphBuilder(rng, (6, 6, 4))
        x0 = b.conv(b.input, 8, (3, 3), (1, 1), True, "relu")
        x1 = b.conv(x0, 8, (3, 3), (1, 1), True)
        s = b.add(x1, x0, "relu")
        m = b.mean(s, keep_dims=True)
        f = b.reshape(m, (8,))
        return b.graph(b.dense(f, 5))
    if kind == "flatten":
        b = GraphBuilder(rng, (4, 3, 6))
        x = b.conv(b.input, 4, (2, 2), (1, 1), True, "relu")
        f = b.reshape(x, (b.tensors[x].size,))
        return b.graph(b.dense(f, 7))
    if kind == "pw-sparse":  # pruned 1x1 convolutions: 4-pixel tiles with a remainder, every requantisation
        b = GraphBuilder(rng, (5, 3, 20))
        x = b.pw_sparse(b.input, 16, 0.1, "relu")  # fast requantisation
        x = b.pw_sparse(x, 7, 0.3, "relu6")  # channels not /4
        g = b.graph(b.pw_sparse(x, 9, 0.5))
        g.ops[-1].attrs["rounding"] = 1  # single rounding
        g.ops[-2].params["bias"][0] = 1 << 30  # an accumulator that may reach 2**30: the exact MBQM path
        return g
    if kind == "pw-monarch":  # Monarch pointwise convolutions, (H, W, C) and (W, C) inputs
        b = GraphBuilder(rng, (3, 5, 32))
        x = b.pw_monarch(b.input, 16, 4, 4, "relu")
        x = b.reshape(x, (15, 16))
        return b.graph(b.pw_monarch(x, 32, 4, 4, sh1=3))
    raise ValueError(kind)


GRAPH_KINDS = [
    "conv",
    "conv-wide",
    "conv1ch",
    "dwconv",
    "dwconv-wide",
    "pool",
    "mean-dense",
    "residual",
    "flatten",
    "pw-sparse",
    "pw-monarch",
]
