"""Convolutional IR layers: reference arithmetic, gradients, ONNX equivalence, persistence and costs."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from harness.errors import ModelError
from harness.ir import architectures
from harness.ir.export.onnx_export import network_to_onnx_bytes
from harness.ir.export.tflite_export import network_to_tflite
from harness.ir.layers import (
    Activation,
    AvgPool2D,
    BatchNorm,
    Conv1D,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    GlobalAveragePool,
    Layer,
    MaxPool2D,
    Reshape,
    Residual,
    ShapedLayer,
)
from harness.ir.layers.im2col import out_len, pads
from harness.ir.network import Network, fold_batchnorm

RNG = np.random.default_rng(1234)


def rand(*shape: int, scale: float = 1.0) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def conv(in_shape, c_out, k, **kw) -> Conv2D:
    kh, kw_ = (k, k) if isinstance(k, int) else k
    return Conv2D(rand(kh, kw_, in_shape[-1], c_out, scale=0.5), rand(c_out), in_shape, **kw)


def naive_conv2d(x, w, b, stride, padding):
    """Direct loops over output pixels (the reference; small shapes only)."""
    bsz, h, wd, _ = x.shape
    kh, kw, _, co = w.shape
    (sh, sw) = stride
    ph, pw = pads(h, kh, sh, padding), pads(wd, kw, sw, padding)
    xp = np.pad(x, ((0, 0), ph, pw, (0, 0)))
    ho, wo = out_len(h, kh, sh, padding), out_len(wd, kw, sw, padding)
    y = np.zeros((bsz, ho, wo, co))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :]
            y[:, i, j, :] = np.tensordot(patch, w, axes=([1, 2, 3], [0, 1, 2])) + b
    return y


# --- padding and reference arithmetic ---


def test_same_padding_follows_tflite() -> None:
    # TFLite SAME: out = ceil(n / s), the odd padded value goes after.
    assert (out_len(8, 3, 2, "same"), pads(8, 3, 2, "same")) == (4, (0, 1))
    assert (out_len(7, 3, 2, "same"), pads(7, 3, 2, "same")) == (4, (1, 1))
    assert (out_len(49, 10, 2, "same"), pads(49, 10, 2, "same")) == (25, (4, 5))
    assert (out_len(10, 4, 2, "same"), pads(10, 4, 2, "same")) == (5, (1, 1))
    assert (out_len(8, 3, 2, "valid"), pads(8, 3, 2, "valid")) == (3, (0, 0))


@pytest.mark.parametrize(
    "shape,k,stride,padding",
    [
        ((6, 5, 2), 3, 1, "same"),
        ((8, 8, 3), 3, 2, "same"),
        ((7, 6, 2), (3, 2), (2, 1), "valid"),
        ((9, 7, 1), (4, 3), 2, "same"),
        ((5, 5, 4), 1, 2, "same"),
    ],
)
def test_conv2d_matches_direct_loops(shape, k, stride, padding) -> None:
    layer = conv(shape, 3, k, stride=stride, padding=padding)
    x = rand(2, *shape)
    ref = naive_conv2d(x.astype(np.float64), layer.w, layer.b, layer.stride, padding)
    np.testing.assert_allclose(layer.forward(x.reshape(2, -1)), ref, atol=1e-5)
    assert layer.out_shape == ref.shape[1:]


def test_pointwise_is_a_matmul() -> None:
    layer = conv((4, 5, 6), 7, 1)
    x = rand(3, 4, 5, 6)
    want = x.reshape(-1, 6) @ layer.w.reshape(6, 7) + layer.b
    np.testing.assert_allclose(layer.forward(x), want.reshape(3, 4, 5, 7), rtol=1e-6, atol=1e-6)


def test_depthwise_and_conv1d_match_direct_loops() -> None:
    dw = DepthwiseConv2D(rand(3, 3, 4), rand(4), (7, 6, 4), stride=2)
    x = rand(2, 7, 6, 4)
    for c in range(4):  # a depthwise conv is a 1-channel conv per channel
        ref = naive_conv2d(x[..., c : c + 1], dw.w[:, :, c : c + 1, None], dw.b[c : c + 1], (2, 2), "same")
        np.testing.assert_allclose(dw.forward(x)[..., c], ref[..., 0], atol=1e-5)
    c1 = Conv1D(rand(5, 3, 4), rand(4), (11, 3), stride=2, padding="valid")
    s = rand(2, 11, 3)
    ref = naive_conv2d(s[:, None], c1.w[None], c1.b, (1, 2), "valid")[:, 0]
    np.testing.assert_allclose(c1.forward(s), ref, atol=1e-5)
    assert c1.out_shape == (4, 4)


def test_pools_ignore_padding() -> None:
    x = rand(2, 5, 5, 3)
    mp = MaxPool2D((5, 5, 3), 3, stride=2, padding="same")
    ap = AvgPool2D((5, 5, 3), 3, stride=2, padding="same")
    assert mp.out_shape == ap.out_shape == (3, 3, 3)
    # SAME pads 1 on each side: output (0, 0) sees rows 0..1 and columns 0..1 only.
    np.testing.assert_allclose(mp.forward(x)[:, 0, 0], x[:, :2, :2].max(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(ap.forward(x)[:, 0, 0], x[:, :2, :2].mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(ap.forward(x)[:, 1, 1], x[:, 1:4, 1:4].mean(axis=(1, 2)), rtol=1e-5)
    gap = GlobalAveragePool((5, 5, 3))
    np.testing.assert_allclose(gap.forward(x), x.mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(GlobalAveragePool((5, 3)).forward(x[:, 0]), x[:, 0].mean(axis=1), rtol=1e-5)


def test_activations_fuse_and_stand_alone() -> None:
    layer = conv((4, 4, 2), 3, 3, act="relu6")
    x = rand(2, 4, 4, 2, scale=8.0)
    y = layer.forward(x)
    assert y.min() >= 0.0 and y.max() <= 6.0 and (y == 6.0).any()
    plain = conv((4, 4, 2), 3, 3)
    plain.w, plain.b = layer.w, layer.b
    np.testing.assert_allclose(Activation("relu6", (4, 4, 3)).forward(plain.forward(x)), y)
    with pytest.raises(ValueError, match="unknown activation"):
        conv((4, 4, 2), 3, 3, act="gelu")


# --- gradients (central differences in float64) ---


def to64(layer: Layer) -> Layer:
    for name in ("w", "b", "gamma", "beta", "mean", "var"):
        if hasattr(layer, name):
            setattr(layer, name, getattr(layer, name).astype(np.float64))
    for child in getattr(layer, "children", []):
        to64(child)
    return layer


def grad_check(layer: ShapedLayer, batch: int = 2, scale: float = 1.0, eps: float = 1e-6) -> None:
    to64(layer)
    x = RNG.standard_normal((batch, *layer.in_shape)) * scale
    r = RNG.standard_normal((batch, *layer.out_shape))

    def loss() -> float:
        return float((layer.train_forward(x)[0] * r).sum())

    y, cache = layer.train_forward(x)
    dx, grads = layer.train_backward(cache, r)
    params = layer.params()
    assert len(grads) == len(params)
    for target, analytic in [(x, dx), *zip(params, grads, strict=True)]:
        assert analytic.shape == target.shape
        idx = RNG.choice(target.size, size=min(target.size, 40), replace=False)
        for k in idx:
            old = target.flat[k]
            target.flat[k] = old + eps
            up = loss()
            target.flat[k] = old - eps
            down = loss()
            target.flat[k] = old
            num = (up - down) / (2 * eps)
            assert abs(num - analytic.flat[k]) <= 1e-5 * max(1.0, abs(num)), (
                layer.kind,
                k,
                num,
                analytic.flat[k],
            )


GRAD_LAYERS = {
    "conv2d_same": lambda: conv((5, 6, 2), 3, 3, act="relu"),
    "conv2d_stride2_even": lambda: conv((6, 6, 2), 3, 3, stride=2, act="relu6"),
    "conv2d_valid_rect": lambda: conv((7, 6, 2), 3, (3, 2), stride=(2, 1), padding="valid"),
    "pointwise_stride2": lambda: conv((5, 5, 3), 4, 1, stride=2),
    "conv1d": lambda: Conv1D(rand(5, 2, 3), rand(3), (9, 2), stride=2, act="relu"),
    "depthwise": lambda: DepthwiseConv2D(rand(3, 3, 3), rand(3), (6, 5, 3), stride=2, act="relu"),
    "depthwise_valid": lambda: DepthwiseConv2D(rand(2, 3, 2), rand(2), (5, 6, 2), padding="valid"),
    "maxpool": lambda: MaxPool2D((6, 5, 2), 2),
    "maxpool_same": lambda: MaxPool2D((5, 5, 2), 3, stride=2, padding="same"),
    "avgpool_same": lambda: AvgPool2D((5, 5, 2), 3, stride=2, padding="same"),
    "gap": lambda: GlobalAveragePool((3, 4, 5)),
    "gap1d": lambda: GlobalAveragePool((6, 3)),
    "batchnorm": lambda: BatchNorm((4, 3, 3), rand(3), rand(3), act="relu"),
    "reshape": lambda: Reshape((24,), (2, 3, 4)),
    "flatten": lambda: Flatten((2, 3, 4)),
    "activation": lambda: Activation("relu6", (3, 4)),
    "residual_identity": lambda: Residual(
        [conv((4, 4, 3), 3, 3), BatchNorm((4, 4, 3), act="relu"), conv((4, 4, 3), 3, 3)], None, "relu"
    ),
    "residual_projection": lambda: Residual(
        [conv((6, 6, 2), 3, 3, stride=2, act="relu"), conv((3, 3, 3), 3, 3)],
        [conv((6, 6, 2), 3, 1, stride=2)],
        "relu",
    ),
}


@pytest.mark.parametrize("name", sorted(GRAD_LAYERS))
def test_gradients_match_finite_differences(name: str) -> None:
    layer = GRAD_LAYERS[name]()
    scale = 4.0 if name == "conv2d_stride2_even" else 1.0  # reach both ReLU6 bounds
    grad_check(layer, batch=3 if "batchnorm" in name else 2, scale=scale)


def test_grad_check_can_fail() -> None:
    layer = conv((4, 4, 2), 2, 3)
    orig = layer.train_backward

    def wrong(cache, dy):
        dx, grads = orig(cache, dy)
        return dx, [grads[0] * 1.01, grads[1]]

    layer.train_backward = wrong  # type: ignore[method-assign]
    with pytest.raises(AssertionError):
        grad_check(layer)


def test_batchnorm_updates_running_statistics() -> None:
    bn = BatchNorm((2, 2, 3), momentum=0.5)
    x = rand(64, 2, 2, 3) * 3 + 5
    bn.train_forward(x)
    flat = x.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(bn.mean, 0.5 * flat.mean(0), rtol=1e-5)
    np.testing.assert_allclose(bn.var, 0.5 + 0.5 * flat.var(0, ddof=1), rtol=1e-5)


# --- networks: shapes, ONNX, persistence, folding, costs ---


def small_cnn() -> Network:
    return Network(
        [
            Reshape((72,), (6, 6, 2)),
            conv((6, 6, 2), 4, 3),
            BatchNorm((6, 6, 4), rand(4), rand(4), np.abs(rand(4)), np.abs(rand(4)) + 0.5, act="relu6"),
            DepthwiseConv2D(rand(3, 3, 4), rand(4), (6, 6, 4), stride=2),
            BatchNorm((3, 3, 4), rand(4), rand(4), rand(4), np.abs(rand(4)) + 0.5),
            Residual([conv((3, 3, 4), 4, 3, act="relu"), conv((3, 3, 4), 4, 1)], None, "relu"),
            MaxPool2D((3, 3, 4), 2, padding="same"),
            AvgPool2D((2, 2, 4), 2, stride=1, padding="same"),
            Activation("relu", (2, 2, 4)),
            Flatten((2, 2, 4)),
            Dense(rand(16, 5), rand(5)),
        ]
    )


def seq_cnn() -> Network:
    return Network(
        [
            Reshape((20,), (10, 2)),
            Conv1D(rand(5, 2, 3), rand(3), (10, 2), stride=2, act="relu"),
            BatchNorm((5, 3), rand(3), rand(3), act="relu"),
            GlobalAveragePool((5, 3)),
            Dense(rand(3, 4), rand(4)),
        ]
    )


def onnx_forward(net: Network, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(network_to_onnx_bytes(net), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


NETS = {
    "small_cnn": small_cnn,
    "seq_cnn": seq_cnn,
    "digits_cnn": architectures.digits_cnn,
    "mnist1d_cnn": architectures.mnist1d_cnn,
    "ds_cnn_kws": architectures.ds_cnn_kws,
    "resnet8": architectures.resnet8,
}


@pytest.mark.parametrize("name", sorted(NETS))
def test_onnx_runtime_matches_numpy(name: str) -> None:
    net = NETS[name]()
    x = rand(3, net.in_dim)
    want = net.forward(x)
    assert want.shape == (3, net.out_dim)
    np.testing.assert_allclose(onnx_forward(net, x), want, atol=1e-4, rtol=1e-4)
    folded = fold_batchnorm(net)
    np.testing.assert_allclose(folded.forward(x), want, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(onnx_forward(folded, x), want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["small_cnn", "seq_cnn", "resnet8"])
def test_save_load_roundtrip(name: str, tmp_path) -> None:
    net = NETS[name]()
    net.save(tmp_path / "net.npz")
    back = Network.load(tmp_path / "net.npz")
    assert [la.kind for la in back.layers] == [la.kind for la in net.layers]
    assert back.describe() == net.describe()
    x = rand(2, net.in_dim)
    np.testing.assert_array_equal(back.forward(x), net.forward(x))


def test_fold_batchnorm_removes_it_and_keeps_the_function() -> None:
    net = small_cnn()
    folded = fold_batchnorm(net)
    kinds = [la.kind for la in folded.layers]
    assert "batchnorm" not in kinds
    assert folded.layers[1].act == "relu6"  # the conv took the BatchNorm's activation
    assert len(folded.layers) == len(net.layers) - 2
    assert net.layers[1].act is None and net.layers[2].kind == "batchnorm"  # the original is untouched


def test_fold_keeps_batchnorm_after_an_activation() -> None:
    net = Network(
        [
            Reshape((8,), (2, 2, 2)),
            conv((2, 2, 2), 2, 1, act="relu"),
            BatchNorm((2, 2, 2)),
            Flatten((2, 2, 2)),
        ]
    )
    assert [la.kind for la in fold_batchnorm(net).layers] == ["reshape", "conv2d", "batchnorm", "flatten"]


def test_network_checks_shapes() -> None:
    with pytest.raises(ModelError, match=r"insert Flatten\(\(2, 2, 4\)\)"):
        Network([Reshape((8,), (2, 2, 2)), conv((2, 2, 2), 4, 1), Dense(rand(16, 3), rand(3))])
    with pytest.raises(ModelError, match=r"outputs samples of shape \(2, 2, 2\)"):
        Network([Reshape((8,), (2, 2, 2)), conv((2, 2, 3), 4, 1)])
    with pytest.raises(ModelError, match="start with Reshape"):
        Network([conv((2, 2, 2), 4, 1)])
    with pytest.raises(ValueError, match="shortcut"):
        Residual([conv((4, 4, 2), 3, 3, stride=2)], None)


def test_wrong_input_width_is_refused() -> None:
    net = architectures.digits_cnn()
    with pytest.raises(ValueError, match=r"expects batches of shape \(B, 64\), got \(2, 128\)"):
        net.forward(rand(2, 128))


def test_in_dim_is_the_product_of_shapes() -> None:
    net = architectures.ds_cnn_kws()
    assert net.in_dim == 490 and net.out_dim == 12
    assert net.layers[1].in_shape == (49, 10, 1) and net.layers[1].out_shape == (25, 5, 64)
    assert net.layers[1].in_dim == 490 and net.layers[1].out_dim == 25 * 5 * 64
    dense = Dense(rand(4, 3), rand(3))
    assert dense.in_shape == (4,) and dense.out_shape == (3,)


def test_costs_by_hand() -> None:
    c = conv((8, 8, 3), 16, 3, stride=2)  # out 4x4x16
    assert c.n_params() == 3 * 3 * 3 * 16 + 16
    assert c.macs() == 4 * 4 * 3 * 3 * 3 * 16
    dw = DepthwiseConv2D(rand(3, 3, 8), rand(8), (5, 5, 8), padding="valid")  # out 3x3x8
    assert (dw.n_params(), dw.macs()) == (3 * 3 * 8 + 8, 3 * 3 * 3 * 3 * 8)
    c1 = Conv1D(rand(5, 1, 32), rand(32), (40, 1), stride=2)  # out 20x32
    assert (c1.n_params(), c1.macs()) == (5 * 32 + 32, 20 * 5 * 32)
    assert MaxPool2D((4, 4, 2), 2).macs() == 0 and GlobalAveragePool((4, 4, 2)).n_params() == 0
    assert BatchNorm((4, 4, 2)).n_params() == 8
    # digits CNN: conv 8x8x(9*1*16) + conv 4x4x(9*16*32) + dense 32*10
    net = architectures.digits_cnn()
    assert net.macs() == 64 * 9 * 16 + 16 * 9 * 16 * 32 + 320
    assert net.n_params() == (9 * 16 + 16) + (9 * 16 * 32 + 32) + (32 * 10 + 10)


def test_mlperf_tiny_models_match_published_sizes() -> None:
    ds = architectures.ds_cnn_kws()
    # conv 10x4x1x64 + 4 x (dw 3x3x64 + pw 64x64) + dense 64x12, biases, and 4 stored vectors per BatchNorm channel
    assert ds.n_params() == 2624 + 4 * (640 + 4160) + 780 + 9 * 4 * 64 == 24908
    assert fold_batchnorm(ds).n_params() == 22604
    assert fold_batchnorm(ds).macs() == 25 * 5 * 64 * (40 + 4 * (9 + 64)) + 64 * 12 == 2656768
    r8 = architectures.resnet8()
    assert r8.n_params() == 78666
    assert fold_batchnorm(r8).n_params() == 78666 - 4 * (16 * 3 + 32 * 2 + 64 * 2)
    assert fold_batchnorm(r8).macs() == 12501632  # MLPerf Tiny quotes 12.5 M


def test_tflite_export_writes_a_cnn() -> None:
    # The layers are wired to the CONV_2D/pool builders (tests/test_cnn_export.py checks the numbers).
    assert network_to_tflite(architectures.digits_cnn())[4:8] == b"TFL3"
