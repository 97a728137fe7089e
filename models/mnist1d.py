"""``mnist1d``: MNIST-1D generated offline by the ``mnist1d`` package (4000 train / 1000 test, 40-dim)."""

from __future__ import annotations

import numpy as np

from harness.ir.data import Dataset
from harness.ir.network import Network
from harness.ir.train import sklearn_mlp
from harness.pipeline.recipes import RECIPES, Count, Hidden, Seed


def load(seed: int = 42, num_samples: int = 5000) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Generate MNIST-1D with ``make_dataset`` (never ``get_dataset``, which downloads)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    args.num_samples = num_samples
    d = make_dataset(args)
    return (
        d["x"].astype(np.float32),
        d["y"].astype(np.int64),
        d["x_test"].astype(np.float32),
        d["y_test"].astype(np.int64),
    )


@RECIPES.register("mnist1d_mlp")
def build(
    seed: Seed = 0, hidden: Hidden | None = None, max_iter: Count = 300, data_seed: Seed = 42
) -> tuple[Network, Dataset]:
    """The package's own train/test split; inputs standardised with training statistics."""
    xtr, ytr, xev, yev = load(data_seed)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xev = (xtr - mu) / sd, (xev - mu) / sd
    net = sklearn_mlp(xtr, ytr, hidden or [128, 128], seed=seed, max_iter=max_iter)
    ds = Dataset(
        "mnist1d",
        xev,
        yev,
        xtr[:256],
        xtr,
        ytr,
        n_classes=10,
        meta={"source": "mnist1d.data.make_dataset (offline)", "data_seed": data_seed},
    )
    return net, ds
