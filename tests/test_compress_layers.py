"""Structured layers: factors multiply to the matrix they replace, gradients, persistence, bad sizes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import CompressionError
from harness.ir.layers import Butterfly, Dense, LowRank, Monarch
from harness.ir.layers.butterfly import butterfly_project, check_butterfly_fits, random_butterfly
from harness.ir.layers.monarch import check_monarch_fits, monarch_dense, monarch_project
from harness.ir.network import Network
from harness.ir.train import fit, layer_backward, layer_params


@settings(max_examples=25, deadline=None)
@given(
    k=st.integers(1, 6),
    p=st.integers(1, 6),
    q=st.integers(1, 6),
    s=st.integers(1, 6),
    seed=st.integers(0, 99),
)
def test_monarch_projection_recovers_an_exact_monarch_matrix(
    k: int, p: int, q: int, s: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    w1, w2 = rng.standard_normal((k, p, q)), rng.standard_normal((q, k, s))
    dense = monarch_dense(w1, w2)
    a, b = monarch_project(dense, k, q)
    np.testing.assert_allclose(monarch_dense(a, b), dense, atol=1e-4 * max(1.0, np.abs(dense).max()))


def test_monarch_forward_equals_its_dense_matrix() -> None:
    rng = np.random.default_rng(0)
    layer = Monarch(rng.standard_normal((4, 8, 3)), rng.standard_normal((3, 4, 5)), rng.standard_normal(15))
    x = rng.standard_normal((9, 32)).astype(np.float32)
    np.testing.assert_allclose(layer.linear(x), x @ layer.to_dense(), atol=1e-4)
    assert (layer.in_dim, layer.out_dim) == (32, 15)
    assert layer.macs() == 4 * 8 * 3 + 3 * 4 * 5
    assert layer.n_params() == layer.macs() + 15


def test_monarch_projection_of_a_general_matrix_is_no_worse_than_zero() -> None:
    rng = np.random.default_rng(1)
    w = rng.standard_normal((64, 64))
    a, b = monarch_project(w, 8, 8)
    assert np.linalg.norm(monarch_dense(a, b) - w) < np.linalg.norm(w)


@pytest.mark.parametrize("n", [2, 4, 8, 32, 128, 256])
def test_butterfly_projection_recovers_a_product_of_butterfly_factors(n: int) -> None:
    rng = np.random.default_rng(n)
    dense = Butterfly(random_butterfly(n, rng), np.zeros(n)).to_dense()
    again = Butterfly(butterfly_project(dense), np.zeros(n)).to_dense()
    np.testing.assert_allclose(again, dense, atol=1e-5 * np.abs(dense).max())


def test_butterfly_projection_is_exact_on_walsh_hadamard() -> None:
    h = np.array([[1.0]])
    for _ in range(6):
        h = np.block([[h, h], [h, -h]])
    layer = Butterfly(butterfly_project(h), np.zeros(64))
    np.testing.assert_allclose(layer.to_dense(), h, atol=1e-4)
    assert layer.n_params() == 2 * 64 * 6 + 64


def test_butterfly_levels_follow_the_documented_formula() -> None:
    rng = np.random.default_rng(3)
    n = 8
    tw = random_butterfly(n, rng)
    x = rng.standard_normal(n)
    y = x.copy()
    for lvl in range(3):
        s = 1 << lvl
        z = y.copy()
        for p in range(n // 2):
            a = (p // s) * 2 * s + p % s
            z[a] = tw[lvl, p, 0, 0] * y[a] + tw[lvl, p, 0, 1] * y[a + s]
            z[a + s] = tw[lvl, p, 1, 0] * y[a] + tw[lvl, p, 1, 1] * y[a + s]
        y = z
    np.testing.assert_allclose(Butterfly(tw, np.zeros(n)).linear(x[None])[0], y, atol=1e-5)


def _numeric_grad_check(layer, x: np.ndarray, rng: np.random.Generator) -> None:  # type: ignore[no-untyped-def]
    dz = rng.standard_normal((len(x), layer.out_dim))

    def loss() -> float:
        return float(((layer.linear(x) + layer.bias).astype(np.float64) * dz).sum())

    dx, grads = layer_backward(layer, x, dz.astype(np.float32))
    for param, grad in zip(layer_params(layer), grads, strict=True):
        for _ in range(3):
            i = tuple(int(rng.integers(0, d)) for d in param.shape)
            old = param[i]
            param[i] = old + 1e-2
            up = loss()
            param[i] = old - 1e-2
            down = loss()
            param[i] = old
            assert (up - down) / 2e-2 == pytest.approx(float(grad[i]), rel=2e-2, abs=2e-2)
    assert dx.shape == x.shape


@pytest.mark.parametrize(
    "make",
    [
        lambda r: Dense(r.standard_normal((16, 8)), r.standard_normal(8)),
        lambda r: Monarch(r.standard_normal((4, 4, 2)), r.standard_normal((2, 4, 3)), r.standard_normal(6)),
        lambda r: Butterfly(random_butterfly(16, r), r.standard_normal(16)),
        lambda r: LowRank(r.standard_normal((16, 3)), r.standard_normal((3, 5)), r.standard_normal(5)),
    ],
    ids=["dense", "monarch", "butterfly", "lowrank"],
)
def test_backward_matches_finite_differences(make) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(5)
    layer = make(rng)
    x = rng.standard_normal((6, layer.in_dim)).astype(np.float32)
    _numeric_grad_check(layer, x, rng)
    # dx: directional derivative
    dz = rng.standard_normal((6, layer.out_dim)).astype(np.float32)
    dx, _ = layer_backward(layer, x, dz)
    v = rng.standard_normal(x.shape).astype(np.float32)
    eps = 1e-2
    num = float(((layer.linear(x + eps * v) - layer.linear(x - eps * v)) * dz).sum()) / (2 * eps)
    assert num == pytest.approx(float((dx * v).sum()), rel=2e-2, abs=2e-2)


def test_structured_layers_round_trip_through_saved_networks() -> None:
    rng = np.random.default_rng(2)
    net = Network(
        [
            Monarch(rng.standard_normal((4, 4, 4)), rng.standard_normal((4, 4, 4)), np.zeros(16), "relu"),
            Butterfly(random_butterfly(16, rng), np.ones(16), "relu"),
            LowRank(rng.standard_normal((16, 2)), rng.standard_normal((2, 3)), np.zeros(3)),
        ]
    )
    net.layers[0].calibrate(rng.standard_normal((5, 16)))  # type: ignore[attr-defined]
    again = Network.from_bytes(net.to_bytes())
    x = rng.standard_normal((4, 16)).astype(np.float32)
    np.testing.assert_array_equal(again.forward(x), net.forward(x))
    assert [layer.kind for layer in again.layers] == ["monarch", "butterfly", "lowrank"]
    np.testing.assert_array_equal(again.layers[0].ranges, net.layers[0].ranges)  # type: ignore[attr-defined]


def test_bad_sizes_name_the_layer_and_what_would_work() -> None:
    with pytest.raises(CompressionError, match=r"layer 3.*Block counts that work: \[2, 4, 8\]"):
        check_monarch_fits("layer 3", 40, 64, 5)
    with pytest.raises(CompressionError, match="layer 1 is 37x64"):
        check_monarch_fits("layer 1", 37, 64, None)
    assert check_monarch_fits("layer 0", 1024, 1024, None) == 32
    with pytest.raises(CompressionError, match=r"layer 2 is 48x48.*power of two"):
        check_butterfly_fits("layer 2", 48, 48)
    with pytest.raises(CompressionError, match="64x32"):
        check_butterfly_fits("layer 2", 64, 32)


def test_fit_is_deterministic_and_keeps_masked_weights_zero() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)

    def run() -> Network:
        r = np.random.default_rng(1)
        net = Network(
            [
                Dense(r.standard_normal((8, 16)), np.zeros(16), "relu"),
                Dense(r.standard_normal((16, 2)), np.zeros(2)),
            ]
        )
        mask = np.ones((8, 16), dtype=bool)
        mask[:, ::2] = False
        res = fit(net, x, y, epochs=5, seed=3, masks={0: [mask, None]})
        assert res.loss[-1] < res.loss[0]
        return net

    a, b = run(), run()
    np.testing.assert_array_equal(a.layers[0].w, b.layers[0].w)  # type: ignore[attr-defined]
    assert not a.layers[0].w[:, ::2].any()  # type: ignore[attr-defined]
