"""int8 ``.tflite`` CNNs → :class:`QGraph` (their own quantisation) and the NumPy interpreter, bit-exact
with LiteRT's reference kernels (``BUILTIN_REF``) tensor by tensor on random int8 inputs.

Models: the four convolutional architectures exported by our int8 TFLite exporter (untrained, with
activation parameters calibrated on Gaussian rows; bit-exactness does not depend on training),
hand-built graphs for the operator options the architectures do not use (per-tensor weights, fused
RELU6, standalone RELU/RELU6, int8 requantising QUANTIZE, MEAN with keep_dims, SAME/VALID pools with
strides, an int8 interface, a SOFTMAX head), and the int8 wake-word models that ship inside the
``pymicro-wakeword`` wheel: streaming models whose state lives in resource variables, refused by
name (no runnable int8 CNN ships in the wheels installed here or in tflite-micro's and
pymicro-vad's).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as tfl
from ai_edge_litert.interpreter import Interpreter

from harness.ir import architectures
from harness.ir.export import tflite_conv as tc
from harness.ir.export.prepare import quantisable
from harness.ir.export.tflite_export import network_to_tflite_int8
from harness.ir.export.tflite_graph import (
    TfliteGraph,
    depthwise_conv2d_options,
    reducer_options,
)
from harness.ir.model import Variant
from harness.ir.network import Network
from harness.ir.quant import QParams, activation_qparams
from harness.mcu.blob.codec import needs_graph, network_graph, variant_graph
from harness.mcu.blob.container import BlobError
from harness.mcu.blob.graph import OP_KINDS, QGraph
from harness.mcu.blob.tflite_graph import tflite_graph
from harness.mcu.graph_ref import run_graph, run_graph_all
from harness.mcu.litert_ref import reference_interpreter

ARCHS = ["digits_cnn", "mnist1d_cnn", "ds_cnn_kws", "resnet8"]


def _interpreter(model: bytes, x: np.ndarray) -> Interpreter:
    return reference_interpreter(model, x)


def assert_bit_exact(model: bytes, g: QGraph, x: np.ndarray) -> int:
    """Every tensor ``run_graph_all`` computes equals LiteRT's reference-kernel tensor of that name;
    ``x`` is what LiteRT takes (float rows before a QUANTIZE, or int8). Returns tensors compared."""
    it = _interpreter(model, x)
    index = {d["name"]: d["index"] for d in it.get_tensor_details()}
    xq = it.get_tensor(index[g.in_tensor.name])
    vals = run_graph_all(g, xq)
    compared = 0
    for t, v in zip(g.tensors, vals, strict=True):
        if v is None:
            continue
        ref = it.get_tensor(index[t.name]).reshape(v.shape)
        diff = np.abs(ref.astype(np.int32) - v.astype(np.int32)).max()
        where = next((op.where for op in g.ops if g.tensors[op.output] is t), "input")
        assert diff == 0, f"{where}: differs from LiteRT's reference kernels by {diff} LSB"
        compared += 1
    out = run_graph(g, xq)
    assert out.dtype == np.int8 and out.shape == (len(xq), *g.out_tensor.shape)
    return compared


@cache
def _arch(name: str) -> tuple[bytes, np.ndarray]:
    """Our int8 export of one architecture and a batch of float input rows."""
    net = (
        architectures.mnist1d_cnn(seed=0, length=64)
        if name == "mnist1d_cnn"
        else getattr(architectures, name)()
    )
    rng = np.random.default_rng(0)
    form, act_q = quantisable(net, rng.standard_normal((64, net.in_dim)).astype(np.float32))
    n = 16 if name == "resnet8" else 48
    # wider than the calibration rows: inputs and activations saturate too
    return network_to_tflite_int8(form, act_q), 1.5 * rng.standard_normal((n, net.in_dim)).astype(np.float32)


@pytest.mark.parametrize("name", ARCHS)
def test_exported_architectures_are_bit_exact_with_litert_reference(name: str) -> None:
    raw, x = _arch(name)
    g = tflite_graph(raw, model_id="t")
    assert {op.kind for op in g.ops} <= set(OP_KINDS)
    assert g.in_tensor.shape == (x.shape[1],) and g.model_id == "t"
    assert assert_bit_exact(raw, g, x) >= len(g.ops)


def test_graph_keeps_the_files_quantisation() -> None:
    raw, _ = _arch("ds_cnn_kws")
    g = tflite_graph(raw)
    it = Interpreter(model_content=raw)
    by_name = {d["name"]: d["quantization_parameters"] for d in it.get_tensor_details()}
    for t in g.tensors:
        q = by_name[t.name]
        assert t.scale == float(q["scales"][0]) and t.zero_point == int(q["zero_points"][0])
    kinds = [op.kind for op in g.ops]
    assert kinds.count("dwconv2d") == 4 and kinds.count("conv2d") == 5 and kinds[-1] == "dense"
    conv = g.ops[kinds.index("conv2d")]
    assert conv.params["w"].shape == (64, 10, 4, 1) and conv.attrs["stride_h"] == 2
    assert conv.act_min == g.tensors[conv.output].zero_point  # fused ReLU: clamp at the real 0


# hand-built graphs


def _model(build: Callable[[TfliteGraph, int], int], qin: QParams, shape: tuple[int, ...]) -> bytes:
    g = TfliteGraph()
    x = g.tensor("input", [-1, *shape], np.int8, q=qin)
    return g.finish([x], [build(g, x)])


def _rand_q(rng: np.random.Generator, lo: float = 0.5, hi: float = 4.0) -> QParams:
    return activation_qparams(-rng.uniform(lo, hi), rng.uniform(lo, hi))


def _int8(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(-128, 128, (n, *shape)).astype(np.int8)


def _fc_per_tensor(
    g: TfliteGraph, x: int, rng: np.random.Generator, qin: QParams, qout: QParams, n: int
) -> int:
    """FULLY_CONNECTED with one weight scale (per-tensor), as older converters write it."""
    n_in = g.shape(x)[-1]
    ws = rng.uniform(0.002, 0.02)
    wt = g.const(
        "w", rng.integers(-127, 128, (n, n_in)).astype(np.int8), QParams(np.array([ws]), np.array([0]))
    )
    bs = float(np.float32(qin.scale)) * ws
    bt = g.const("b", rng.integers(-3000, 3000, n).astype(np.int32), QParams(np.array([bs]), np.array([0])))
    return g._fc(x, wt, bt, n, np.int8, qout, relu=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hand_built_operators_are_bit_exact(seed: int) -> None:
    """conv (stride 2, VALID, RELU6) → standalone RELU6 → depthwise (SAME) → int8 QUANTIZE →
    avg pool (SAME, stride 2) ‖ max pools (VALID 3x3, RELU; SAME 2x2) → ADD of the two branches →
    MEAN keep_dims → RESHAPE → per-channel FC → per-tensor FC (RELU)."""
    rng = np.random.default_rng(seed)
    q = [_rand_q(rng) for _ in range(12)]
    q[1], q[2] = _rand_q(rng, 6, 12), _rand_q(rng, 7, 9)  # so that RELU6 clamps below 127
    shape = (12, 11, 3)

    def build(g: TfliteGraph, x: int) -> int:
        w1 = rng.normal(0, 0.4, (8, 3, 3, 3))
        t = tc.conv2d_int8(
            g, x, w1, rng.normal(0, 0.3, 8), q[0], q[1], stride=2, padding="valid", act="relu6"
        )
        t = tc.relu_int8(g, t, "relu6", q[1], q[2])
        t = tc.depthwise_conv2d_int8(
            g, t, rng.normal(0, 0.5, (1, 3, 3, 8)), rng.normal(0, 0.3, 8), q[2], q[3]
        )
        t = tc.requantize(g, t, q[3], q[4])
        a = tc.avg_pool2d_int8(g, t, q[4], None, 3, stride=2, padding="same")
        b = tc.max_pool2d_int8(g, t, q[4], None, 3, stride=1, padding="valid", act="relu")
        b = tc.max_pool2d_int8(g, b, q[4], None, 2, stride=1, padding="same")
        t = tc.add_int8(g, a, b, q[4], q[4], q[5], act="relu")
        axes = g.const("axes", np.array([1, 2], np.int32))
        m = g.tensor("mean", [-1, 1, 1, 8], np.int8, q=q[6])
        g.op(
            tfl.BuiltinOperator.MEAN, [t, axes], [m], tfl.BuiltinOptions.ReducerOptions, reducer_options(True)
        )
        t = tc.reshape_int8(g, m, [-1, 8], q[6])
        t = g.fully_connected_int8(
            t, rng.normal(0, 0.5, (6, 8)), rng.normal(0, 0.2, 6), q[6], q[7], relu=False
        )
        return _fc_per_tensor(g, t, rng, q[7], q[8], 5)

    raw = _model(build, q[0], shape)
    g = tflite_graph(raw)
    kinds = [op.kind for op in g.ops]
    assert kinds == [
        "conv2d", "dwconv2d", "dwconv2d", "dwconv2d", "avgpool", "maxpool", "maxpool", "add", "mean",
        "reshape", "dense", "dense",
    ]  # fmt: skip
    assert g.ops[0].act_max < 127 and g.ops[1].act_max < 127  # RELU6, fused and standalone
    assert assert_bit_exact(raw, g, _int8(rng, 64, shape)) == len(g.ops) + 1


@pytest.mark.parametrize("keep_dims", [False, True])
def test_mean_is_bit_exact_on_odd_sizes(keep_dims: bool) -> None:
    rng = np.random.default_rng(7)
    for h, w in ((1, 1), (3, 7), (25, 5), (16, 16)):
        qin, qout = _rand_q(rng), _rand_q(rng, 0.05, 1.0)

        def build(g: TfliteGraph, x: int, h: int = h, w: int = w, qout: QParams = qout) -> int:
            axes = g.const("axes", np.array([2, -3], np.int32))
            y = g.tensor("mean", [-1, 1, 1, 4] if keep_dims else [-1, 4], np.int8, q=qout)
            opt = reducer_options(keep_dims)
            g.op(tfl.BuiltinOperator.MEAN, [x, axes], [y], tfl.BuiltinOptions.ReducerOptions, opt)
            return y

        raw = _model(build, qin, (h, w, 4))
        assert_bit_exact(raw, tflite_graph(raw), _int8(rng, 200, (h, w, 4)))


@pytest.mark.parametrize("per_channel", [False, True])
def test_fully_connected_single_rounding_is_bit_exact(per_channel: bool) -> None:
    """LiteRT's FULLY_CONNECTED rounds once (not MBQM's twice): thousands of outputs, ties included."""
    rng = np.random.default_rng(11 + per_channel)
    for _ in range(3):
        qin, qout = _rand_q(rng), _rand_q(rng, 2, 30)

        def build(g: TfliteGraph, x: int, qin: QParams = qin, qout: QParams = qout) -> int:
            if per_channel:
                w, b = rng.normal(0, 0.3, (24, 48)), rng.normal(0, 0.5, 24)
                return g.fully_connected_int8(x, w, b, qin, qout, relu=False)
            return _fc_per_tensor(g, x, rng, qin, qout, 24)

        raw = _model(build, qin, (48,))
        g = tflite_graph(raw)
        assert g.ops[0].attrs["rounding"] == 1
        assert_bit_exact(raw, g, _int8(rng, 1000, (48,)))


def test_softmax_head_is_dropped_with_a_note() -> None:
    rng = np.random.default_rng(3)
    qin, qh = _rand_q(rng), _rand_q(rng, 2, 8)

    def build(g: TfliteGraph, x: int) -> int:
        t = tc.reshape_int8(g, x, [-1, 12], qin)
        t = g.fully_connected_int8(t, rng.normal(0, 0.5, (4, 12)), rng.normal(0, 0.2, 4), qin, qh, relu=False)
        y = g.tensor("probs", [-1, 4], np.int8, q=QParams(np.float64(1 / 256), -128))
        opt = tfl.SoftmaxOptionsT()
        opt.beta = 1.0
        g.op(tfl.BuiltinOperator.SOFTMAX, [t], [y], tfl.BuiltinOptions.SoftmaxOptions, opt)
        return y

    raw = _model(build, qin, (2, 2, 3))
    g = tflite_graph(raw)
    assert g.ops[-1].kind == "dense" and g.out_tensor.scale == pytest.approx(float(qh.scale), rel=1e-6)
    assert any("SOFTMAX" in n and "dropped" in n for n in g.notes)
    assert_bit_exact(raw, g, _int8(rng, 32, (2, 2, 3)))


# refusals


def _refused(raw: bytes, *needles: str) -> str:
    with pytest.raises(BlobError) as e:
        tflite_graph(raw)
    msg = str(e.value)
    for n in needles:
        assert n in msg, msg
    return msg


def test_refuses_what_the_mcu_cannot_run_naming_operator_and_layer() -> None:
    q = activation_qparams(-1, 1)
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.3, (4, 3, 3, 3))

    def dilated(g: TfliteGraph, x: int) -> int:
        y = tc.conv2d_int8(g, x, w, np.zeros(4), q, q)
        g.sub.operators[-1].builtinOptions.dilationHFactor = 2
        return y

    msg = _refused(_model(dilated, q, (8, 8, 3)), "CONV_2D #0 (conv_", "dilation")
    assert "DEPTHWISE_CONV_2D (depth multiplier 1)" in msg  # says what runs

    def multiplier2(g: TfliteGraph, x: int) -> int:
        wt = g.const(
            "w", np.ones((1, 3, 3, 6), np.int8), QParams(np.full(6, 0.01), np.zeros(6, np.int64), axis=3)
        )
        bt = g.const("b", np.zeros(6, np.int32), QParams(np.full(6, 1e-4), np.zeros(6, np.int64)))
        y = g.tensor("dw", [-1, 8, 8, 6], np.int8, q=q)
        opt = depthwise_conv2d_options((1, 1), "same", None, depth_multiplier=2)
        g.op(
            tfl.BuiltinOperator.DEPTHWISE_CONV_2D,
            [x, wt, bt],
            [y],
            tfl.BuiltinOptions.DepthwiseConv2DOptions,
            opt,
        )
        return y

    _refused(_model(multiplier2, q, (8, 8, 3)), "DEPTHWISE_CONV_2D #0", "depth multiplier 2")

    def tanh(g: TfliteGraph, x: int) -> int:
        t = tc.conv2d_int8(g, x, w, np.zeros(4), q, q)
        y = g.tensor("tanh", [-1, 8, 8, 4], np.int8, q=QParams(np.float64(1 / 128), 0))
        g.op(tfl.BuiltinOperator.TANH, [t], [y])
        return y

    _refused(_model(tanh, q, (8, 8, 3)), "TANH #1 (tanh_", "unsupported operator")

    def mean_c(g: TfliteGraph, x: int) -> int:
        axes = g.const("axes", np.array([3], np.int32))
        y = g.tensor("mean", [-1, 8, 8], np.int8, q=q)
        g.op(
            tfl.BuiltinOperator.MEAN,
            [x, axes],
            [y],
            tfl.BuiltinOptions.ReducerOptions,
            reducer_options(False),
        )
        return y

    _refused(_model(mean_c, q, (8, 8, 3)), "MEAN #0", "axes [3]")

    def const_add(g: TfliteGraph, x: int) -> int:
        c = g.const("c", np.ones((1, 8, 8, 3), np.int8), q)
        y = g.tensor("add", [-1, 8, 8, 3], np.int8, q=q)
        g.op(tfl.BuiltinOperator.ADD, [x, c], [y], tfl.BuiltinOptions.AddOptions, tfl.AddOptionsT())
        return y

    _refused(_model(const_add, q, (8, 8, 3)), "ADD #0", "constant")

    g = TfliteGraph()
    a = g.tensor("a", [-1, 4], np.int8, q=q)
    b = g.tensor("b", [-1, 4], np.int8, q=q)
    _refused(g.finish([a, b], [tc.add_int8(g, a, b, q, q, q)]), "2 inputs")


def test_refuses_float_and_dynamic_range_models() -> None:
    rng = np.random.default_rng(0)
    g = TfliteGraph()
    x = g.tensor("input", [-1, 8, 8, 3], np.float32)
    y = tc.conv2d(g, x, rng.normal(0, 0.3, (4, 3, 3, 3)), np.zeros(4))
    _refused(g.finish([x], [y]), "CONV_2D #0", "FLOAT32", "full-integer")
    g = TfliteGraph()
    x = g.tensor("input", [-1, 8, 8, 3], np.float32)
    y = tc.conv2d_dynamic(g, x, rng.normal(0, 0.3, (4, 3, 3, 3)), np.zeros(4))
    _refused(g.finish([x], [y]), "CONV_2D #0")
    with pytest.raises(BlobError, match="TFL3"):
        tflite_graph(b"\0" * 64)


def _wheel_models() -> list[Path]:
    spec = importlib.util.find_spec("pymicro_wakeword")
    if spec is None or spec.origin is None:
        return []
    return sorted((Path(spec.origin).parent / "models").glob("*.tflite"))


def test_streaming_wake_word_models_from_their_wheel_are_refused_by_operator() -> None:
    models = _wheel_models()
    if not models:
        pytest.skip(
            "pymicro-wakeword is not installed (.ci/install: pip install --no-deps pymicro-wakeword==2.5.0)"
        )
    for path in models:
        # int8 CNNs (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED) whose streaming state lives in
        # resource variables: the first op initialises them
        msg = _refused(path.read_bytes(), "CALL_ONCE #0", "unsupported operator")
        assert "measure this model on a CPU target" in msg


# our own CNN variants


def test_network_graph_of_a_cnn_variant(tmp_path: Path) -> None:
    net = architectures.digits_cnn(seed=0)
    assert needs_graph(net)
    rng = np.random.default_rng(1)
    x_calib = rng.uniform(0, 1, (64, net.in_dim)).astype(np.float32)
    g = network_graph(net, x_calib, model_id="digits")
    assert g.model_id == "digits" and g.in_tensor.shape == (64,) and g.out_tensor.shape == (10,)
    # the same as importing our exporter's file, and it tracks the float network
    form, act_q = quantisable(net, x_calib)
    raw = network_to_tflite_int8(form, act_q)
    x = rng.uniform(0, 1, (32, net.in_dim)).astype(np.float32)
    assert_bit_exact(raw, g, x)
    y = g.dequantize_output(run_graph(g, g.quantize_input(x)))
    ref = net.forward(x)
    assert np.abs(y - ref).max() < 0.1 * np.abs(ref).max()

    net.save(tmp_path / "net.npz")
    v = Variant("digits", "cnn", "k", {}, {"task": "digits"}, tmp_path / "net.npz")
    vg = variant_graph(v, x_calib)
    assert vg is not None and [op.kind for op in vg.ops] == [op.kind for op in g.ops]
    with pytest.raises(BlobError, match="calibration rows"):
        variant_graph(v, None)
    mlp = Variant("digits", "mlp", "k", {}, {"task": "digits"}, None)
    assert variant_graph(mlp, x_calib) is None  # no network: the dense blob path decides


def test_variant_graph_of_a_users_int8_tflite_cnn(tmp_path: Path) -> None:
    raw, x = _arch("ds_cnn_kws")
    path = tmp_path / "model.tflite"
    path.write_bytes(raw)
    v = Variant("kws", "fp32", "k", {"tflite": path}, {"task": "kws", "int8_file": True}, None)
    g = variant_graph(v, None)  # its own quantisation: no calibration rows needed
    assert g is not None and g.model_id == "kws"
    assert_bit_exact(raw, g, x[:8])


def test_quantize_input_rounds_as_litert_quantize() -> None:
    """Float rows → int8 as the file's QUANTIZE op computes them (ties away from zero, float32)."""
    raw, _ = _arch("digits_cnn")
    g = tflite_graph(raw)
    t = g.in_tensor
    k = np.arange(-140, 140, dtype=np.float64)
    x = np.concatenate([k, k + 0.5, k + 0.49999, k + 0.50001]) * t.scale  # ties and near ties
    x = np.resize(x, (len(x) // 64 + 1) * 64).reshape(-1, 64).astype(np.float32)
    it = _interpreter(raw, x)
    index = {d["name"]: d["index"] for d in it.get_tensor_details()}
    np.testing.assert_array_equal(g.quantize_input(x), it.get_tensor(index[t.name]))


def test_network_graph_refuses_a_layer_without_int8_tflite_export() -> None:
    from harness.ir.layers import Conv2D, Dense, GlobalAveragePool, Reshape
    from harness.ir.layers.pointwise import Pointwise

    rng = np.random.default_rng(0)
    conv = Conv2D(rng.normal(0, 0.3, (3, 3, 2, 8)).astype(np.float32), np.zeros(8, np.float32), (6, 6, 2))
    pw = Pointwise(Dense(rng.normal(0, 0.3, (8, 8)), np.zeros(8)), conv.out_shape, act="relu")
    net = Network(
        [
            Reshape((72,), (6, 6, 2)),
            conv,
            pw,
            GlobalAveragePool(pw.out_shape),
            Dense(rng.normal(size=(8, 3)), np.zeros(3)),
        ]
    )
    assert needs_graph(net)
    with pytest.raises(
        BlobError, match="exporter refused the network: pointwise layers have no int8 TFLite export"
    ):
        network_graph(net, rng.normal(size=(16, 72)).astype(np.float32))


def test_a_two_class_softmax_file_is_refused_for_the_pipeline_but_benched(tmp_path: Path) -> None:
    """Binary scores (AUC) read the last output column: without its SOFTMAX, z1 alone does not order
    samples as p1 = softmax(z)[1] does, so the variant path refuses it (as the dense-blob importer does)."""
    rng = np.random.default_rng(4)
    qin, qh = _rand_q(rng), _rand_q(rng, 2, 8)

    def build(g: TfliteGraph, x: int) -> int:
        t = tc.conv2d_int8(g, x, rng.normal(0, 0.5, (2, 1, 1, 3)), rng.normal(0, 0.2, 2), qin, qh)
        t = tc.mean_hw_int8(g, t, qh, qh)
        y = g.tensor("probs", [-1, 2], np.int8, q=QParams(np.float64(1 / 256), -128))
        opt = tfl.SoftmaxOptionsT()
        opt.beta = 1.0
        g.op(tfl.BuiltinOperator.SOFTMAX, [t], [y], tfl.BuiltinOptions.SoftmaxOptions, opt)
        return y

    raw = _model(build, qin, (2, 2, 3))
    assert tflite_graph(raw).out_tensor.size == 2  # bench runs it (the scores before the SOFTMAX)
    (tmp_path / "m.tflite").write_bytes(raw)
    v = Variant(
        "b", "as-given", "k", {"tflite": tmp_path / "m.tflite"}, {"task": "b", "int8_file": True}, None
    )
    with pytest.raises(BlobError, match="2-class SOFTMAX head"):
        variant_graph(v, None)


def _mbqm_scalar(x: int, m: int, s: int) -> int:
    """gemmlowp's MultiplyByQuantizedMultiplier in Python integers (the definition)."""
    x = max(min(x * (1 << max(s, 0)), 2**31 - 1), -(2**31))
    if x == m == -(2**31):
        r = 2**31 - 1
    else:
        num = x * m + ((1 << 30) if x * m >= 0 else 1 - (1 << 30))
        r = num // (1 << 31) if num >= 0 else -((-num) // (1 << 31))
    right = max(-s, 0)
    mask = (1 << right) - 1
    return (r >> right) + int((r & mask) > (mask >> 1) + (r < 0))


def test_multiply_by_quantized_multiplier_is_gemmlowps() -> None:
    from harness.ir.quant import multiply_by_quantized_multiplier

    rng = np.random.default_rng(0)
    n = 4000
    edges = [0, 1, -1, 2**31 - 1, -(2**31)]
    x = np.concatenate([rng.integers(-(2**31), 2**31, n), rng.integers(-300, 300, n), edges, edges])
    m = np.concatenate(
        [rng.integers(0, 2**31, n), rng.integers(2**30, 2**31, n), [0, 2**30, 2**31 - 1, 1, 3]] * 1
    )
    m = np.concatenate([m, [-(2**31), -5, 2**30, -(2**31), 7]])  # negative multipliers: the general path
    s = np.concatenate(
        [rng.integers(-31, 1, n), rng.integers(-40, 8, n), [0, -1, -31, 5, 0], [0, 3, -2, 0, -1]]
    )
    want = [_mbqm_scalar(int(a), int(b), int(c)) for a, b, c in zip(x, m, s, strict=True)]
    # TFLite's multipliers (>= 0: the magnitude path) and, apart, negative ones (the general path)
    np.testing.assert_array_equal(multiply_by_quantized_multiplier(x[:-5], m[:-5], s[:-5]), want[:-5])
    np.testing.assert_array_equal(multiply_by_quantized_multiplier(x[-5:], m[-5:], s[-5:]), want[-5:])
