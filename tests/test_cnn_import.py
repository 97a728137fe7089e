"""Bring your own CNN: ONNX and ``.tflite`` convolutional networks convert into the IR.

Round trips: our four architectures (random weights, BatchNorm statistics randomised so the folded
BatchNorms are not identities) exported to ONNX and to TFLite (float, int8, dynamic range) by our
exporters, imported back and run by the IR against ONNX Runtime / LiteRT on random inputs. Float
files match within 1e-4 (measured: at most 1.4e-6 of logits of size ~4); int8 and dynamic-range files
are imported with dequantised weights and match within their own quantisation error (measured on 64
random inputs: at most 2.2% of the largest logit, ResNet-8 int8; 1.6% from the original float
network) with the same argmax on 63/64 to 64/64 inputs and on every input whose top-2 margin is
above 5% of the largest logit. A CNN written the way PyTorch exports it (NCHW, Conv with pads,
BatchNormalization, MaxPool, a residual Add, GlobalAveragePool, Flatten, Gemm, Softmax) matches ONNX
Runtime within 1e-4; with three input channels the IR reads the row in NHWC order
(``Imported.input_order``). Blocking operators and layouts are refused by name. The bring-your-own path
fine-tunes a user's ONNX CNN (``prune``) and measures it on cpu-ort.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from ai_edge_litert.interpreter import Interpreter
from onnx import TensorProto, helper, numpy_helper

from harness.ir import architectures
from harness.ir.export.onnx_export import network_to_onnx_bytes
from harness.ir.export.prepare import quantisable
from harness.ir.export.tflite_export import (
    network_to_tflite,
    network_to_tflite_dynamic,
    network_to_tflite_int8,
)
from harness.ir.importers.common import NotConvertible
from harness.ir.importers.graph import fit_padding
from harness.ir.importers.onnx_import import onnx_to_network
from harness.ir.importers.tflite_import import tflite_to_network
from harness.ir.layers import BatchNorm, Conv2D, DepthwiseConv2D, Layer, Residual
from harness.ir.network import Network

ARCHS = ("digits_cnn", "mnist1d_cnn", "ds_cnn_kws", "resnet8")


def _randomise_bn(layers: list[Layer], rng: np.random.Generator) -> None:
    for la in layers:
        if isinstance(la, BatchNorm):
            c = la.gamma.size
            la.gamma[:] = rng.uniform(0.5, 1.5, c)
            la.beta[:] = rng.normal(0, 0.2, c)
            la.mean[:] = rng.normal(0, 0.2, c)
            la.var[:] = rng.uniform(0.5, 2.0, c)
        if isinstance(la, Residual):
            _randomise_bn(la.children, rng)


def _net(name: str) -> Network:
    net: Network = getattr(architectures, name)(seed=1)
    _randomise_bn(net.layers, np.random.default_rng(2))
    return net


def _x(net: Network, n: int = 16) -> np.ndarray:
    return np.random.default_rng(3).standard_normal((n, net.in_dim)).astype(np.float32)


def _ort(raw: bytes, x: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(raw, providers=["CPUExecutionProvider"])
    return np.asarray(s.run(None, {s.get_inputs()[0].name: x})[0])


def _litert(raw: bytes, x: np.ndarray) -> np.ndarray:
    it = Interpreter(model_content=raw)
    i = it.get_input_details()[0]
    it.resize_tensor_input(i["index"], x.shape)
    it.allocate_tensors()
    it.set_tensor(i["index"], x)
    it.invoke()
    return np.asarray(it.get_tensor(it.get_output_details()[0]["index"]))


@pytest.mark.parametrize("name", ARCHS)
def test_onnx_round_trip(name: str) -> None:
    net = _net(name)
    raw = network_to_onnx_bytes(net)
    imp = onnx_to_network(raw)
    x = _x(net)
    ref = _ort(raw, x)
    np.testing.assert_allclose(imp.net.forward(x), ref, atol=1e-4 * max(1.0, float(np.abs(ref).max())))
    np.testing.assert_allclose(
        imp.net.forward(x), net.forward(x), atol=1e-4 * max(1.0, float(np.abs(ref).max()))
    )
    assert imp.head == "none" and imp.net.in_dim == net.in_dim
    kinds = {la.kind for la in imp.net.layers}
    assert {"conv2d", "conv1d"} & kinds or name == "mnist1d_cnn"
    if name == "resnet8":
        assert sum(la.kind == "residual" for la in imp.net.layers) == 3


@pytest.mark.parametrize("kind", ["float", "int8", "dynamic"])
@pytest.mark.parametrize("name", ARCHS)
def test_tflite_round_trip(name: str, kind: str) -> None:
    net = _net(name)
    x = _x(net, 64)
    if kind == "float":
        raw = network_to_tflite(net)
    elif kind == "dynamic":
        raw = network_to_tflite_dynamic(net)
    else:
        form, q = quantisable(net, x)
        raw = network_to_tflite_int8(form, q)
    imp = tflite_to_network(raw)
    ref, got = _litert(raw, x), imp.net.forward(x)
    scale = max(1.0, float(np.abs(ref).max()))
    if kind == "float":
        np.testing.assert_allclose(got, ref, atol=1e-4 * scale)
    else:  # dequantised weights: the float function the quantised file approximates
        assert 0 < np.abs(got - ref).max() < 0.05 * scale
        assert np.abs(got - net.forward(x)).max() < 0.05 * scale  # close to the original float weights
        agree = got.argmax(1) == ref.argmax(1)
        top = np.sort(ref, 1)
        decisive = top[:, -1] - top[:, -2] > 0.05 * scale
        assert agree.mean() >= 0.95 and decisive.sum() >= 16 and agree[decisive].all()
    if name == "resnet8":
        assert sum(la.kind == "residual" for la in imp.net.layers) == 3


# --- a CNN written the way PyTorch exports it (NCHW) ---


def _init(name: str, a: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(a, np.float32), name)


def torch_like_cnn(seed: int = 0, head: str = "gap", channels: int = 1, extra: str | None = None) -> bytes:
    """NCHW ``(N, channels, 8, 8)``: conv3x3 p1 + BN + relu, maxpool, conv3x3 s2 p1 + relu, a residual
    (depthwise 3x3 + relu + 1x1) + relu, then GlobalAveragePool + Flatten or Flatten alone, Gemm, Softmax."""
    rng = np.random.default_rng(seed)
    h = helper
    inits = [
        _init("c1.w", rng.normal(0, 0.5, (8, channels, 3, 3))),
        _init("c1.b", rng.normal(0, 0.1, 8)),
        _init("bn.s", rng.uniform(0.5, 1.5, 8)),
        _init("bn.b", rng.normal(0, 0.2, 8)),
        _init("bn.m", rng.normal(0, 0.2, 8)),
        _init("bn.v", rng.uniform(0.5, 2, 8)),
        _init("c2.w", rng.normal(0, 0.3, (16, 8, 3, 3))),
        _init("c2.b", rng.normal(0, 0.1, 16)),
        _init("dw.w", rng.normal(0, 0.3, (16, 1, 3, 3))),
        _init("dw.b", rng.normal(0, 0.1, 16)),
        _init("pw.w", rng.normal(0, 0.3, (16, 16, 1, 1))),
        _init("pw.b", rng.normal(0, 0.1, 16)),
        _init("fc.w", rng.normal(0, 0.3, (10, 16 if head == "gap" else 64))),  # (out, in), transB=1
        _init("fc.b", rng.normal(0, 0.1, 10)),
    ]
    nodes = [
        h.make_node(
            "Conv", ["input", "c1.w", "c1.b"], ["a1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]
        ),
        h.make_node(
            "BatchNormalization", ["a1", "bn.s", "bn.b", "bn.m", "bn.v"], ["a2"], name="bn1", epsilon=1e-5
        ),
        h.make_node("Relu", ["a2"], ["a3"], name="relu1"),
        h.make_node("MaxPool", ["a3"], ["a4"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        h.make_node(
            "Conv",
            ["a4", "c2.w", "c2.b"],
            ["a5"],
            name="conv2",
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
        ),
        h.make_node("Relu", ["a5"], ["a6"], name="relu2"),
        h.make_node(
            "Conv",
            ["a6", "dw.w", "dw.b"],
            ["b1"],
            name="dw",
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            group=16,
        ),
        h.make_node("Clip", ["b1", "lo", "hi"], ["b2"], name="relu6"),
        h.make_node("Conv", ["b2", "pw.w", "pw.b"], ["b3"], name="pw", kernel_shape=[1, 1]),
        h.make_node("Add", ["b3", "a6"], ["b4"], name="add"),
        h.make_node("Relu", ["b4"], ["b5"], name="relu3"),
    ]
    inits += [_init("lo", np.array(0.0)), _init("hi", np.array(6.0))]
    last = "b5"
    if extra is not None:
        nodes.append(h.make_node(extra, [last], ["e1"], name="blocker"))
        last = "e1"
    if head == "gap":
        nodes.append(h.make_node("GlobalAveragePool", [last], ["g1"], name="gap"))
        last = "g1"
    nodes += [
        h.make_node("Flatten", [last], ["f1"], name="flatten", axis=1),
        h.make_node("Gemm", ["f1", "fc.w", "fc.b"], ["logits"], name="fc", transB=1),
        h.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
    ]
    g = h.make_graph(
        nodes,
        "torch_like",
        [h.make_tensor_value_info("input", TensorProto.FLOAT, ["N", channels, 8, 8])],
        [h.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    onnx.checker.check_model(m)
    return m.SerializeToString()


@pytest.mark.parametrize("head", ["gap", "flatten"])
def test_pytorch_style_nchw_cnn_matches_onnx_runtime(head: str) -> None:
    raw = torch_like_cnn(head=head)
    imp = onnx_to_network(raw)
    x = np.random.default_rng(4).standard_normal((32, 64)).astype(np.float32)
    probs = _ort(raw, x.reshape(-1, 1, 8, 8))
    z = imp.net.forward(x)
    p = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(p / p.sum(1, keepdims=True), probs, atol=1e-5)
    assert imp.head == "softmax"
    kinds = [la.kind for la in imp.net.layers]
    assert kinds[:2] == ["reshape", "conv2d"] and "residual" in kinds and "batchnorm" in kinds
    res = next(la for la in imp.net.layers if isinstance(la, Residual))
    assert isinstance(res.body[0], DepthwiseConv2D) and res.body[0].act == "relu6" and not res.shortcut
    # conv2 (stride 2, pads 1 on both sides) became a SAME 4x4 kernel: the 3x3 one and a zero last row/column
    conv2 = [la for la in imp.net.layers if isinstance(la, Conv2D)][1]
    assert conv2.w.shape[:2] == (4, 4) and conv2.padding == "same"
    assert not conv2.w[3].any() and not conv2.w[:, 3].any() and conv2.w[:3, :3].all()


def test_fit_padding() -> None:
    assert fit_padding([8], [3], [1], [1], [1]) == ("same", [3], [0])  # PyTorch padding=1 is SAME
    assert fit_padding([8], [3], [2], [1], [1]) == ("same", [4], [0])  # stride 2: a larger kernel
    assert fit_padding([8], [3], [1], [0], [0]) == ("valid", [3], [0])
    assert fit_padding([7], [3], [2], [1], [1]) == ("same", [3], [0])  # odd size: SAME already


def test_multichannel_nchw_input_reads_a_reordered_row() -> None:
    raw = torch_like_cnn(channels=3)
    imp = onnx_to_network(raw)
    x = np.random.default_rng(6).standard_normal((32, 3, 8, 8)).astype(np.float32)
    nhwc = x.transpose(0, 2, 3, 1).reshape(32, -1)
    assert imp.input_order is not None and np.array_equal(imp.rows(x), nhwc)
    assert imp.net.layers[0].out_shape == (8, 8, 3)
    z = imp.net.forward(imp.rows(x))
    p = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(p / p.sum(1, keepdims=True), _ort(raw, x), atol=1e-5)
    assert not np.allclose(imp.net.forward(x.reshape(32, -1)), z, atol=1e-3)  # the file's NCHW order differs


def test_transpose_of_a_computed_tensor_is_refused_by_name() -> None:
    h = helper
    rng = np.random.default_rng(0)
    g = h.make_graph(
        [
            h.make_node("Conv", ["x", "w"], ["a"], name="conv", kernel_shape=[1, 1]),
            h.make_node("Relu", ["a"], ["b"], name="relu"),  # b: NCHW (N, 4, 2, 2)
            h.make_node("Conv", ["b", "w2"], ["c"], name="conv_hw", kernel_shape=[1, 1]),
            h.make_node("Transpose", ["c"], ["d"], name="swap", perm=[0, 2, 1, 3]),  # (N, 2, 4, 2)
            h.make_node("Conv", ["d", "w3"], ["e"], name="conv_bad", kernel_shape=[1, 1]),
            h.make_node("Flatten", ["e"], ["f"], name="flat"),
        ],
        "g",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 2, 2])],
        [h.make_tensor_value_info("f", TensorProto.FLOAT, ["N", 16])],
        [
            _init("w", rng.normal(size=(4, 1, 1, 1))),
            _init("w2", rng.normal(size=(4, 4, 1, 1))),
            _init("w3", rng.normal(size=(4, 2, 1, 1))),
        ],
    )
    with pytest.raises(NotConvertible, match=r"Conv node 'conv_bad'.*transpos"):
        onnx_to_network(h.make_model(g))


@pytest.mark.parametrize("op", ["Resize", "Elu"])
def test_unsupported_operator_is_named(op: str) -> None:
    raw = torch_like_cnn(extra=op)
    with pytest.raises(NotConvertible, match=rf"operator {op} \(node 'blocker'\)") as e:
        onnx_to_network(raw)
    assert e.value.op == op


def test_lstm_is_named() -> None:
    h = helper
    g = h.make_graph(
        [h.make_node("LSTM", ["x", "w", "r"], ["y"], name="lstm", hidden_size=4, layout=1)],
        "g",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 3])],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5, 1, 4])],
        [_init("w", np.zeros((1, 16, 3))), _init("r", np.zeros((1, 16, 4)))],
    )
    with pytest.raises(NotConvertible, match=r"operator LSTM \(node 'lstm'\)"):
        onnx_to_network(h.make_model(g))


# --- end to end: a user's ONNX CNN through the bring-your-own path ---

SUITE = """
[suite]
name = "byo-cnn"
[run]
warmup_s = 0.01
window_s = 0.03
min_windows = 2
max_windows = 2
ci_target = 0.9

