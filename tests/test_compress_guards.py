"""Fine-tuned compressors guard against a silent collapse: a per-layer density floor for global
pruning, a learning-rate back-off when the loss diverges, and the accuracy at each stage recorded."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness.compress import finetune
from harness.compress.prune import Prune, layer_floor, magnitude_masks
from harness.ir.data import Dataset
from harness.ir.layers import Dense
from harness.ir.model import Model
from harness.ir.network import Network
from harness.ir.train import TrainResult
from harness.pipeline.variants import _describe


def _layers() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    # a large layer of small weights and a small layer of large ones: plain global ranking empties the first
    return [rng.normal(0, 0.01, (64, 32)).astype(np.float32), rng.normal(0, 1.0, (32, 20)).astype(np.float32)]


def test_global_pruning_keeps_every_layer_above_its_floor() -> None:
    ws = _layers()
    plain = magnitude_masks(ws, 0.8, "global")
    assert 1 - plain[0].mean() > 0.95  # what the floor is for: nearly every weight of layer 0 gone
    masks = magnitude_masks(ws, 0.8, "global", floor=0.5)
    for w, m in zip(ws, masks, strict=True):
        assert m.sum() >= layer_floor(w.size, 0.8, 0.5)  # at most 90 % sparse at 80 % overall
        assert m.any(axis=0).all()  # every output keeps an input
    total = sum(m.size for m in masks)
    assert abs(1 - sum(int(m.sum()) for m in masks) / total - 0.8) < 0.01  # the overall target holds


def test_prune_default_has_the_floor() -> None:
    assert Prune().layer_floor == 0.5


def _data(n: int = 200) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    return Dataset("t", x, y, x, x, y, n_classes=2)


def _model() -> Model:
    rng = np.random.default_rng(1)
    return Model(
        net=Network(
            [
                Dense(rng.normal(0, 0.5, (8, 16)).astype(np.float32), np.zeros(16, np.float32), "relu"),
                Dense(rng.normal(0, 0.5, (16, 2)).astype(np.float32), np.zeros(2, np.float32)),
            ]
        )
    )


def test_a_diverging_round_restarts_at_half_the_learning_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []

    def fake_fit(net: Network, x: Any, y: Any, *, lr: float, **kw: Any) -> TrainResult:
        calls.append(lr)
        for layer in net.layers:
            layer.w += 100.0  # type: ignore[attr-defined]  # what a blow-up does to the weights
        res = TrainResult(epochs=2, best_epoch=2)
        res.loss = [0.4, 3.2] if len(calls) == 1 else [0.4, 0.3]
        return res

    monkeypatch.setattr(finetune, "fit", fake_fit)
    comp = Prune(sparsity=0.5, steps=1, epochs=2, lr=2e-3)
    m = comp.fit_transform(_model(), _data())
    assert calls == [2e-3, 1e-3]
    assert m.history[-1]["lr_tried"] == [2e-3, 1e-3]
    assert finetune.diverged([0.4, 3.2]) and finetune.diverged([0.4, float("nan")])
    assert not finetune.diverged([0.9, 0.7, 0.5])


def test_accuracy_stages_reach_the_variant_metadata() -> None:
    m = Prune(sparsity=0.5, steps=1, epochs=2).fit_transform(_model(), _data())
    stages = _describe(m, {}, _data())["accuracy_stages"]
    assert set(stages) >= {"base", "projection", "fine_tuned"}
    for k in ("base", "projection", "fine_tuned"):
        assert 0.0 <= stages[k] <= 1.0
    assert stages["fine_tuned"] >= stages["projection"]  # the best validation epoch is kept
