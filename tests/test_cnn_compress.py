"""Compression of convolutional networks: the Pointwise wrapper, dependency-aware channel pruning,
magnitude pruning of kernels and factorised pointwise convolutions, each fine-tuned and chainable with int8."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.datasets import load_digits

from harness.compress.base import make_compressor
from harness.compress.channels import ChannelGraph, prune_channels
from harness.errors import CompressionError
from harness.ir import architectures
from harness.ir.architectures import conv2d, dense
from harness.ir.data import Dataset
from harness.ir.export.onnx_export import network_to_onnx_bytes
from harness.ir.layers import (
    BatchNorm,
    Butterfly,
    Conv1D,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    GlobalAveragePool,
    Layer,
    LowRank,
    Monarch,
    Pointwise,
    Reshape,
    Residual,
)
from harness.ir.layers.butterfly import random_butterfly
from harness.ir.model import Model
from harness.ir.network import Network, fold_batchnorm
from harness.ir.train import accuracy, fit, matrix_layer, select_layers, train_network

RNG = np.random.default_rng(0)


def _onnx(net: Network, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(network_to_onnx_bytes(net), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x.astype(np.float32)})[0]  # type: ignore[no-any-return]


def _inners(c_in: int, c_out: int) -> list[Layer]:
    r = np.random.default_rng(1)
    b = r.standard_normal(c_out).astype(np.float32)
    out: list[Layer] = [
        Dense(r.standard_normal((c_in, c_out)).astype(np.float32), b),
        LowRank(r.standard_normal((c_in, 3)), r.standard_normal((3, c_out)), b),
        Monarch(r.standard_normal((4, c_in // 4, 4)), r.standard_normal((4, 4, c_out // 4)), b),
    ]
    if c_in == c_out:
        out.append(Butterfly(random_butterfly(c_in, r), b))
    return out


# --- the Pointwise wrapper ---


@pytest.mark.parametrize("shape", [(5, 6, 16), (7, 16)])
def test_pointwise_dense_equals_a_1x1_convolution(shape: tuple[int, ...]) -> None:
    w = RNG.standard_normal((16, 8)).astype(np.float32)
    b = RNG.standard_normal(8).astype(np.float32)
    conv: Layer = (
        Conv2D(w[None, None], b, shape, act="relu")
        if len(shape) == 3
        else Conv1D(w[None], b, shape, act="relu")
    )
    pw = Pointwise(Dense(w, b), shape, "relu")
    x = RNG.standard_normal((3, *shape)).astype(np.float32)
    assert pw.out_shape == conv.out_shape
    np.testing.assert_allclose(pw.forward(x), conv.forward(x), rtol=1e-5, atol=1e-5)
    assert pw.macs() == conv.macs() and pw.n_params() == conv.n_params()


@pytest.mark.parametrize("k", range(4))
def test_pointwise_forward_onnx_save_load_and_macs(k: int) -> None:
    inner = _inners(16, 16)[k]
    pw = Pointwise(inner, (3, 4, 16), "relu6")
    net = Network([Reshape((192,), (3, 4, 16)), pw, GlobalAveragePool(pw.out_shape)])
    x = RNG.standard_normal((5, 192)).astype(np.float32)
    rows = x.reshape(-1, 16)
    want = np.clip(inner.forward(rows), 0, 6).reshape(5, 12, 16).mean(axis=1)
    np.testing.assert_allclose(net.forward(x), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(_onnx(net, x), want, rtol=1e-4, atol=1e-4)
    again = Network.from_bytes(net.to_bytes())
    assert isinstance(again.layers[1], Pointwise) and again.layers[1].inner.kind == inner.kind
    np.testing.assert_array_equal(again.forward(x), net.forward(x))
    assert pw.macs() == 12 * inner.macs() and pw.n_params() == inner.n_params()


@pytest.mark.parametrize("k", range(4))
def test_pointwise_gradients_match_finite_differences(k: int) -> None:
    inner = _inners(8, 8)[k]
    pw = Pointwise(inner, (2, 3, 8), "relu")
    x = RNG.standard_normal((2, 2, 3, 8))
    dy = RNG.standard_normal((2, 2, 3, 8))
    _, cache = pw.train_forward(x)
    dx, grads = pw.train_backward(cache, dy)
    assert [g.shape for g in grads] == [p.shape for p in pw.params()]

    def loss() -> float:
        return float((pw.train_forward(x)[0] * dy).sum())

    eps = 1e-3
    for idx in [(0, 1, 2, 3), (1, 0, 0, 7)]:
        x[idx] += eps
        up = loss()
        x[idx] -= 2 * eps
        down = loss()
        x[idx] += eps
        assert dx[idx] == pytest.approx((up - down) / (2 * eps), rel=2e-2, abs=2e-3)
    p, g = pw.params()[0], grads[0]
    j = np.unravel_index(int(np.argmax(np.abs(g))), p.shape)
    p[j] += eps
    up = loss()
    p[j] -= 2 * eps
    down = loss()
    p[j] += eps
    assert g[j] == pytest.approx((up - down) / (2 * eps), rel=2e-2, abs=2e-3)


@pytest.mark.parametrize("k", range(3))
def test_pointwise_folds_a_following_batchnorm(k: int) -> None:
    inner = _inners(16, 16)[k]
    shape = (3, 3, 16)
    bn = BatchNorm(
        shape,
        RNG.random(16) + 0.5,
        RNG.standard_normal(16),
        RNG.standard_normal(16),
        RNG.random(16) + 0.5,
        act="relu",
    )
    net = Network([Reshape((144,), shape), Pointwise(inner, shape), bn])
    folded = fold_batchnorm(net)
    assert len(folded.layers) == 2
    x = RNG.standard_normal((4, 144)).astype(np.float32)
    np.testing.assert_allclose(folded.forward(x), net.forward(x), rtol=1e-4, atol=1e-4)


def test_pointwise_refuses_an_inner_activation_and_a_wrong_width() -> None:
    with pytest.raises(ValueError, match="act="):
        Pointwise(Dense(np.ones((4, 4)), np.zeros(4), "relu"), (2, 4))
    with pytest.raises(ValueError, match="in_dim"):
        Pointwise(Dense(np.ones((4, 4)), np.zeros(4)), (2, 5))


def test_select_layers_names_dense_and_pointwise_layers_only() -> None:
    net = architectures.ds_cnn_kws(input=(12, 10, 1))
    kinds = {i: net.layers[i].kind for i in select_layers(net, "all", "t")}
    assert set(kinds.values()) == {"conv2d", "dense"}
    assert all(matrix_layer(net.layers[i]) is not None for i in kinds)
    assert all(net.layers[i].pointwise for i in kinds if kinds[i] == "conv2d")  # type: ignore[attr-defined]
    assert select_layers(net, "hidden", "t") == [i for i in kinds if i != len(net.layers) - 1]


# --- channel groups and channel pruning ---


def _resnet(seed: int = 0) -> Network:
    return architectures.resnet8(input=(8, 8, 3), seed=seed)


def test_residual_add_ties_channels_and_depthwise_ties_in_and_out() -> None:
    net = _resnet()
    g = ChannelGraph(net)
    stem, block1, block2 = net.layers[1], net.layers[3], net.layers[4]
    assert isinstance(block1, Residual) and isinstance(block2, Residual)
    # identity shortcut: the stem's output channels are the first block's output channels
    assert g.find(g.io[id(stem)][1]) == g.find(g.io[id(block1)][1])
    # conv shortcut: the body's last conv and the shortcut conv write the same group
    assert g.find(g.io[id(block2.body[-2])][1]) == g.find(g.io[id(block2.shortcut[0])][1])
    assert g.find(g.io[id(block2)][0]) != g.find(g.io[id(block2)][1])
    ds = architectures.ds_cnn_kws(input=(12, 10, 1))
    gd = ChannelGraph(ds)
    dw = [la for la in ds.layers if isinstance(la, DepthwiseConv2D)]
    assert dw and all(gd.io[id(la)][0] == gd.io[id(la)][1] for la in dw)
    # network input and output channels stay
    assert gd.group(gd.io[id(ds.layers[0])][0]).fixed and gd.group(gd.io[id(ds.layers[-1])][1]).fixed


@pytest.mark.parametrize(
    "build",
    [
        architectures.digits_cnn,
        architectures.mnist1d_cnn,
        _resnet,
        lambda: architectures.ds_cnn_kws(input=(12, 10, 1)),
    ],
)
def test_channel_pruning_gives_a_smaller_consistent_network(build) -> None:  # type: ignore[no-untyped-def]
    net = build()
    small, cut = prune_channels(net, 0.5)
    assert cut and all(after == round(before / 2) for before, after in cut.values())
    assert small.n_params() < 0.45 * net.n_params() and small.macs() < 0.45 * net.macs()
    assert small.in_dim == net.in_dim and small.out_dim == net.out_dim
    x = RNG.standard_normal((3, net.in_dim)).astype(np.float32)
    np.testing.assert_allclose(_onnx(small, x), small.forward(x), rtol=1e-4, atol=1e-4)


def test_removing_dead_channels_keeps_the_function_exactly() -> None:
    """Channels that carry zeros (zero filter and bias, BatchNorm with zero shift) score lowest, and removing
    them changes nothing: the slicing of convs, BatchNorm and the residual add is right."""
    block = _resnet(seed=3).layers[5]  # stride-2 block 32 -> 64 with a 1x1 shortcut conv
    assert isinstance(block, Residual)
    conv_a, bn_a = block.body[0], block.body[1]
    assert isinstance(conv_a, Conv2D) and isinstance(bn_a, BatchNorm)
    bn_a.mean[...] = RNG.standard_normal(64)
    bn_a.var[...] = RNG.random(64) + 0.5
    bn_a.beta[...] = RNG.standard_normal(64)
    dead = np.arange(0, 64, 2)  # half the channels inside the block's body
    conv_a.w[..., dead] = 0.0
    conv_a.b[dead] = 0.0
    bn_a.beta[dead] = 0.0
    bn_a.mean[dead] = 0.0
    net = Network([Reshape((4 * 4 * 32,), block.in_shape), block])
    small, cut = prune_channels(net, 0.5)
    assert list(cut.values()) == [[64, 32]]  # only the body's inner group: input and output stay
    kept = small.layers[1].body[0].w  # type: ignore[attr-defined]
    np.testing.assert_array_equal(kept, conv_a.w[..., 1::2])
    x = RNG.standard_normal((4, net.in_dim)).astype(np.float32)
    np.testing.assert_allclose(small.forward(x), net.forward(x), rtol=1e-5, atol=1e-5)
    conv_a.b[dead] = 1.0  # the channels are no longer dead: the same cut now changes the output
    assert not np.allclose(prune_channels(net, 0.5)[0].forward(x), net.forward(x), atol=1e-3)


# --- the compressors on a trained digits CNN ---


@pytest.fixture(scope="module")
def digits() -> Dataset:
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    y = y.astype(np.int64)
    idx = np.random.default_rng(0).permutation(len(x))
    tr, ev = idx[:1400], idx[1400:]
    return Dataset("digits", x[ev], y[ev], x[tr][:128], x[tr], y[tr], n_classes=10)


def _pw_cnn(seed: int = 0) -> Network:
    """digits CNN with a depthwise-separable block and two pointwise convolutions (16 -> 32 -> 32)."""
    rng = np.random.default_rng(seed)
    layers: list[Layer] = [Reshape((64,), (8, 8, 1))]
    layers.append(conv2d(rng, (8, 8, 1), 16, 3, act="relu"))
    w = (rng.standard_normal((3, 3, 16)) * 0.5).astype(np.float32)
    layers.append(DepthwiseConv2D(w, np.zeros(16, np.float32), (8, 8, 16), act="relu"))
    layers.append(conv2d(rng, (8, 8, 16), 32, 1, act="relu"))
    layers.append(conv2d(rng, (8, 8, 32), 32, 1, act="relu"))
    layers.append(GlobalAveragePool((8, 8, 32)))
    layers.append(dense(rng, 32, 10))
    return Network(layers)


@pytest.fixture(scope="module")
def trained(digits: Dataset) -> dict[str, Model]:
    out = {}
    for name, net in (("cnn", architectures.digits_cnn(0)), ("pw", _pw_cnn(0))):
        train_network(
            net, digits.x_train, digits.y_train, epochs=8, lr=1e-2, batch_size=32, schedule="cosine"
        )
        out[name] = Model(net=net)
    return out


FT = {"epochs": 6, "lr": 5e-3, "batch_size": 32}


def _check(out: Model, base: Model, ds: Dataset) -> float:
    assert out.net is not None and base.net is not None
    x = ds.x_eval[:100]
    sess = ort.InferenceSession(out.files["onnx"], providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"input": x})[0], out.net.forward(x), rtol=1e-3, atol=1e-3)
    h = out.history[-1]
    assert h["fine_tuned"] and h["n_params"] == out.net.n_params() and h["macs"] == out.net.macs()
    assert h["val_acc_finetuned"] == pytest.approx(accuracy(out.net, *_val(ds)))
    return accuracy(out.net, ds.x_eval, ds.y_eval)


def _val(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    from harness.ir.train import training_data

    _, _, xv, yv = training_data(ds, "t")
    return xv, yv


def test_structured_prunes_channels_of_a_cnn_and_fine_tunes(trained, digits) -> None:  # type: ignore[no-untyped-def]
    base = trained["cnn"]
    out = make_compressor("structured", {"keep": 0.5, **FT}).fit_transform(base, digits)
    h = out.history[-1]
    assert h["channels"] and h["n_params"] < 0.5 * base.net.n_params() and h["macs"] < 0.5 * base.net.macs()
    acc = _check(out, base, digits)
    assert h["val_acc_finetuned"] >= h["val_acc_removed_only"]
    assert acc > 0.7, acc
    # chainable with int8: ONNX Runtime QDQ of the pruned network keeps its accuracy
    q = make_compressor("int8", {}).fit_transform(out, digits)
    sess = ort.InferenceSession(q.files["onnx"], providers=["CPUExecutionProvider"])
    qacc = float((sess.run(None, {"input": digits.x_eval})[0].argmax(1) == digits.y_eval).mean())
    assert qacc > acc - 0.05, (qacc, acc)


def test_prune_zeroes_conv_kernels_and_keeps_them_zero(trained, digits) -> None:  # type: ignore[no-untyped-def]
    base = trained["cnn"]
    out = make_compressor("prune", {"sparsity": 0.5, "scope": "layer", "steps": 1, **FT}).fit_transform(
        base, digits
    )
    h = out.history[-1]
    kernels = [la.w for la in out.net.layers if isinstance(la, Conv2D | Dense)]  # type: ignore[union-attr]
    assert len(kernels) == 3 and h["layers"] == [1, 3, 5]
    for w in kernels:
        assert (w == 0).mean() == pytest.approx(0.5, abs=0.01)
    assert h["n_params"] < base.net.n_params()  # type: ignore[union-attr]
    assert _check(out, base, digits) > 0.6


def test_prune_masks_reach_kernels_inside_residual_blocks() -> None:
    from harness.compress.kernels import kernel_masks, prunable_kernels

    net = _resnet()
    ks = prunable_kernels(net)
    assert len(ks) == 1 + 2 + 3 + 3 + 1  # stem, three blocks (the last two with a shortcut conv), classifier
    masks = [np.abs(k.w) > np.median(np.abs(k.w)) for k in ks]
    x = RNG.standard_normal((16, net.in_dim)).astype(np.float32)
    y = RNG.integers(0, 10, 16)
    fit(net, x, y, epochs=1, batch_size=8, masks=kernel_masks(net, ks, masks))
    for k, m in zip(ks, masks, strict=True):
        assert (k.w[~m] == 0).all() and (k.w[m] != 0).any()


@pytest.mark.parametrize("technique", ["lowrank", "monarch", "butterfly"])
def test_factorising_pointwise_convolutions(trained, digits, technique: str) -> None:  # type: ignore[no-untyped-def]
    base = trained["pw"]
    params = {"layers": "hidden", **FT}
    if technique == "lowrank":
        params["rank"] = 4
        params["match"] = None
    out = make_compressor(technique, params).fit_transform(base, digits)
    h = out.history[-1]
    kinds = {"lowrank": LowRank, "monarch": Monarch, "butterfly": Butterfly}
    replaced = [out.net.layers[i] for i in h["layers"]]  # type: ignore[union-attr]
    assert replaced and all(
        isinstance(la, Pointwise) and isinstance(la.inner, kinds[technique]) for la in replaced
    )
    assert h["layers"] == ([4] if technique == "butterfly" else [3, 4])  # butterfly: square 32x32 only
    assert h["macs"] < h["macs_base"] and h["n_params"] < h["n_params_base"]
    assert out.net.layers[4].act == "relu"  # type: ignore[union-attr]
    assert _check(out, base, digits) > 0.6
    assert h["val_acc_finetuned"] >= h["val_acc_projection"]


def test_factorising_refuses_a_3x3_convolution(trained, digits) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CompressionError, match="pointwise"):
        make_compressor("monarch", {"layers": [1], **FT}).fit_transform(trained["pw"], digits)


def test_structured_then_monarch_chain(trained, digits) -> None:  # type: ignore[no-untyped-def]
    """Channel pruning first (32 -> 16 channels), then Monarch on the smaller pointwise convs."""
    a = make_compressor("structured", {"keep": 0.5, **FT}).fit_transform(trained["pw"], digits)
    assert a.net.layers[4].w.shape[-2:] == (16, 16)  # type: ignore[union-attr]
    b = make_compressor("monarch", {"layers": [4], **FT}).fit_transform(a, digits)
    assert isinstance(b.net.layers[4], Pointwise)  # type: ignore[union-attr]
    assert _check(b, a, digits) > 0.5
