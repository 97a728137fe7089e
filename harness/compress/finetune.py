"""The shared set-up of the fine-tuning techniques (prune, structured, low-rank, Monarch, butterfly).

:class:`FineTuner` does what they all do around their own rewrite: refuse a model without its
network (IR), split the training rows into train and validation rows (never the eval set), copy the
network, let the technique rewrite and fine-tune the copy (:meth:`FineTuner.tune`), and record the
fit time and the size of the base. :meth:`FineTuner.transform` returns the new model with fresh float
ONNX/TFLite files and one history entry.
"""

from __future__ import annotations

import copy
import time
from abc import abstractmethod
from typing import Any, NamedTuple

import numpy as np

from ..errors import CompressionError
from ..ir.data import Dataset
from ..ir.model import Model
from ..ir.network import Network
from ..ir.train import Masks, TrainResult, fit, model_stats, training_data
from .base import Compressor


class TrainRows(NamedTuple):
    """The training split of a dataset, divided into rows to fit and rows to validate on."""

    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


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
        rows = TrainRows(*training_data(data, self.name))
        net = Network([copy.deepcopy(layer) for layer in model.net.layers])
        self.net_, entry = self.tune(model.net, net, rows, data)
        self.entry_ = {
            **entry,
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
        ``epochs`` and ``seed`` override the technique's own for one round."""
        return fit(
            net,
            rows.x,
            rows.y,
            epochs=self.epochs if epochs is None else epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            seed=self.seed if seed is None else seed,
            masks=masks,
            x_val=rows.x_val,
            y_val=rows.y_val,
        )

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
