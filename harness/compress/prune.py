"""Unstructured magnitude pruning with fine-tuning (pruned weights stay zero).

The smallest-magnitude weights of all dense layers together (``scope="global"``, default: on the
wide MNIST-1D MLP at 80 % it kept 0.744 eval accuracy against 0.711 for per-layer pruning, measured
before the floor and the learning rate below) or of every layer separately (``scope="layer"``) are
set to zero, in ``steps`` rounds of rising sparsity with fine-tuning after each round.

Two guards against a collapsed result:

* Global pruning keeps in every layer at least ``layer_floor`` (default 0.5) times the network's
  average density, so at 80 % no layer goes past 90 % sparsity; without it a layer of small weights
  (often the wide first layer of a model fed unscaled inputs) can lose nearly all of them. Every
  output also keeps its largest weight, so no neuron is cut off from its inputs.
* The learning rate is 2e-3: at 5e-4 a scikit-learn digits MLP (64-32-10, pruned 80 %) only brought
  its training loss from 0.90 to 0.72 in the 5 epochs after the second step and scored 0.720 eval
  accuracy against 0.926 unpruned; at 2e-3 the loss fell to 0.48 and it scored 0.873. A round whose
  loss diverges restarts at half the rate (:meth:`FineTuner.train`).

The files keep dense shapes: **dense runtimes (ONNX Runtime, LiteRT) get no speed-up**; only the
compressed size shrinks (the history reports raw and gzip bytes). The MCU runtime runs sparse layers
natively.

On a convolutional network the kernels of every convolution (also inside residual blocks) are pruned
together with the dense weights; biases and BatchNorm vectors are kept (:mod:`.kernels`).
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import numpy as np

from ..errors import CompressionError
from ..ir.data import Dataset
from ..ir.network import Network
from ..ir.train import accuracy
from .base import COMPRESSORS
from .finetune import FineTuner, TrainRows
from .kernels import kernel_masks, prunable_kernels


def _top_k_mask(w: np.ndarray, keep: int) -> np.ndarray:
    """Keep-mask of the ``keep`` largest-magnitude entries of ``w``."""
    flat = np.abs(w).ravel()
    mask = np.zeros(flat.size, dtype=bool)
    if keep >= flat.size:
        mask[:] = True
    elif keep > 0:
        mask[np.argpartition(-flat, keep - 1)[:keep]] = True
    return mask.reshape(w.shape)


def layer_floor(size: int, sparsity: float, floor: float) -> int:
    """Weights a layer of ``size`` keeps at least under global pruning to ``sparsity``: ``floor`` times the
    network's average density ``1 - sparsity`` (at least one)."""
    return max(1, int(np.ceil(floor * (1.0 - sparsity) * size)))


def magnitude_masks(
    ws: list[np.ndarray], sparsity: float, scope: str, *, floor: float = 0.0
) -> list[np.ndarray]:
    """Boolean keep-masks with ``sparsity`` of the entries (by magnitude) set to False.

    ``scope="global"`` ranks all layers together, but no layer keeps fewer than
    :func:`layer_floor` weights (``floor`` times the average density; 0 = no floor): the layers held
    at their floor keep their largest weights and the others share the rest of the budget by one
    global threshold, so the total sparsity stays ``sparsity``. Every output (column) also keeps its
    largest weight, so no neuron is cut from its inputs.
    """
    if scope != "global":
        return [_top_k_mask(w, w.size - int(round(sparsity * w.size))) for w in ws]
    total = sum(w.size for w in ws)
    keep_total = total - int(round(sparsity * total))
    floors = [layer_floor(w.size, sparsity, floor) if floor > 0 else 0 for w in ws]
    held: set[int] = set()
    while True:  # water-filling: hold the layers the global threshold would push below their floor
        free = [i for i in range(len(ws)) if i not in held]
        budget = keep_total - sum(floors[i] for i in held)
        if not free or budget <= 0:
            keep = {i: 0 for i in free}
            break
        mags = np.sort(np.concatenate([np.abs(ws[i]).ravel() for i in free]))[::-1]
        thr = mags[min(budget, mags.size) - 1]
        keep = {i: min(int((np.abs(ws[i]) >= thr).sum()), budget) for i in free}
        low = [i for i in free if keep[i] < floors[i]]
        if not low:
            break
        held.update(low)
    masks = []
    for i, w in enumerate(ws):
        m = _top_k_mask(w, floors[i] if i in held else keep[i])
        if floor > 0 and w.ndim == 2:  # every output keeps its largest input weight
            m[np.argmax(np.abs(w), axis=0), np.arange(w.shape[1])] = True
        masks.append(m)
    return masks


@COMPRESSORS.register("prune")
class Prune(FineTuner):
    """Magnitude pruning of dense weights to ``sparsity``, fine-tuned with fixed masks."""

    name = "prune"

    def __init__(
        self,
        *,
        sparsity: float = 0.8,
        scope: Literal["layer", "global"] = "global",
        layer_floor: float = 0.5,
        steps: int = 2,
        epochs: int = 10,
        lr: float = 2e-3,
        batch_size: int = 128,
        seed: int = 0,
    ) -> None:
        if not 0.0 < sparsity < 1.0:
            raise ValueError(f"sparsity must be in (0, 1), got {sparsity}")
        if steps < 1:
            raise ValueError("steps must be >= 1")
        if not 0.0 <= layer_floor <= 1.0:
            raise ValueError(f"layer_floor must be in [0, 1], got {layer_floor}")
        self.sparsity = sparsity
        self.scope = scope
        self.layer_floor = layer_floor
        self.steps = steps
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed

    def tune(
        self, base: Network, net: Network, rows: TrainRows, data: Dataset
    ) -> tuple[Network, dict[str, Any]]:
        kernels = prunable_kernels(net)  # dense weights and convolution kernels
        idx = sorted({k.layer for k in kernels})
        if not idx:
            raise CompressionError(f"prune: {base.describe()} has no dense or convolution weights to prune")
        ws = [k.w for k in kernels]
        per_step = [
            self.epochs // self.steps + (1 if s < self.epochs % self.steps else 0) for s in range(self.steps)
        ]
        oneshot = Network([copy.deepcopy(layer) for layer in net.layers])
        for k, m in zip(
            prunable_kernels(oneshot),
            magnitude_masks(ws, self.sparsity, self.scope, floor=self.layer_floor),
            strict=True,
        ):
            k.w[...] *= m
        oneshot_val = accuracy(oneshot, rows.x_val, rows.y_val)  # pruned, not fine-tuned (reported only)
        losses: list[float] = []
        for s in range(self.steps):
            target = self.sparsity * (s + 1) / self.steps
            masks = magnitude_masks(ws, target, self.scope, floor=self.layer_floor)
            for w, m in zip(ws, masks, strict=True):
                w *= m
            if per_step[s]:
                res = self.train(
                    net,
                    rows,
                    epochs=per_step[s],
                    seed=self.seed + s,
                    masks=kernel_masks(net, kernels, masks),
                )
                losses += res.loss
        zeros = sum(int((w == 0).sum()) for w in ws)
        total = sum(w.size for w in ws)
        return net, {
            "layers": idx,
            "sparsity": zeros / total,
            "sparsity_per_layer": [float((w == 0).mean()) for w in ws],
            "val_acc_base": accuracy(base, rows.x_val, rows.y_val),
            "val_acc_pruned_only": oneshot_val,
            "val_acc_finetuned": accuracy(net, rows.x_val, rows.y_val),
            "train_loss": losses,
            "speedup_note": "size-only: dense runtimes multiply the zeros (no sparse kernels)",
        }
