"""Convolutional IR networks exported to ONNX and TFLite (float, int8, dynamic-range) and run by ONNX
Runtime and LiteRT compute what the NumPy forward pass computes.

Networks: the digits CNN and the MNIST-1D CNN (1-D convolutions; trained here on the 8x8 digits read
as 64-sample sequences, as no MNIST-1D data ships with the tests) trained for 20 epochs, and DS-CNN
(keyword spotting) and ResNet-8 with their random He weights and BatchNorm statistics set from one
batch of their (Gaussian) inputs, so that activations are normalised as after training.

Measured (these seeds, 397 digits eval rows, 96 DS-CNN and 48 ResNet-8 rows): float TFLite and ONNX
within 8e-6 of NumPy. Trained nets, argmax agreement with the float pass / accuracy (float 0.912
digits, 0.935 MNIST-1D CNN): int8 TFLite 0.992 / 0.912 and 1.000 / 0.935; dynamic-range TFLite
0.995 / 0.914 and 1.000 / 0.935; ORT QDQ 0.992 / 0.914 and 0.997 / 0.932; ORT dynamic 0.995 / 0.914
and 0.997 / 0.932. Untrained nets (DS-CNN, ResNet-8): agreement 0.94-0.99 overall, 1.000 on the clear
decisions, RMS logit error 1-5 % of the logits' RMS.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from sklearn.datasets import load_digits

from harness.compress.int8 import Int8
from harness.ir import architectures
from harness.ir.data import Dataset
from harness.ir.export.onnx_export import network_to_onnx_bytes
from harness.ir.export.prepare import export_form, quantisable
from harness.ir.export.tflite_export import (
    network_to_tflite,
    network_to_tflite_dynamic,
    network_to_tflite_int8,
)
from harness.ir.layers import (
    Activation,
    AvgPool2D,
    BatchNorm,
    Conv1D,
    Conv2D,
    Dense,
    Flatten,
    GlobalAveragePool,
    Layer,
    Reshape,
    Residual,
)
from harness.ir.model import Model
from harness.ir.network import Network
from harness.ir.quant import calibrate
from harness.ir.train import train_network
from harness.runtimes.litert import LiteRtRuntime
from harness.runtimes.ort import OrtRuntime

NAMES = ["digits_cnn", "mnist1d_cnn", "ds_cnn_kws", "resnet8"]
TRAINED = ("digits_cnn", "mnist1d_cnn")


@cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y.astype(np.int64)


def _set_batchnorm_statistics(net: Network, x: np.ndarray) -> None:
    """Random affine parameters, running statistics of one batch (what a short training run leaves)."""
    rng = np.random.default_rng(1)
    bns: list[BatchNorm] = []

    def collect(layers: list[Layer]) -> None:
        for la in layers:
            if isinstance(la, BatchNorm):
                bns.append(la)
            if isinstance(la, Residual):
                collect(la.children)

    collect(net.layers)
    for bn in bns:
        n = bn.gamma.size
        bn.gamma[:] = rng.uniform(0.5, 1.5, n)
        bn.beta[:] = rng.normal(0.0, 0.2, n)
        bn.momentum = 0.0  # the running statistics become this batch's
    y = x
    for la in net.layers:
        y = la.train_forward(y)[0] if hasattr(la, "train_forward") else la.forward(y)


@cache
def case(name: str) -> tuple[Network, np.ndarray, np.ndarray | None, np.ndarray]:
    """``(net, x_eval, y_eval or None, x_calib)`` for one architecture."""
    if name in TRAINED:
        x, y = _digits()
        net = (
            architectures.digits_cnn(seed=0)
            if name == "digits_cnn"
            else architectures.mnist1d_cnn(seed=0, length=64)
        )
        train_network(net, x[:1400], y[:1400], epochs=20, lr=1e-2, batch_size=32, seed=0, schedule="cosine")
        return net, x[1400:], y[1400:], x[:256]
    rng = np.random.default_rng(0)
    net = architectures.ds_cnn_kws() if name == "ds_cnn_kws" else architectures.resnet8()
    n = 96 if name == "ds_cnn_kws" else 48
    x = rng.standard_normal((n + 64, net.in_dim)).astype(np.float32)
    _set_batchnorm_statistics(net, x[n:])
    return net, x[:n], None, x[n:]


def run_tflite(model: bytes, x: np.ndarray, *, ref: bool = False) -> np.ndarray:
    kw = {"experimental_op_resolver_type": OpResolverType.BUILTIN_REF} if ref else {}
    it = Interpreter(model_content=model, **kw)
    d = it.get_input_details()[0]
    it.resize_tensor_input(d["index"], list(x.shape))
    it.allocate_tensors()
    it.set_tensor(d["index"], x)
    it.invoke()
    return np.array(it.get_tensor(it.get_output_details()[0]["index"]))


def run_onnx(model: bytes, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {sess.get_inputs()[0].name: x})[0])


def check_tracks(name: str, out: np.ndarray, what: str) -> None:
    """Quantised outputs ``out`` against the float NumPy pass.

    Trained nets: argmax agreement ≥ 0.97 and accuracy within 2 points. Untrained nets have near-tied
    logits (median top-2 margin 9 % of the logits' RMS for ResNet-8), so quantisation noise flips some
    near ties; there: RMS logit error ≤ 5 % of the logits' RMS, agreement ≥ 0.97 on the clear decisions
    (top-2 margin above 10 % of that RMS, at least a third of the samples) and ≥ 0.9 on all.
    """
    net, x, y, _ = case(name)
    ref = net.forward(x)
    same = out.argmax(1) == ref.argmax(1)
    if y is not None:
        assert same.mean() >= 0.97, f"{name} {what}: argmax agreement {same.mean():.3f}"
        acc_ref, acc = float((ref.argmax(1) == y).mean()), float((out.argmax(1) == y).mean())
        assert acc_ref > 0.85, f"{name} did not train ({acc_ref:.3f})"
        assert abs(acc - acc_ref) <= 0.02, f"{name} {what}: accuracy {acc:.3f} vs float {acc_ref:.3f}"
        return
    rms = float(np.sqrt((ref.astype(np.float64) ** 2).mean()))
    rel = float(np.sqrt(((out - ref).astype(np.float64) ** 2).mean())) / rms
    top2 = np.sort(ref, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.1 * rms
    assert rel <= 0.05, f"{name} {what}: RMS logit error {rel:.3f} of the logits' RMS"
    assert clear.sum() >= len(x) // 3, f"{name}: only {clear.sum()} clear decisions"
    assert same[clear].mean() >= 0.97, f"{name} {what}: agreement {same[clear].mean():.3f} on clear decisions"
    assert same.mean() >= 0.9, f"{name} {what}: argmax agreement {same.mean():.3f}"


@pytest.mark.parametrize("name", NAMES)
def test_float_exports_match_numpy(name: str) -> None:
    net, x, _, _ = case(name)
    ref = net.forward(x)
    np.testing.assert_allclose(run_tflite(network_to_tflite(net), x), ref, atol=1e-4, rtol=0)
    np.testing.assert_allclose(run_onnx(network_to_onnx_bytes(net), x), ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_int8_tflite_tracks_float(name: str) -> None:
    net, x, _, x_calib = case(name)
    form, act_q = quantisable(net, x_calib)
    check_tracks(name, run_tflite(network_to_tflite_int8(form, act_q), x), "int8 tflite")


@pytest.mark.parametrize("name", NAMES)
def test_dynamic_range_tflite_tracks_float(name: str) -> None:
    net, x, _, _ = case(name)
    model = network_to_tflite_dynamic(net)
    check_tracks(name, run_tflite(model, x), "dynamic-range tflite")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_ort_int8_tracks_float(name: str, mode: str) -> None:
    net, x, y, x_calib = case(name)
    data = Dataset(name, x, y if y is not None else np.zeros(len(x), np.int64), x_calib)
    out = Int8(mode=mode, calib_samples=64).fit(Model(net=net), data).transform(Model(net=net))
    ops = {n.op_type for n in onnx.load_from_string(out.files["onnx"]).graph.node}
    assert ("QuantizeLinear" in ops) if mode == "static" else ("ConvInteger" in ops), ops
    check_tracks(name, run_onnx(out.files["onnx"], x), f"ORT {mode} int8")


def _interpreters(model: bytes, x: np.ndarray, resolvers: list[OpResolverType]) -> list[Interpreter]:
    out = []
    for r in resolvers:
        it = Interpreter(
            model_content=model, experimental_op_resolver_type=r, experimental_preserve_all_tensors=True
        )
        d = it.get_input_details()[0]
        it.resize_tensor_input(d["index"], list(x.shape))
        it.allocate_tensors()
        it.set_tensor(d["index"], x)
        it.invoke()
        out.append(it)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_optimised_kernels_agree_with_reference_within_one_lsb_per_op(name: str) -> None:
    # LiteRT's optimised int8 kernels (without the XNNPACK delegate, whose fused ops hide the tensors
    # between them) against its reference kernels, op by op: every op whose int8 inputs are the same
    # in both runs writes int8 outputs within 1 LSB. Differences do propagate: at the network output
    # they reach 1 (digits, MNIST-1D, DS-CNN) and 3 (ResNet-8, through three residual ADDs) LSB.
    net, x, _, x_calib = case(name)
    form, act_q = quantisable(net, x_calib)
    opt, ref = _interpreters(
        network_to_tflite_int8(form, act_q),
        x,
        [OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, OpResolverType.BUILTIN_REF],
    )
    details = opt.get_tensor_details()
    checked = 0
    for op in opt._get_ops_details():
        ins = [i for i in op["inputs"] if i >= 0 and details[i]["dtype"] == np.int8]
        outs = [o for o in op["outputs"] if details[o]["dtype"] == np.int8]
        if not outs or any(not np.array_equal(opt.get_tensor(i), ref.get_tensor(i)) for i in ins):
            continue
        for o in outs:
            d = np.abs(opt.get_tensor(o).astype(np.int32) - ref.get_tensor(o).astype(np.int32)).max()
            assert d <= 1, f"{name}: {op['op_name']} output {details[o]['name']} differs by {d} LSB"
            checked += 1
    assert checked >= 3, f"{name}: only {checked} ops had equal inputs"


@pytest.mark.parametrize("name", NAMES)
def test_default_path_tracks_reference_kernels(name: str) -> None:
    # The default path (XNNPACK delegate) rounds its requantisation differently (≤ 1 LSB per op in
    # tests/test_cnn_tflite.py); at the network output the difference measured 2, 1, 8 and 4 LSB for
    # the four networks, with the same decisions.
    net, x, _, x_calib = case(name)
    form, act_q = quantisable(net, x_calib)
    model = network_to_tflite_int8(form, act_q)
    lsb = float(np.float32(act_q[-1].scale))
    default, ref = run_tflite(model, x), run_tflite(model, x, ref=True)
    assert np.abs(default - ref).max() / lsb <= 16
    assert (default.argmax(1) == ref.argmax(1)).mean() >= 0.97


def test_int8_compressor_digits_runs_on_both_runtimes(tmp_path: Path) -> None:
    net, x, y, x_calib = case("digits_cnn")
    assert y is not None
    data = Dataset("digits", x, y, x_calib)
    out = Int8(mode="static").fit(Model(net=net), data).transform(Model(net=net))
    assert set(out.files) == {"onnx", "tflite"} and out.act_q is not None
    acc_ref = float((net.forward(x).argmax(1) == y).mean())
    for fmt, runtime in (("onnx", OrtRuntime), ("tflite", LiteRtRuntime)):
        path = tmp_path / f"m.{fmt}"
        path.write_bytes(out.files[fmt])
        rt = runtime(path, threads=1, batch=len(x))
        acc = float((rt.run(x).argmax(1) == y).mean())
        assert abs(acc - acc_ref) <= 0.02, (fmt, acc, acc_ref)


# Layers and structures the four architectures do not use


def _odd_net() -> Network:
    """Conv1D, a BatchNorm that cannot fold (after a relu conv), a standalone relu6, SAME avg pooling,
    nested residual blocks with identity and conv shortcuts, and 1-D global average pooling."""
    rng = np.random.default_rng(3)

    def conv(shape: tuple[int, ...], c: int, k: int = 3, act: str | None = None, stride: int = 1) -> Conv2D:
        w = rng.standard_normal((k, k, shape[-1], c)).astype(np.float32) * np.sqrt(2 / (k * k * shape[-1]))
        b = rng.normal(0, 0.1, c).astype(np.float32)
        return Conv2D(w, b, shape, stride=stride, act=act)

    s = (8, 8, 2)
    c1 = conv(s, 8, act="relu")
    bn = BatchNorm(
        c1.out_shape,
        rng.uniform(0.5, 1.5, 8),
        rng.normal(0, 0.2, 8),
        rng.normal(0.5, 0.1, 8),
        rng.uniform(0.5, 1.0, 8),
    )
    act = Activation("relu6", c1.out_shape)
    pool = AvgPool2D(c1.out_shape, 3, stride=2, padding="same")
    p = pool.out_shape
    inner = Residual([conv(p, 8, act="relu"), conv(p, 8)], None, "relu")
    outer = Residual([inner, conv(p, 16, stride=2)], [conv(p, 16, 1, stride=2)], None)
    o = outer.out_shape
    to_seq = Reshape(o, (o[0] * o[1], o[2]))
    w1 = rng.standard_normal((3, o[2], 8)).astype(np.float32) * 0.3
    c1d = Conv1D(w1, np.zeros(8, np.float32), to_seq.out_shape, act="relu")
    gap = GlobalAveragePool(c1d.out_shape)
    head = Dense(rng.standard_normal((8, 5)).astype(np.float32), np.zeros(5, np.float32))
    return Network([Reshape((128,), s), c1, bn, act, pool, outer, to_seq, c1d, gap, head])


def test_unusual_layers_export_in_every_form() -> None:
    net = _odd_net()
    rng = np.random.default_rng(4)
    x, x_calib = (
        rng.standard_normal((64, 128)).astype(np.float32),
        rng.standard_normal((128, 128)).astype(np.float32),
    )
    ref = net.forward(x)
    assert export_form(net).layers[2].kind == "batchnorm"  # a BatchNorm after a relu conv stays
    np.testing.assert_allclose(run_tflite(network_to_tflite(net), x), ref, atol=1e-4, rtol=0)
    np.testing.assert_allclose(run_onnx(network_to_onnx_bytes(net), x), ref, atol=1e-4, rtol=0)
    scale = float(np.abs(ref).max())
    dyn = run_tflite(network_to_tflite_dynamic(net), x)
    assert np.abs(dyn - ref).max() < 0.05 * scale
    form, act_q = quantisable(net, x_calib)
    int8 = run_tflite(network_to_tflite_int8(form, act_q), x)
    assert np.abs(int8 - ref).max() < 0.1 * scale, np.abs(int8 - ref).max() / scale
    assert float((int8.argmax(1) == ref.argmax(1)).mean()) >= 0.9


def test_int8_export_refuses_parameters_of_another_form() -> None:
    net, _, _, x_calib = case("ds_cnn_kws")
    with pytest.raises(ValueError, match="quantisable"):
        network_to_tflite_int8(net, calibrate(net, x_calib))  # calibrated with BatchNorm unfolded
    r8, _, _, x8 = case("resnet8")
    form = export_form(r8)
    act_q = calibrate(export_form(r8), x8[:8])  # another folded copy: its blocks hold the inner_q
    with pytest.raises(ValueError, match="inside the block"):
        network_to_tflite_int8(form, act_q)


def test_exports_fold_batchnorm() -> None:
    net, _, _, _ = case("resnet8")
    ops = {n.op_type for n in onnx.load_from_string(network_to_onnx_bytes(net)).graph.node}
    assert "Mul" not in ops and "Conv" in ops, ops  # no BatchNorm scale left
    plain = Network([Reshape((12,), (2, 2, 3)), Flatten((2, 2, 3))])
    assert export_form(plain) is plain  # nothing to fold: the network itself
