"""The IR exporters compute what the IR computes: ONNX and TFLite float, TFLite int8 within quantisation error."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from ai_edge_litert.interpreter import Interpreter

from harness.ir.export.onnx_export import network_to_onnx_bytes
from harness.ir.export.tflite_export import network_to_tflite, network_to_tflite_int8
from harness.ir.layers import Dense
from harness.ir.network import Network
from harness.ir.quant import QParams, calibrate, quantize_multiplier


def _net(rng: np.random.Generator, dims: list[int]) -> Network:
    layers = [
        Dense(rng.normal(0, 1 / np.sqrt(a), (a, b)), rng.normal(0, 0.1, b), "relu" if i < len(dims) - 2 else None)
        for i, (a, b) in enumerate(zip(dims, dims[1:], strict=False))
    ]
    return Network(layers)


def _tflite_run(model: bytes, x: np.ndarray) -> np.ndarray:
    it = Interpreter(model_content=model)
    it.resize_tensor_input(it.get_input_details()[0]["index"], list(x.shape))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


@pytest.mark.parametrize("dims", [[8, 4], [16, 32, 10], [64, 64, 64, 10]])
def test_float_exports_match_ir(dims: list[int]) -> None:
    rng = np.random.default_rng(len(dims))
    net = _net(rng, dims)
    x = rng.normal(size=(7, dims[0])).astype(np.float32)
    ref = net.forward(x)
    sess = ort.InferenceSession(network_to_onnx_bytes(net))
    np.testing.assert_allclose(sess.run(None, {"input": x})[0], ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_tflite_run(network_to_tflite(net), x), ref, rtol=1e-5, atol=1e-5)


def test_int8_tflite_tracks_float_within_quantisation_error() -> None:
    rng = np.random.default_rng(3)
    net = _net(rng, [32, 64, 10])
    x = rng.normal(size=(200, 32)).astype(np.float32)
    act_q = calibrate(net, x)
    out = _tflite_run(network_to_tflite_int8(net, act_q), x)
    ref = net.forward(x)
    step = float(act_q[-1].scale)
    # A few output steps of error through two requantised layers; argmax nearly always agrees.
    assert np.abs(out - ref).max() < 12 * step
    assert (out.argmax(1) == ref.argmax(1)).mean() > 0.95


def test_quantize_multiplier_reconstructs() -> None:
    m = np.array([0.5, 0.25, 1e-3, 0.9999, 0.0, 1.5])
    q, shift = quantize_multiplier(m)
    back = q.astype(np.float64) * 2.0 ** (shift.astype(np.float64) - 31)
    np.testing.assert_allclose(back, m, rtol=1e-9, atol=1e-12)
    assert q.dtype == np.int32 and (q >= 0).all()


def test_qparams_roundtrip_and_zero_exact() -> None:
    from harness.ir.quant import activation_qparams

    qp = activation_qparams(-1.0, 3.0)
    assert isinstance(qp, QParams)
    assert qp.dequantize(qp.quantize(np.array([0.0])))[0] == 0.0  # zero must be exactly representable
    x = np.linspace(-1, 3, 101)
    # half a step, plus float32 rounding of the dequantised value
    assert np.abs(qp.dequantize(qp.quantize(x)) - x).max() <= float(qp.scale) / 2 + 1e-6


def test_network_save_load_roundtrip(tmp_path) -> None:
    rng = np.random.default_rng(0)
    net = _net(rng, [5, 6, 3])
    net.save(tmp_path / "n.npz")
    back = Network.load(tmp_path / "n.npz")
    x = rng.normal(size=(4, 5)).astype(np.float32)
    np.testing.assert_array_equal(back.forward(x), net.forward(x))
    assert back.describe() == "5-dense-6-dense-3"


def test_dead_unit_bias_does_not_overflow() -> None:
    """A unit with ~0 weights but a real bias (seen in trained sklearn MLPs) keeps its bias in int8."""
    rng = np.random.default_rng(5)
    w = rng.normal(size=(8, 4)).astype(np.float32)
    w[:, 2] = 6e-11
    net = Network([Dense(w, np.array([0.1, -0.2, 0.7, 0.3], np.float32))])
    x = rng.normal(size=(64, 8)).astype(np.float32)
    out = _tflite_run(network_to_tflite_int8(net, calibrate(net, x)), x)
    np.testing.assert_allclose(out[:, 2], 0.7, atol=0.02)
    assert np.abs(out - net.forward(x)).max() < 0.1