[[tasks]]
name = "cnn"
model = "cnn.onnx"
data = "digits.npz"
metric = "accuracy"
min_accuracy = 0.0
why_min = "random initial weights: the test checks that fine-tuning runs, not a quality figure"

[[variants]]
name = "fp32"
technique = "fp32"

[[variants]]
name = "prune-ft"
technique = "prune"
params = { sparsity = 0.5, epochs = 6, steps = 1 }

[[targets]]
name = "cpu-ort"
kind = "cpu"
runtime = "ort"
"""


@pytest.mark.slow
def test_byo_onnx_cnn_is_fine_tuned(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    from harness.pipeline.runner import run_suite
    from harness.results.store import Store
    from harness.suite import load_suite

    x, y = load_digits(return_X_y=True)
    x = (x / 16).astype(np.float32).reshape(-1, 1, 8, 8)
    x = np.concatenate([x, x**2, 1 - x], axis=1)  # three channels, NCHW: the IR reads them reordered
    raw = torch_like_cnn(seed=5, channels=3)
    (tmp_path / "cnn.onnx").write_bytes(raw)
    np.savez(tmp_path / "digits.npz", x_eval=x[1400:], y_eval=y[1400:], x_train=x[:1400], y_train=y[:1400])
    (tmp_path / "s.toml").write_text(SUITE)
    run_suite(load_suite(tmp_path / "s.toml"), tmp_path / "r.sqlite", cache=tmp_path / "cache")
    with Store.open(tmp_path / "r.sqlite", create=False) as s:
        rows: dict[str, Any] = {r.variant: r.columns() for r in s.results()}
    fp, ft = rows["fp32"], rows["prune-ft"]
    assert fp["status"] == "done" and ft["status"] == "done", (fp["reason"], ft["reason"])
    assert ft["fine_tuned"] == 1 and fp["fine_tuned"] == 0
    assert ft["variant_meta"]["architecture"].startswith("192-reshape-8x8x3-conv2d")
    file_acc = float((_ort(raw, x[1400:]).argmax(1) == y[1400:]).mean())  # the user's file, NCHW rows
    assert fp["accuracy"] == pytest.approx(file_acc, abs=1.5 / len(x[1400:]))
    assert ft["accuracy"] > fp["accuracy"] + 0.1  # trained on the user's data, from random weights
