"""The shared set-up of the fine-tuning techniques (prune, structured, low-rank, Monarch, butterfly).

:class:`FineTuner` does what they all do around their own rewrite: refuse a model without its
network (IR), split the training rows into train and validation rows (never the eval set), copy the
network, let the technique rewrite and fine-tune the copy (:meth:`FineTuner.tune`), and record the
fit time and the size of the base. :meth:`FineTuner.transform` returns the new model with fresh float
ONNX/TFLite files and one history entry.

Two guards against a silently collapsed result: :meth:`FineTuner.train` restarts a round at half the
learning rate when its training loss diverges (:func:`diverged`), and every technique reports its
validation accuracy at three stages (``base``, ``projection`` = compressed before fine-tuning,
``fine_tuned``), which the variant keeps in its metadata under ``accuracy_stages``.
"""

from __future__ import annotations

import copy
import logging
import time
from abc import abstractmethod
from typing import Any, NamedTuple

import numpy as np

from ..errors import CompressionError
from ..ir.data import Dataset
from ..ir.model import Model
from ..ir.network import Network
from ..ir.train import Masks, TrainResult, fit, layer_params, model_stats, training_data
from .base import Compressor

log = logging.getLogger(__name__)


class TrainRows(NamedTuple):
    """The training split of a dataset, divided into rows to fit and rows to validate on."""

    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


DIVERGE_RATIO = 1.5  # an epoch whose mean loss exceeds 1.5x the round's first epoch diverged
MAX_BACKOFFS = 3  # halvings of the learning rate before a round is kept as it is


def diverged(losses: list[float]) -> bool:
    """Whether a round's loss curve blew up: a non-finite loss, or an epoch above ``DIVERGE_RATIO``
    times the first epoch's (fine-tuning starts from a trained network, so its loss should fall)."""
    if not losses:
        return False
    if not all(np.isfinite(losses)):
        return True
    return max(losses[1:], default=losses[0]) > DIVERGE_RATIO * losses[0]


COLLAPSE_POINTS = 0.10  # a fine-tuned result this far below the base on validation rows is warned about
PROJECTION_KEYS = ("val_acc_projection", "val_acc_pruned_only", "val_acc_removed_only")


def accuracy_stages(entry: dict[str, Any]) -> dict[str, Any]:
    """Validation accuracy of the base, of the compressed network before fine-tuning (``projection``)
    and after it, from a technique's history fields (None where a technique did not measure one)."""
    proj = next((entry[k] for k in PROJECTION_KEYS if entry.get(k) is not None), None)
    return {
        "base": entry.get("val_acc_base"),
        "projection": proj,
        "fine_tuned": entry.get("val_acc_finetuned"),
        "rows": "validation rows (10 % of x_train, never the eval set)",
    }


class FineTuner(Compressor):
    """Base of the techniques that rewrite the float network, then fine-tune it on the training split.

    Subclasses store ``epochs``, ``lr``, ``batch_size`` and ``seed`` (their constructor arguments) and
    implement :meth:`tune`.
    """

    needs_net = True
    needs_training = True

    epochs: int
    lr: float
    batch_size: int
    seed: int

    @abstractmethod
    def tune(
        self, base: Network, net: Network, rows: TrainRows, data: Dataset
    ) -> tuple[Network, dict[str, Any]]:
        """Rewrite and fine-tune ``net`` (a copy of ``base``); return the result and its history fields."""

    def fit(self, model: Model, data: Dataset) -> FineTuner:
        if model.net is None:
            raise CompressionError(
                f"{self.name} rewrites the model's network (IR), and this model is a bare file; "
                "use a post-training technique (int8, prune-weights, svd-weights)"
            )
        t0 = time.perf_counter()
        self.lr_tried_: list[float] = []
        rows = TrainRows(*training_data(data, self.name))
        net = Network([copy.deepcopy(layer) for layer in model.net.layers])
        self.net_, entry = self.tune(model.net, net, rows, data)
        stages = accuracy_stages(entry)
        if stages["base"] is not None and stages["fine_tuned"] is not None:
            lost = stages["base"] - stages["fine_tuned"]
            if lost > COLLAPSE_POINTS:
                log.warning(
                    "%s %s lost %.1f accuracy points on the validation rows (%.3f -> %.3f after fine-tuning); "
                    "lower its compression or raise epochs",
                    self.name,
                    self.get_params(),
                    100 * lost,
                    stages["base"],
                    stages["fine_tuned"],
                )
        self.entry_ = {
            **entry,
            "accuracy_stages": stages,
            "lr_tried": self.lr_tried_,
            "fit_s": time.perf_counter() - t0,
            "n_params_base": model.net.n_params(),
            "macs_base": model.net.macs(),
        }
        return self

    def train(
        self,
        net: Network,
        rows: TrainRows,
        *,
        epochs: int | None = None,
        seed: int | None = None,
        masks: Masks | None = None,
    ) -> TrainResult:
        """Fine-tune ``net`` in place with the technique's settings (keeping the best validation epoch);
        ``epochs`` and ``seed`` override the technique's own for one round.

        A round whose loss diverges (:func:`diverged`) starts again from the same weights at half the
        learning rate, at most ``MAX_BACKOFFS`` times; the rates tried are in ``lr_tried``.
        """
        start = [[p.copy() for p in layer_params(layer)] for layer in net.layers]
        lr = self.lr
        for attempt in range(MAX_BACKOFFS + 1):
            res = fit(
                net,
                rows.x,
                rows.y,
                epochs=self.epochs if epochs is None else epochs,
                lr=lr,
                batch_size=self.batch_size,
                seed=self.seed if seed is None else seed,
                masks=masks,
                x_val=rows.x_val,
                y_val=rows.y_val,
            )
            self.lr_tried_ = [*getattr(self, "lr_tried_", []), lr]
            if not diverged(res.loss) or attempt == MAX_BACKOFFS:
                return res
            for layer, saved in zip(net.layers, start, strict=True):  # in place: callers hold the arrays
                for p, s in zip(layer_params(layer), saved, strict=True):
                    p[...] = s
            lr /= 2
        return res

    def transform(self, model: Model) -> Model:
        """The new model (fresh float ONNX/TFLite files) with one history entry appended."""
        stats = model_stats(self.net_)
        files = stats.pop("files")
        entry = {
            "technique": self.name,
            "params": self.get_params(),
            "fine_tuned": self.epochs > 0,
            "epochs": self.epochs,
            **self.entry_,
            **stats,
        }
        return model.with_(net=self.net_, files=files, act_q=None, history=[*model.history, entry])
