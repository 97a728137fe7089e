"""The form of a network that the exporters write: BatchNorm folded into the layer before it.

A network without BatchNorm is exported as it is (the same object, so dense exports and the ranges
that structured layers record in :func:`harness.ir.quant.calibrate` stay untouched); one with
BatchNorm anywhere (also inside residual blocks) is replaced by :func:`fold_batchnorm`'s copy.
int8 export needs activation parameters of that exported form: :func:`quantisable` gives both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..layers import BatchNorm, Layer, Residual
from ..network import Network, fold_batchnorm
from ..quant import QParams, calibrate


def has_batchnorm(layers: Sequence[Layer]) -> bool:
    """Whether a BatchNorm is among ``layers`` or inside one of their residual blocks."""
    return any(
        isinstance(la, BatchNorm) or (isinstance(la, Residual) and has_batchnorm(la.children))
        for la in layers
    )


def export_form(net: Network) -> Network:
    """``net`` itself, or its BatchNorm-folded copy when it has BatchNorm layers."""
    return fold_batchnorm(net) if has_batchnorm(net.layers) else net


def quantisable(net: Network, x_calib: np.ndarray) -> tuple[Network, list[QParams]]:
    """The exported form of ``net`` and its activation parameters calibrated on ``x_calib``."""
    form = export_form(net)
    return form, calibrate(form, np.asarray(x_calib, dtype=np.float32))


def check_act_q(net: Network, act_q: Sequence[QParams]) -> None:
    """Refuse activation parameters that do not belong to ``net`` (one per layer output plus input)."""
    if len(act_q) != len(net.layers) + 1:
        raise ValueError(
            f"int8 export needs {len(net.layers) + 1} activation parameters for the exported network "
            f"({net.describe()}), got {len(act_q)}; calibrate the BatchNorm-folded form: "
            "harness.ir.export.prepare.quantisable(net, x_calib)"
        )
