"""Low-rank (truncated SVD) factorisation at a parameter budget, then fine-tuning.

The baseline that structured factorisations must beat: ``match="monarch"`` (default) or
``match="butterfly"`` picks, for every replaced layer, the largest rank whose weights fit in the
budget of that factorisation on the same layer; ``params_budget`` gives the budget per layer
directly and ``rank`` the rank itself.

This module also holds :class:`RefitCompressor`, the shared flow of the factorising techniques
(Monarch, butterfly, low-rank): project the chosen dense layers, measure the projection alone on a
validation split of the training data, fine-tune the whole network, keep the best epoch.
"""

from __future__ import annotations

import copy
import time
from abc import abstractmethod
from typing import Any, Literal

import numpy as np

from ..errors import CompressionError
from ..ir.data import Dataset
from ..ir.layers import Dense, Layer, LowRank
from ..ir.layers.monarch import check_monarch_fits
from ..ir.model import Model
from ..ir.network import Network
from ..ir.train import accuracy, calibrate_inner, fit, model_stats, select_layers, training_data
from .base import COMPRESSORS, Compressor


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


class RefitCompressor(Compressor):
    """Replace some layers by a projection, then fine-tune the network (never report the projection alone).

    Subclasses set ``name`` and implement :meth:`replace` (return the new layer, or raise
    :class:`CompressionError` when a layer cannot take the structure).
    """

    needs_net = True
    needs_training = True

    layers: str | list[int]
    epochs: int
    lr: float
    batch_size: int
    seed: int

    @abstractmethod
    def replace(self, idx: int, layer: Layer, explicit: bool) -> Layer | None:
        """The projected layer, or ``None`` to skip it (only when ``explicit`` is false)."""

    def fit(self, model: Model, data: Dataset) -> RefitCompressor:
        if model.net is None:
            raise CompressionError(f"{self.name} rewrites layers and needs the model's network (IR)")
        t0 = time.perf_counter()
        xtr, ytr, xva, yva = training_data(data, self.name)
        net = Network([copy.deepcopy(layer) for layer in model.net.layers])
        explicit = not isinstance(self.layers, str)
        chosen = select_layers(net, self.layers, self.name)
        replaced: list[int] = []
        skipped: dict[str, str] = {}
        relerr: dict[str, float] = {}
        for i in chosen:
            old = net.layers[i]
            new = self.replace(i, old, explicit)
            if new is None:
                skipped[str(i)] = f"{old.kind} {old.in_dim}x{old.out_dim} does not fit {self.name}"
                continue
            w = dense_weight(old)
            approx = np.asarray(new.to_dense())  # type: ignore[attr-defined]
            relerr[str(i)] = float(np.linalg.norm(approx - w)) / max(float(np.linalg.norm(w)), 1e-12)
            net.layers[i] = new
            replaced.append(i)
        if not replaced:
            sizes = ", ".join(f"layer {i}: {net.layers[i].in_dim}x{net.layers[i].out_dim}" for i in chosen)
            raise CompressionError(
                f"{self.name}: no layer of {model.net.describe()} can be replaced (selected {sizes or 'none'}); "
                f"{self.help_sizes()}"
            )
        base_val = accuracy(model.net, xva, yva)
        proj_val = accuracy(net, xva, yva)
        res = fit(
            net,
            xtr,
            ytr,
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            seed=self.seed,
            x_val=xva,
            y_val=yva,
        )
        calibrate_inner(net, data.x_calib)
        self.net_ = net
        self.entry_ = {
            "layers": replaced,
            "skipped": skipped,
            "projection_relerr": relerr,
            "val_acc_base": base_val,
            "val_acc_projection": proj_val,
            "val_acc_finetuned": accuracy(net, xva, yva),
            "best_epoch": res.best_epoch,
            "train_loss": res.loss,
            "fit_s": time.perf_counter() - t0,
            "n_params_base": model.net.n_params(),
            "macs_base": model.net.macs(),
        }
        return self

    def help_sizes(self) -> str:
        return "choose other layers"

    def transform(self, model: Model) -> Model:
        return finish(model, self.net_, self.name, self.get_params(), self.epochs, self.entry_)


def finish(
    model: Model, net: Network, technique: str, params: dict[str, Any], epochs: int, extra: dict[str, Any]
) -> Model:
    """The new model (fresh float ONNX/TFLite files) with one history entry appended."""
    stats = model_stats(net)
    files = stats.pop("files")
    entry = {
        "technique": technique,
        "params": params,
        "fine_tuned": epochs > 0,
        "epochs": epochs,
        **extra,
        **stats,
    }
    return model.with_(net=net, files=files, act_q=None, history=[*model.history, entry])


def monarch_budget(layer: Layer, nblocks: int | None, name: str) -> int:
    """Weights of the Monarch replacement of ``layer`` (same rule as the monarch technique)."""
    nb = check_monarch_fits(name, layer.in_dim, layer.out_dim, nblocks)
    return nb * layer.in_dim + nb * layer.out_dim


def butterfly_budget(layer: Layer, name: str) -> int:
    from ..ir.layers.butterfly import check_butterfly_fits

    check_butterfly_fits(name, layer.in_dim, layer.out_dim)
    n = layer.in_dim
    return 2 * n * (n.bit_length() - 1)


@COMPRESSORS.register("lowrank")
class LowRankSVD(RefitCompressor):
    """Truncated SVD of the selected layers at a rank or parameter budget, then fine-tuning."""

    name = "lowrank"

    def __init__(
        self,
        *,
        match: Literal["monarch", "butterfly"] | None = "monarch",
        rank: int | None = None,
        params_budget: int | None = None,
        nblocks: int | None = None,
        layers: Literal["hidden", "all"] | list[int] = "hidden",
        epochs: int = 15,
        lr: float = 1e-3,
        batch_size: int = 128,
        seed: int = 0,
    ) -> None:
        self.match = match
        self.rank = rank
        self.params_budget = params_budget
        self.nblocks = nblocks
        self.layers = layers
        require_fine_tuning(epochs, "lowrank")
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed
        if rank is not None and rank < 1:
            raise ValueError("rank must be >= 1")

    def layer_rank(self, idx: int, layer: Layer, explicit: bool) -> int | None:
        name = f"layer {idx}"
        if self.rank is not None:
            return self.rank
        if self.params_budget is not None:
            budget = self.params_budget
        else:
            try:
                if self.match == "butterfly":
                    budget = butterfly_budget(layer, name)
                else:
                    budget = monarch_budget(layer, self.nblocks, name)
            except CompressionError:
                if explicit:
                    raise
                return None
        return max(1, budget // (layer.in_dim + layer.out_dim))

    def replace(self, idx: int, layer: Layer, explicit: bool) -> Layer | None:
        r = self.layer_rank(idx, layer, explicit)
        if r is None:
            return None
        if r >= min(layer.in_dim, layer.out_dim):
            raise CompressionError(
                f"lowrank: rank {r} for layer {idx} ({layer.in_dim}x{layer.out_dim}) saves nothing; "
                f"use a rank below {min(layer.in_dim, layer.out_dim)} (or a smaller params_budget)"
            )
        return LowRank.from_dense(dense_weight(layer), layer.bias, layer.act, r)

    def help_sizes(self) -> str:
        if self.match == "butterfly":
            return "matching a butterfly budget needs square power-of-two layers; give rank= instead"
        return "matching a Monarch budget needs layers whose sizes share a divisor; give rank= instead"
