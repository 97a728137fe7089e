"""Structured pruning: remove whole hidden neurons by importance, then fine-tune a smaller dense net.

A hidden neuron ``j`` between two dense layers scores ``mean|a_j| * ||w_next[j, :]||`` on the
training rows (how much it feeds forward); the lowest ``1 - keep`` of each hidden layer go, with
their column in the layer before and their row in the layer after. The result is a plain, smaller
dense network, so it speeds up on every runtime.

On a convolutional network (any shaped layer) it removes whole channels instead, respecting the
channels that residual adds and depthwise convolutions tie together (:mod:`.channels`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import CompressionError
from ..ir.data import Dataset
from ..ir.layers import Dense, ShapedLayer
from ..ir.network import Network
from ..ir.train import accuracy
from .base import COMPRESSORS
from .channels import prune_channels
from .finetune import FineTuner, TrainRows


@COMPRESSORS.register("structured")
class StructuredPrune(FineTuner):
    """Keep the ``keep`` fraction of neurons of every hidden layer between two dense layers; fine-tune."""

    name = "structured"

    def __init__(
        self,
        *,
        keep: float = 0.5,
        epochs: int = 10,
        lr: float = 1e-3,
        batch_size: int = 128,
        seed: int = 0,
        score_samples: int = 1024,
    ) -> None:
        if not 0.0 < keep < 1.0:
            raise ValueError(f"keep must be in (0, 1), got {keep}")
        self.keep = keep
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed
        self.score_samples = score_samples

    def tune(
        self, base: Network, net: Network, rows: TrainRows, data: Dataset
    ) -> tuple[Network, dict[str, Any]]:
        if any(isinstance(layer, ShapedLayer) for layer in net.layers):
            return self.tune_channels(base, net, rows)
        layers = list(net.layers)
        acts = net.activations(rows.x[: self.score_samples])
        kept: dict[str, list[int]] = {}
        for i in range(len(layers) - 1):
            a, b = layers[i], layers[i + 1]
            if not (isinstance(a, Dense) and isinstance(b, Dense)):
                continue
            score = np.abs(acts[i + 1]).mean(axis=0) * np.linalg.norm(b.w, axis=1)
            n_keep = max(1, int(round(self.keep * a.out_dim)))
            idx = np.sort(np.argsort(-score, kind="stable")[:n_keep])
            layers[i] = Dense(a.w[:, idx], a.b[idx], a.act)
            layers[i + 1] = Dense(b.w[idx, :], b.b, b.act)
            kept[str(i)] = [int(a.out_dim), int(n_keep)]
        if not kept:
            raise CompressionError(
                f"structured: {base.describe()} has no hidden neurons between two dense layers to remove"
            )
        net = Network(layers)
        removed_val = accuracy(net, rows.x_val, rows.y_val)
        res = self.train(net, rows)
        return net, {
            "neurons": kept,
            "val_acc_base": accuracy(base, rows.x_val, rows.y_val),
            "val_acc_removed_only": removed_val,
            "val_acc_finetuned": accuracy(net, rows.x_val, rows.y_val),
            "best_epoch": res.best_epoch,
            "train_loss": res.loss,
            "architecture": net.describe(),
        }

    def tune_channels(self, base: Network, net: Network, rows: TrainRows) -> tuple[Network, dict[str, Any]]:
        """Convolutional networks: dependency-aware channel pruning (:mod:`.channels`), then fine-tuning."""
        net, cut = prune_channels(net, self.keep)
        if not cut:
            raise CompressionError(f"structured: {base.describe()} has no channels that can be removed")
        removed_val = accuracy(net, rows.x_val, rows.y_val)
        res = self.train(net, rows)
        return net, {
            "channels": cut,
            "val_acc_base": accuracy(base, rows.x_val, rows.y_val),
            "val_acc_removed_only": removed_val,
            "val_acc_finetuned": accuracy(net, rows.x_val, rows.y_val),
            "best_epoch": res.best_epoch,
            "train_loss": res.loss,
            "architecture": net.describe(),
        }
