"""The convolutional ``.tflite`` builders compute what NumPy computes.

Float ops match a float NumPy reference within 1e-4. int8 ops are compared with a NumPy model of
TFLite's integer arithmetic (per-channel multiplier and shift, gemmlowp rounding): within 1 LSB on
LiteRT's default (optimised / XNNPACK) kernels and exactly on its reference kernels (BUILTIN_REF).
A conv → depthwise → pool → mean → reshape → fully-connected chain in int8 tracks a float pass
within the quantisation error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as tfl
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from harness.ir.export import tflite_conv as tc
from harness.ir.export.tflite_graph import TfliteGraph
from harness.ir.quant import (
    QParams,
    activation_qparams,
    activation_range_int8,
    conv_multipliers,
    multiply_by_quantized_multiplier,
    quantize_conv,
    quantize_multiplier_tflite,
)

SHAPE = (1, 8, 8, 3)


def _run(model: bytes, xs: list[np.ndarray], *, ref: bool = False) -> np.ndarray:
    kw = {"experimental_op_resolver_type": OpResolverType.BUILTIN_REF} if ref else {}
    it = Interpreter(model_content=model, **kw)
    for d, x in zip(it.get_input_details(), xs, strict=True):
        it.resize_tensor_input(d["index"], list(x.shape))
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), xs, strict=True):
        it.set_tensor(d["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


# NumPy references


def _pads(n: int, k: int, s: int, pad: str) -> tuple[int, int]:
    if pad == "valid":
        return 0, 0
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _patches(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], pad: str, fill: float) -> np.ndarray:
    """(B, OH, OW, kh, kw, C) windows of an NHWC array, out-of-bounds elements set to ``fill``."""
    (t, bo), (le, ri) = _pads(x.shape[1], k[0], s[0], pad), _pads(x.shape[2], k[1], s[1], pad)
    xp = np.pad(x, ((0, 0), (t, bo), (le, ri), (0, 0)), constant_values=fill)
    oh = (xp.shape[1] - k[0]) // s[0] + 1
    ow = (xp.shape[2] - k[1]) // s[1] + 1
    out = np.empty((x.shape[0], oh, ow, k[0], k[1], x.shape[3]), dtype=xp.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, i, j] = xp[:, i * s[0] : i * s[0] + k[0], j * s[1] : j * s[1] + k[1]]
    return out


def _act(y: np.ndarray, act: str | None) -> np.ndarray:
    if act == "relu":
        return np.maximum(y, 0)
    if act == "relu6":
        return np.clip(y, 0, 6)
    return y


def conv_ref(x, w, b, s, pad, act):
    p = _patches(x.astype(np.float64), w.shape[1:3], s, pad, 0.0)
    return _act(np.einsum("bhwijc,oijc->bhwo", p, w) + b, act)


def dw_ref(x, w, b, s, pad, act):
    p = _patches(x.astype(np.float64), w.shape[1:3], s, pad, 0.0)
    return _act(np.einsum("bhwijc,ijc->bhwc", p, w[0]) + b, act)


def pool_ref(x, k, s, pad, kind):
    p = _patches(x.astype(np.float64), k, s, pad, np.nan)
    return np.nanmax(p, axis=(3, 4)) if kind == "max" else np.nanmean(p, axis=(3, 4))


def _requant(acc, mult, shift, qout, act):
    lo, hi = activation_range_int8(qout, act)
    y = multiply_by_quantized_multiplier(acc, mult, shift) + int(qout.zero_point)
    return np.clip(y, lo, hi).astype(np.int8)


def conv_int8_ref(xq, qin, w, b, qout, s, pad, act, depthwise=False):
    qw, wq, qb = quantize_conv(w, b, float(qin.scale), axis=3 if depthwise else 0)
    p = _patches(xq.astype(np.int64) - int(qin.zero_point), w.shape[1:3], s, pad, 0)
    if depthwise:
        acc = np.einsum("bhwijc,ijc->bhwc", p, qw[0].astype(np.int64))
    else:
        acc = np.einsum("bhwijc,oijc->bhwo", p, qw.astype(np.int64))
    mult, shift = conv_multipliers(float(qin.scale), wq.scale, float(qout.scale))
    return _requant(acc + qb, mult, shift, qout, act)


def pool_int8_ref(xq, q, k, s, pad, kind, act):
    lo, hi = activation_range_int8(q, act)
    p = _patches(xq.astype(np.int64), k, s, pad, -(1 << 40))
    valid = p > -(1 << 40)
    if kind == "max":
        y = p.max(axis=(3, 4))
    else:
        acc = np.where(valid, p, 0).sum(axis=(3, 4))
        n = valid.sum(axis=(3, 4))
        y = np.where(acc > 0, (acc + n // 2) // n, -((-acc + n // 2) // n))  # round half away from zero
    return np.clip(y, lo, hi).astype(np.int8)


def add_int8_ref(aq, qa, bq, qb, qout, act):
    f32 = np.float32
    sa, sb, so = (float(f32(q.scale)) for q in (qa, qb, qout))
    twice = 2 * max(sa, sb)
    (ma,), (sha,) = quantize_multiplier_tflite(sa / twice)
    (mb,), (shb,) = quantize_multiplier_tflite(sb / twice)
    (mo,), (sho,) = quantize_multiplier_tflite(twice / ((1 << 20) * so))
    va = (aq.astype(np.int64) - int(qa.zero_point)) << 20
    vb = (bq.astype(np.int64) - int(qb.zero_point)) << 20
    raw = multiply_by_quantized_multiplier(va, ma, sha) + multiply_by_quantized_multiplier(vb, mb, shb)
    return _requant(raw, mo, sho, qout, act)


def mean_int8_ref(xq, qin, qout):
    """Sum of (q - zp_in) over H, W times one multiplier for s_in / (s_out * H * W)."""
    n = xq.shape[1] * xq.shape[2]
    acc = xq.astype(np.int64).sum(axis=(1, 2)) - int(qin.zero_point) * n
    real = float(np.float32(qin.scale)) / float(np.float32(qout.scale)) / n
    (mult,), (shift,) = quantize_multiplier_tflite(real)
    y = multiply_by_quantized_multiplier(acc, mult, shift) + int(qout.zero_point)
    return np.clip(y, -128, 127).astype(np.int8)


# Helpers


def _x(seed: int, shape=SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _q(a: np.ndarray) -> QParams:
    return activation_qparams(float(np.min(a)), float(np.max(a)))


def _float_model(build: Callable[[TfliteGraph, int], int], shape=SHAPE) -> bytes:
    g = TfliteGraph()
    x = g.tensor("input", [-1, *shape[1:]], np.float32)
    return g.finish([x], [build(g, x)])


def _int8_model(build: Callable[[TfliteGraph, int], int], qin: QParams, shape=SHAPE) -> bytes:
    g = TfliteGraph()
    x = g.tensor("input", [-1, *shape[1:]], np.int8, q=qin)
    return g.finish([x], [build(g, x)])


def _lsb(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape, (a.shape, b.shape)
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())


CONV_CASES = [(1, "same", None), (2, "same", "relu"), (1, "valid", "relu6"), (2, "valid", None)]


def _conv_weights(seed: int, depthwise: bool, gain: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if depthwise:
        return gain * rng.normal(0, 0.5, (1, 3, 3, 3)), rng.normal(0, 0.2, 3)
    return gain * rng.normal(0, 0.3, (5, 3, 3, 3)), rng.normal(0, 0.2, 5)


# Float


@pytest.mark.parametrize("stride,pad,act", CONV_CASES)
@pytest.mark.parametrize("depthwise", [False, True])
def test_float_conv_and_depthwise_match_numpy(
    stride: int, pad: str, act: str | None, depthwise: bool
) -> None:
    # relu6 cases get outputs well above 6, so that the upper clamp matters
    w, b = _conv_weights(stride * 7 + len(pad), depthwise, 8.0 if act == "relu6" else 1.0)
    x = _x(1)
    op = tc.depthwise_conv2d if depthwise else tc.conv2d
    model = _float_model(lambda g, t: op(g, t, w, b, stride=stride, padding=pad, act=act))
    ref = (dw_ref if depthwise else conv_ref)(x, w, b, (stride, stride), pad, act)
    for use_ref in (False, True):
        np.testing.assert_allclose(_run(model, [x], ref=use_ref), ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("pool,stride,pad", [(2, None, "valid"), (3, 2, "same"), (3, 1, "valid")])
def test_float_pools_match_numpy(kind: str, pool: int, stride: int | None, pad: str) -> None:
    x = _x(2)
    op = tc.max_pool2d if kind == "max" else tc.avg_pool2d
    model = _float_model(lambda g, t: op(g, t, pool, stride=stride, padding=pad))
    s = pool if stride is None else stride
    ref = pool_ref(x, (pool, pool), (s, s), pad, kind)
    for use_ref in (False, True):
        np.testing.assert_allclose(_run(model, [x], ref=use_ref), ref, atol=1e-4, rtol=0)


def test_float_mean_reshape_add_conv1d_match_numpy() -> None:
    x, x2 = _x(3), _x(4)
    np.testing.assert_allclose(_run(_float_model(tc.mean_hw), [x]), x.mean(axis=(1, 2)), atol=1e-4)
    model = _float_model(lambda g, t: tc.reshape(g, t, [-1, 8 * 8 * 3]))
    np.testing.assert_array_equal(_run(model, [x]), x.reshape(1, -1))

    g = TfliteGraph()
    a = g.tensor("a", [-1, 8, 8, 3], np.float32)
    b = g.tensor("b", [-1, 8, 8, 3], np.float32)
    model = g.finish([a, b], [tc.add(g, a, b, act="relu")])
    np.testing.assert_allclose(_run(model, [x, x2]), np.maximum(x + x2, 0), atol=1e-6)

    rng = np.random.default_rng(5)
    w, bias = rng.normal(0, 0.3, (4, 5, 3)), rng.normal(0, 0.1, 4)
    xs = _x(6, (2, 16, 3))
    for stride, pad in ((1, "same"), (2, "valid")):
        model = _float_model(
            lambda g, t, s=stride, p=pad: tc.conv1d(g, t, w, bias, stride=s, padding=p), (2, 16, 3)
        )
        ref = conv_ref(xs[:, None], w[:, None], bias, (1, stride), pad, None)[:, 0]
        for use_ref in (False, True):
            np.testing.assert_allclose(_run(model, [xs], ref=use_ref), ref, atol=1e-4, rtol=0)


# int8


@pytest.mark.parametrize("stride,pad,act", CONV_CASES)
@pytest.mark.parametrize("depthwise", [False, True])
def test_int8_conv_and_depthwise_match_tflite_integer_arithmetic(
    stride: int, pad: str, act: str | None, depthwise: bool
) -> None:
    # relu6 cases get outputs well above 6, so that the upper clamp matters
    w, b = _conv_weights(stride * 7 + len(pad), depthwise, 8.0 if act == "relu6" else 1.0)
    x = _x(7)
    s = (stride, stride)
    fref = (dw_ref if depthwise else conv_ref)(x, w, b, s, pad, None)
    qin, qout = _q(x), _q(fref)
    xq = qin.quantize(x)
    op = tc.depthwise_conv2d_int8 if depthwise else tc.conv2d_int8
    model = _int8_model(lambda g, t: op(g, t, w, b, qin, qout, stride=stride, padding=pad, act=act), qin)
    ref = conv_int8_ref(xq, qin, w, b, qout, s, pad, act, depthwise)
    assert _lsb(_run(model, [xq]), ref) <= 1
    assert _lsb(_run(model, [xq], ref=True), ref) == 0
    # and the integer result is the float one within a step or two
    back = qout.dequantize(ref)
    assert np.abs(back - _act(fref, act)).max() < 3 * float(qout.scale)


def test_int8_conv_stores_the_spec_quantisation() -> None:
    """Weights int8 symmetric per output channel (zero point 0, axis 0 / 3), bias int32 s_in*s_w."""
    x = _x(8)
    qin = _q(x)
    for depthwise, axis in ((False, 0), (True, 3)):
        w, b = _conv_weights(1, depthwise)
        op = tc.depthwise_conv2d_int8 if depthwise else tc.conv2d_int8
        model = _int8_model(lambda g, t: op(g, t, w, b, qin, qin), qin)  # noqa: B023
        it = Interpreter(model_content=model)
        details = {d["index"]: d for d in it.get_tensor_details()}
        wd = next(d for d in details.values() if d["name"].startswith("w_"))
        bd = next(d for d in details.values() if d["name"].startswith("b_"))
        wp, bp = wd["quantization_parameters"], bd["quantization_parameters"]
        n = w.shape[axis]
        assert wd["dtype"] == np.int8 and wp["quantized_dimension"] == axis and len(wp["scales"]) == n
        assert (wp["zero_points"] == 0).all() and (bp["zero_points"] == 0).all()
        assert bd["dtype"] == np.int32
        np.testing.assert_allclose(bp["scales"], np.float32(qin.scale) * wp["scales"], rtol=1e-6)
        qw = quantize_conv(w, b, float(qin.scale), axis)[0]
        assert np.abs(qw).max() == 127 and np.abs(qw).min() >= -127


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize(
    "pool,stride,pad,act", [(2, None, "valid", None), (3, 2, "same", "relu"), (3, 1, "valid", None)]
)
def test_int8_pools_match_tflite_integer_arithmetic(
    kind: str, pool: int, stride: int | None, pad: str, act: str | None
) -> None:
    x = _x(9)
    qin = _q(x)
    xq = qin.quantize(x)
    op = tc.max_pool2d_int8 if kind == "max" else tc.avg_pool2d_int8
    model = _int8_model(lambda g, t: op(g, t, qin, qin, pool, stride=stride, padding=pad, act=act), qin)
    s = pool if stride is None else stride
    ref = pool_int8_ref(xq, qin, (pool, pool), (s, s), pad, kind, act)
    assert _lsb(_run(model, [xq]), ref) <= 1
    assert _lsb(_run(model, [xq], ref=True), ref) == 0


def test_int8_pool_with_a_new_output_scale_requantises() -> None:
    x = _x(10)
    qin, qout = _q(x), _q(2 * x)
    xq = qin.quantize(x)
    model = _int8_model(lambda g, t: tc.max_pool2d_int8(g, t, qin, qout, 2), qin)
    out = _run(model, [xq])
    pooled = qin.dequantize(pool_int8_ref(xq, qin, (2, 2), (2, 2), "valid", "max", None))
    assert _lsb(out, qout.quantize(pooled)) <= 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_int8_mean_matches_tflite_integer_arithmetic(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(4, 8, 8, 8)) * rng.uniform(0.2, 3) + rng.uniform(-1, 1)).astype(np.float32)
    qin = _q(x)
    qout = _q(x.mean(axis=(1, 2)) * rng.uniform(0.8, 1.5))
    xq = qin.quantize(x)
    model = _int8_model(lambda g, t: tc.mean_hw_int8(g, t, qin, qout), qin, x.shape)
    ref = mean_int8_ref(xq, qin, qout)
    assert _lsb(_run(model, [xq]), ref) <= 1
    assert _lsb(_run(model, [xq], ref=True), ref) == 0


@pytest.mark.parametrize("act", [None, "relu"])
def test_int8_add_matches_tflite_integer_arithmetic(act: str | None) -> None:
    a, b = _x(12), 0.5 * _x(13)
    qa, qb, qout = _q(a), _q(b), _q(a + b)
    aq, bq = qa.quantize(a), qb.quantize(b)
    g = TfliteGraph()
    ta = g.tensor("a", [-1, 8, 8, 3], np.int8, q=qa)
    tb = g.tensor("b", [-1, 8, 8, 3], np.int8, q=qb)
    model = g.finish([ta, tb], [tc.add_int8(g, ta, tb, qa, qb, qout, act=act)])
    ref = add_int8_ref(aq, qa, bq, qb, qout, act)
    assert _lsb(_run(model, [aq, bq]), ref) <= 1
    assert _lsb(_run(model, [aq, bq], ref=True), ref) == 0


def test_int8_reshape_and_conv1d() -> None:
    x = _x(14)
    qin = _q(x)
    xq = qin.quantize(x)
    model = _int8_model(lambda g, t: tc.reshape_int8(g, t, [-1, 192], qin), qin)
    np.testing.assert_array_equal(_run(model, [xq]), xq.reshape(1, -1))

    rng = np.random.default_rng(15)
    w, bias = rng.normal(0, 0.3, (4, 5, 3)), rng.normal(0, 0.1, 4)
    xs = _x(16, (2, 16, 3))
    fref = conv_ref(xs[:, None], w[:, None], bias, (1, 2), "same", None)[:, 0]
    qi, qo = _q(xs), _q(fref)
    xsq = qi.quantize(xs)
    model = _int8_model(
        lambda g, t: tc.conv1d_int8(g, t, w, bias, qi, qo, stride=2, padding="same", act="relu"),
        qi,
        (2, 16, 3),
    )
    ref = conv_int8_ref(xsq[:, None], qi, w[:, None], bias, qo, (1, 2), "same", "relu")[:, 0]
    assert _lsb(_run(model, [xsq]), ref) <= 1
    assert _lsb(_run(model, [xsq], ref=True), ref) == 0


# Dynamic range


@pytest.mark.parametrize("depthwise", [False, True])
def test_dynamic_range_conv_tracks_float(depthwise: bool) -> None:
    w, b = _conv_weights(3, depthwise)
    x = _x(17)
    op = tc.depthwise_conv2d_dynamic if depthwise else tc.conv2d_dynamic
    model = _float_model(lambda g, t: op(g, t, w, b, stride=1, padding="same", act="relu"))
    ref = (dw_ref if depthwise else conv_ref)(x, w, b, (1, 1), "same", "relu")
    out = _run(model, [x])
    assert out.dtype == np.float32
    # int8 weights (half a step per channel) and int8 activations quantised at run time
    assert np.abs(out - ref).max() < 0.05 * np.abs(ref).max()
    assert np.abs(out - ref).max() > 0  # it did quantise


def test_dynamic_range_conv1d_tracks_float() -> None:
    rng = np.random.default_rng(20)
    w, bias = rng.normal(0, 0.3, (4, 5, 3)), rng.normal(0, 0.1, 4)
    xs = _x(21, (2, 16, 3))
    model = _float_model(lambda g, t: tc.conv1d_dynamic(g, t, w, bias, stride=2, padding="valid"), (2, 16, 3))
    ref = conv_ref(xs[:, None], w[:, None], bias, (1, 2), "valid", None)[:, 0]
    out = _run(model, [xs])
    assert out.shape == ref.shape == (2, 6, 4)
    assert 0 < np.abs(out - ref).max() < 0.05 * np.abs(ref).max()


# Chain


def test_int8_chain_tracks_float_end_to_end() -> None:
    """QUANTIZE → conv → depthwise → max pool → mean → reshape → fully connected → DEQUANTIZE."""
    rng = np.random.default_rng(18)
    w1, b1 = rng.normal(0, 0.3, (8, 3, 3, 3)), rng.normal(0, 0.1, 8)
    w2, b2 = rng.normal(0, 0.4, (1, 3, 3, 8)), rng.normal(0, 0.1, 8)
    wf, bf = rng.normal(0, 0.4, (4, 8)), rng.normal(0, 0.1, 4)
    x = _x(19, (16, 8, 8, 3))

    a1 = conv_ref(x, w1, b1, (1, 1), "same", "relu")
    a2 = dw_ref(a1, w2, b2, (2, 2), "same", "relu6")
    a3 = pool_ref(a2, (2, 2), (2, 2), "valid", "max")
    a4 = a3.mean(axis=(1, 2))
    y = a4 @ wf.T + bf
    q0, q1, q2, q4, q5 = _q(x), _q(a1), _q(a2), _q(a4), _q(y)

    g = TfliteGraph()
    t_in = g.tensor("input", [-1, 8, 8, 3], np.float32)
    t = g.tensor("q", [-1, 8, 8, 3], np.int8, q=q0)
    g.op(tfl.BuiltinOperator.QUANTIZE, [t_in], [t])
    t = tc.conv2d_int8(g, t, w1, b1, q0, q1, act="relu")
    t = tc.depthwise_conv2d_int8(g, t, w2, b2, q1, q2, stride=2, act="relu6")
    t = tc.max_pool2d_int8(g, t, q2, q2, 2)
    t = tc.mean_hw_int8(g, t, q2, q4)
    t = tc.reshape_int8(g, t, [-1, 8], q4)
    t = g.fully_connected_int8(t, wf, bf, q4, q5, relu=False)
    t_out = g.tensor("output", [-1, 4], np.float32)
    g.op(tfl.BuiltinOperator.DEQUANTIZE, [t], [t_out])
    model = g.finish([t_in], [t_out])

    for use_ref in (False, True):
        out = _run(model, [x], ref=use_ref)
        assert out.shape == y.shape
        err = np.abs(out - y).max()
        # a few output steps of error through six requantised ops (measured: 1.5 default, 2.1 reference)
        assert err < 4 * float(q5.scale), (err, float(q5.scale))
        assert err > 0  # it is integer arithmetic, not a float pass


def test_quantize_multiplier_tflite_edges() -> None:
    m, s = quantize_multiplier_tflite(np.array([0.5, 1e-12, 0.0, 0.75]))
    assert list(m[1:3]) == [0, 0] and list(s[1:3]) == [0, 0]
    assert m[0] == 1 << 30 and s[0] == 0
    np.testing.assert_allclose(m[3] * 2.0 ** (s[3] - 31.0), 0.75)
    # MultiplyByQuantizedMultiplier rounds half away from zero on the right shift
    # (x * 0.5 exact, then a right shift by 1: 1.5 -> 2, -1.5 -> -2, 0.5 -> 1, -0.5 -> -1)
    got = multiply_by_quantized_multiplier(np.array([6, -6, 2, -2]), np.int64(1 << 30), np.int64(-1))
    np.testing.assert_array_equal(got, [2, -2, 1, -1])


def test_builders_reject_bad_shapes_with_a_fix() -> None:
    g = TfliteGraph()
    x = g.tensor("input", [-1, 8, 8, 3], np.float32)
    with pytest.raises(ValueError, match="OHWI"):
        tc.conv2d(g, x, np.zeros((4, 3, 3, 5)), np.zeros(4))
    with pytest.raises(ValueError, match="depth multiplier 1"):
        tc.depthwise_conv2d(g, x, np.zeros((1, 3, 3, 4)), np.zeros(4))
    with pytest.raises(ValueError, match="'same' or 'valid'"):
        tc.max_pool2d(g, x, 2, padding="full")
    with pytest.raises(ValueError, match="relu6"):
        tc.conv2d(g, x, np.zeros((4, 3, 3, 3)), np.zeros(4), act="gelu")
    with pytest.raises(ValueError, match="reshape it first"):
        tc.conv1d(g, x, np.zeros((4, 3, 3)), np.zeros(4))
    q1, q2 = activation_qparams(-1, 1), activation_qparams(-2, 2)
    xq = g.tensor("xq", [-1, 8, 8, 3], np.int8, q=q1)
    with pytest.raises(ValueError, match="act_q"):
        tc.conv2d_int8(g, xq, np.ones((4, 3, 3, 3)), np.zeros(4), q2, q2)
    with pytest.raises(ValueError, match="act_q"):
        tc.mean_hw_int8(g, x, q1, q1)  # a float tensor
