"""The form of a network that the exporters write: BatchNorm folded into the layer before it.

A network without a foldable BatchNorm is exported as it is (the same object, so dense exports and
the parameters that :func:`harness.ir.quant.calibrate` records on structured layers and residual
blocks stay with it); one with a BatchNorm that folds (anywhere, also inside residual blocks) is
replaced by :func:`fold_batchnorm`'s copy. So :func:`export_form` of an exported form is itself.
int8 export needs activation parameters of that exported form: :func:`quantisable` gives both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..layers import BatchNorm, Layer, Residual
from ..network import Network, fold_batchnorm
from ..quant import QParams, calibrate


def count_batchnorm(layers: Sequence[Layer]) -> int:
    """BatchNorm layers among ``layers`` and inside their residual blocks."""
    return sum(
        1 if isinstance(la, BatchNorm) else count_batchnorm(la.children) if isinstance(la, Residual) else 0
        for la in layers
    )


def export_form(net: Network) -> Network:
    """``net`` itself, or its BatchNorm-folded copy when some BatchNorm folds into the layer before it
    (one after a layer with its own activation stays, and exports as a per-channel affine op)."""
    n = count_batchnorm(net.layers)
    if n == 0:
        return net
    folded = fold_batchnorm(net)
    return folded if count_batchnorm(folded.layers) < n else net


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
