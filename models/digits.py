"""``digits``: scikit-learn's bundled 8×8 handwritten digits (1797 samples, 10 classes), MLP base model."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from harness.ir.data import Dataset
from harness.ir.network import Network
from harness.ir.train import sklearn_mlp
from harness.pipeline.recipes import RECIPES, Count, Hidden, Seed, split


@RECIPES.register("digits_mlp")
def build(seed: Seed = 0, hidden: Hidden | None = None, max_iter: Count = 300) -> tuple[Network, Dataset]:
    """Pixels scaled to [0, 1]; 25 % held out for evaluation."""
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    y = y.astype(np.int64)
    xtr, ytr, xev, yev, xcal = split(x, y, seed=seed, eval_frac=0.25)
    net = sklearn_mlp(xtr, ytr, hidden or [64], seed=seed, max_iter=max_iter)
    ds = Dataset(
        "digits", xev, yev, xcal, xtr, ytr, n_classes=10, meta={"source": "sklearn.datasets.load_digits"}
    )
    return net, ds
