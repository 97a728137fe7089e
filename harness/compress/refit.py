"""Factor, then fine-tune: the shared flow of the factorising techniques (Monarch, butterfly, low-rank).

:class:`RefitCompressor` projects the chosen dense layers onto the technique's structure, measures
the projection alone on the validation rows, fine-tunes the whole network and keeps the best epoch
(the projection alone is never a result, see :func:`require_fine_tuning`).

In a convolutional network the candidates are the dense layers and the pointwise (1x1, stride 1)
convolutions (:func:`harness.ir.train.matrix_layer`): a pointwise convolution is projected as its
``(C_in, C_out)`` matrix and the factorised layer is wrapped in :class:`~harness.ir.layers.Pointwise`,
which applies it at every position with the convolution's activation.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from ..errors import CompressionError
from ..ir.data import Dataset
from ..ir.layers import Dense, Layer, Pointwise, ShapedLayer
from ..ir.network import Network
from ..ir.train import accuracy, calibrate_inner, matrix_layer, select_layers
from .finetune import FineTuner, TrainRows


def require_fine_tuning(epochs: int, technique: str) -> None:
    """Refuse ``epochs < 1``: a projection alone loses most of a trained layer and is never a result."""
    if epochs < 1:
        raise ValueError(
            f"epochs={epochs}: {technique} must fine-tune after projecting (a projection alone lost 6-26 "
            "accuracy points in the reference measurements); use epochs >= 1"
        )


def dense_weight(layer: Layer) -> np.ndarray:
    """The ``(in_dim, out_dim)`` matrix of a layer that can be written densely."""
    if isinstance(layer, Dense):
        return layer.w
    fn = getattr(layer, "to_dense", None)
    if fn is None:
        raise CompressionError(f"layer {layer.kind} has no dense form to project from")
    return np.asarray(fn(), dtype=np.float32)


def per_position(old: Layer, new: Layer) -> Layer:
    """``new`` (a dense-family layer) in the place of ``old``: as is for a dense-family ``old``, wrapped
    in :class:`Pointwise` (applied at every position, with ``old``'s activation) for a pointwise conv."""
    if not isinstance(old, ShapedLayer):
        return new
    return Pointwise(new, old.in_shape, old.act)


class RefitCompressor(FineTuner):
    """Replace some layers by a projection, then fine-tune the network (never report the projection alone).

    Subclasses set ``name`` and ``layers`` and implement :meth:`replace` (return the new layer, or
    raise :class:`CompressionError` when a layer cannot take the structure).
    """

    layers: str | list[int]

    @abstractmethod
    def replace(self, idx: int, layer: Layer, explicit: bool) -> Layer | None:
        """The projected layer, or ``None`` to skip it (only when ``explicit`` is false)."""

    def help_sizes(self) -> str:
        """What layer sizes the structure needs (ends the error when no layer fits)."""
        return "choose other layers"

    def tune(
        self, base: Network, net: Network, rows: TrainRows, data: Dataset
    ) -> tuple[Network, dict[str, Any]]:
        explicit = not isinstance(self.layers, str)
        chosen = select_layers(net, self.layers, self.name)
        replaced: list[int] = []
        skipped: dict[str, str] = {}
        relerr: dict[str, float] = {}
        for i in chosen:
            old = matrix_layer(net.layers[i])
            if old is None:
                raise CompressionError(
                    f"{self.name}: layer {i} ({net.layers[i].kind}) is not a dense layer or a pointwise (1x1, "
                    "stride 1) convolution; choose layers from those"
                )
            new = self.replace(i, old, explicit)
            if new is None:
                skipped[str(i)] = f"{old.kind} {old.in_dim}x{old.out_dim} does not fit {self.name}"
                continue
            w = dense_weight(old)
            approx = np.asarray(new.to_dense())  # type: ignore[attr-defined]
            relerr[str(i)] = float(np.linalg.norm(approx - w)) / max(float(np.linalg.norm(w)), 1e-12)
            net.layers[i] = per_position(net.layers[i], new)
            replaced.append(i)
        if not replaced:
            sizes = ", ".join(
                f"layer {i}: {m.in_dim}x{m.out_dim}"
                for i in chosen
                if (m := matrix_layer(net.layers[i])) is not None
            )
            raise CompressionError(
                f"{self.name}: no layer of {base.describe()} can be replaced (selected {sizes or 'none'}); "
                f"{self.help_sizes()}"
            )
        base_val = accuracy(base, rows.x_val, rows.y_val)
        proj_val = accuracy(net, rows.x_val, rows.y_val)
        res = self.train(net, rows)
        calibrate_inner(net, data.x_calib)
        return net, {
            "layers": replaced,
            "skipped": skipped,
            "projection_relerr": relerr,
            "val_acc_base": base_val,
            "val_acc_projection": proj_val,
            "val_acc_finetuned": accuracy(net, rows.x_val, rows.y_val),
            "best_epoch": res.best_epoch,
            "train_loss": res.loss,
        }
