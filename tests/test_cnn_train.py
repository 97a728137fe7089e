"""Training convolutional IR networks with the NumPy Adam loop of harness.ir.train."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from harness.ir import architectures, train
from harness.ir.layers import BatchNorm
from harness.ir.network import Network
from harness.ir.train import accuracy, fit, train_network


def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y.astype(np.int64)


def test_digits_cnn_learns() -> None:
    x, y = digits()
    net = architectures.digits_cnn(seed=0)
    before = accuracy(net, x[1400:], y[1400:])
    res = train_network(net, x[:1400], y[:1400], epochs=8, lr=1e-2, batch_size=32, seed=0)
    after = accuracy(net, x[1400:], y[1400:])
    assert res.loss[-1] < res.loss[0]
    assert before < 0.3 and after > 0.85, (before, after)


def test_training_is_deterministic() -> None:
    x, y = digits()
    weights = []
    for _ in range(2):
        net = architectures.mnist1d_cnn(seed=3, length=64)
        fit(net, x[:256], y[:256], epochs=2, lr=1e-2, batch_size=32, seed=5)
        weights.append(
            np.concatenate([p.ravel() for la in net.layers for p in getattr(la, "params", lambda: [])()])
        )
    np.testing.assert_array_equal(weights[0], weights[1])


def test_best_epoch_keeps_batchnorm_statistics(monkeypatch) -> None:
    # Validation scores are scripted so that epoch 1 is the best of 3: the restored network must hold the
    # BatchNorm running statistics (and weights) of epoch 1, not those of the last epoch.
    x, y = digits()
    layers = list(architectures.digits_cnn(seed=1).layers)
    conv0 = layers[1]
    conv0.act = None
    layers.insert(2, BatchNorm(conv0.out_shape, act="relu"))
    net = Network(layers)
    bn = net.layers[2]
    assert isinstance(bn, BatchNorm)
    seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    scores = iter([0.1, 0.9, 0.2, 0.3])

    def scripted(net_: Network, xv: np.ndarray, yv: np.ndarray, batch: int = 1024) -> float:
        seen.append((bn.mean.copy(), bn.var.copy(), conv0.w.copy()))
        return next(scores)

    monkeypatch.setattr(train, "accuracy", scripted)
    res = train.fit(
        net, x[:300], y[:300], epochs=3, lr=1e-2, batch_size=32, x_val=x[300:400], y_val=y[300:400]
    )
    assert res.best_epoch == 1
    assert not np.allclose(seen[1][1], seen[3][1])  # the statistics moved after epoch 1
    for now, then in zip((bn.mean, bn.var, conv0.w), seen[1], strict=True):
        np.testing.assert_array_equal(now, then)
