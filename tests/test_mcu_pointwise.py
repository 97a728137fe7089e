"""Sparse (CSR) and Monarch pointwise convolutions of blob version 2 without QEMU: the codec keeps
their integers, the Monarch op is the MLP blob's Monarch layer at every pixel, and a pruned CNN
variant's 1x1 convolutions become sparse ops with the same outputs. The firmware's bit-exactness on
these ops is in test_mcu_conv_runtime.py (kinds pw-sparse and pw-monarch)."""

from __future__ import annotations

import numpy as np
import pytest
from mcu_graph_support import random_graph

from harness.ir import architectures
from harness.ir.layers import Conv2D, Layer, Monarch
from harness.ir.layers.pointwise import Pointwise
from harness.ir.network import Network
from harness.mcu.blob.codec import graph_blob, network_graph, read_any_blob
from harness.mcu.blob.container import BlobError
from harness.mcu.blob.factored import monarch_forward
from harness.mcu.blob.graph import QGraph
from harness.mcu.blob.graph_codec import _monarch_qlayer, read_graph_blob, write_graph_blob
from harness.mcu.blob.pointwise import sparsify_pointwise
from harness.mcu.graph_ref import run_graph, run_graph_all
from harness.mcu.plan import plan
from harness.mcu.random_graph import GraphBuilder, resnet8


def _x(g: QGraph, seed: int, n: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, size=(n, g.in_tensor.size)).astype(np.int8)


@pytest.mark.parametrize("kind", ["pw-sparse", "pw-monarch"])
def test_codec_keeps_the_integers(kind: str) -> None:
    g = random_graph(kind, np.random.default_rng(7))
    plan(g)
    back = read_graph_blob(write_graph_blob(g))
    assert [op.kind for op in back.ops] == [op.kind for op in g.ops]
    for a, b in zip(g.ops, back.ops, strict=True):
        assert a.params.keys() == b.params.keys() and a.attrs == b.attrs
        for key in a.params:
            np.testing.assert_array_equal(
                np.asarray(a.params[key]).reshape(-1), np.asarray(b.params[key]).reshape(-1)
            )
    x = _x(g, 1)
    want = run_graph(g, x)
    assert want.std() > 2
    np.testing.assert_array_equal(run_graph(back, x), want)


def test_monarch_pointwise_is_the_mlp_monarch_layer_at_every_pixel() -> None:
    b = GraphBuilder(np.random.default_rng(3), (4, 3, 32))
    g = b.graph(b.pw_monarch(b.input, 48, 8, 4, "relu"))
    x = _x(g, 2)
    y = run_graph(g, x).reshape(-1, 48)
    assert y.std() > 2
    ql = _monarch_qlayer(g, g.ops[0])
    ql.act = 1  # ReLU clamp at the zero point, as the op's act_min
    np.testing.assert_array_equal(y, monarch_forward(ql, x.reshape(-1, 32)))


def test_monarch_blocks_must_be_multiples_of_4() -> None:
    b = GraphBuilder(np.random.default_rng(3), (2, 2, 24))
    g = b.graph(b.pw_monarch(b.input, 24, 4, 4))  # p = 6
    plan(g)
    with pytest.raises(BlobError, match="multiples of 4"):
        write_graph_blob(g)


def test_pruned_cnn_variant_runs_its_pointwise_convolutions_sparse() -> None:
    net = architectures.ds_cnn_kws()
    pw = [la for la in net.layers if isinstance(la, Conv2D) and la.w.shape[:2] == (1, 1)]
    assert len(pw) == 4
    for la in pw:  # 90 % magnitude pruning, as the pruning compressor leaves the kernels
        la.w[np.abs(la.w) < np.quantile(np.abs(la.w), 0.9)] = 0
    rng = np.random.default_rng(1)
    g = network_graph(net, rng.standard_normal((32, net.in_dim)).astype(np.float32))
    x = _x(g, 4, 3)
    want = run_graph_all(g, x)
    back = read_any_blob(graph_blob(g))  # the blob the MCU target uploads
    assert isinstance(back, QGraph)
    assert [op.kind for op in back.ops].count("pwconv_csr") == 4 and any("CSR" in n for n in g.notes)
    np.testing.assert_array_equal(run_graph(back, x), want[g.output])


def test_dense_and_strided_1x1_convolutions_stay_dense() -> None:
    g = resnet8(np.random.default_rng(0))  # dense 1x1 shortcuts with stride 2
    kinds = [op.kind for op in g.ops]
    assert sparsify_pointwise(g) == 0 and [op.kind for op in g.ops] == kinds
    for cin, density, sparse in ((64, 0.1, True), (64, 0.4, False), (16, 0.1, False)):
        b = GraphBuilder(np.random.default_rng(5), (3, 3, cin))
        b.pw_sparse(b.input, 8, density)
        g = b.graph(len(b.tensors) - 1)
        g.ops[0].kind = "conv2d"  # as the TFLite importer gives a pruned 1x1 convolution
        g.ops[0].attrs = {"stride_h": 1, "stride_w": 1, "pad_top": 0, "pad_left": 0}
        assert sparsify_pointwise(g) == int(sparse) and (g.ops[0].kind == "pwconv_csr") == sparse, (
            cin,
            density,
        )


def _monarch_kws() -> Network:
    """The DS-CNN with its four 64->64 pointwise convolutions factored as Monarch (8 blocks), as the
    factorising compressor leaves them (closed-form projection, no fine-tuning)."""
    net = architectures.ds_cnn_kws()
    layers: list[Layer] = []
    for la in net.layers:
        if isinstance(la, Conv2D) and la.w.shape[:2] == (1, 1):
            inner = Monarch.from_dense(la.w.reshape(la.w.shape[2:]), la.b, None, 8, 8)
            la = Pointwise(inner, la.in_shape, la.act)
        layers.append(la)
    return Network(layers)


def test_monarch_cnn_variant_becomes_an_operator_graph() -> None:
    net = _monarch_kws()
    rng = np.random.default_rng(2)
    x_calib = rng.standard_normal((32, net.in_dim)).astype(np.float32)
    g = network_graph(net, x_calib)
    assert [op.kind for op in g.ops].count("pwconv_monarch") == 4
    assert any("Monarch" in n for n in g.notes)
    x = rng.standard_normal((16, net.in_dim)).astype(np.float32)
    y = run_graph(g, g.quantize_input(x))
    back = read_any_blob(graph_blob(g))
    assert isinstance(back, QGraph)
    np.testing.assert_array_equal(run_graph(back, g.quantize_input(x)), y)  # the blob holds the same op
    # the int8 graph tracks the float network it came from
    ref, got = net.forward(x), g.dequantize_output(y.reshape(len(x), -1))
    assert np.abs(got - ref).max() < 0.15 * np.abs(ref).max()
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.75
