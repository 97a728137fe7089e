"""Post-training techniques on bare ONNX files (no IR): prune-weights and svd-weights."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from harness.compress.posttrain import PruneWeights, SvdWeights
from harness.errors import CompressionError
from harness.ir.data import Dataset
from harness.ir.model import Model

RNG = np.random.default_rng(0)
W1 = RNG.normal(size=(32, 48)).astype(np.float32)
B1 = RNG.normal(size=48).astype(np.float32)
W2T = RNG.normal(size=(10, 48)).astype(np.float32)  # Gemm transB=1: stored (out, in)


def _model() -> Model:
    h = onnx.helper
    g = h.make_graph(
        [
            h.make_node("MatMul", ["x", "w1"], ["a"]),
            h.make_node("Add", ["a", "b1"], ["b"]),
            h.make_node("Tanh", ["b"], ["t"]),  # not convertible to the IR: stays a bare file
            h.make_node("Gemm", ["t", "w2"], ["y"], transB=1),
        ],
        "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 32])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 10])],
        [onnx.numpy_helper.from_array(a, n) for a, n in ((W1, "w1"), (B1, "b1"), (W2T, "w2"))],
    )
    return Model(files={"onnx": h.make_model(g, opset_imports=[h.make_opsetid("", 17)]).SerializeToString()})


def _data() -> Dataset:
    x = RNG.normal(size=(16, 32)).astype(np.float32)
    return Dataset("t", x, np.zeros(16, np.int64), x)


def _run(m: Model, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(m.files["onnx"], providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def _inits(m: Model) -> dict[str, np.ndarray]:
    g = onnx.load_from_string(m.files["onnx"]).graph
    return {i.name: onnx.numpy_helper.to_array(i) for i in g.initializer}


def test_prune_weights_zeroes_the_smallest_weights_only() -> None:
    base, ds = _model(), _data()
    out = PruneWeights(sparsity=0.5, min_size=100).fit_transform(base, ds)
    w = _inits(out)
    assert (w["w1"] == 0).mean() == pytest.approx(0.5, abs=0.01)
    kept = w["w1"] != 0
    assert np.abs(W1[kept]).min() >= np.abs(W1[~kept]).max()
    np.testing.assert_array_equal(w["b1"], B1)  # biases (< min_size) untouched
    h = out.history[-1]
    assert h["technique"] == "prune-weights" and h["fine_tuned"] is False and h["on"] == "onnx"
    np.testing.assert_allclose(
        _run(out, ds.x_eval), np.tanh(ds.x_eval @ w["w1"] + B1) @ w["w2"].T, rtol=1e-4, atol=1e-4
    )


def test_svd_weights_factors_matmul_and_gemm_transposed() -> None:
    base, ds = _model(), _data()
    out = SvdWeights(ratio=0.5, min_size=100).fit_transform(base, ds)
    w = _inits(out)
    r1 = int(0.5 * 32 * 48 / (32 + 48))
    assert w["w1__svd_u"].shape == (32, r1) and w["w1"].shape == (r1, 48)
    assert (
        w["w2__svd_u"].shape[0] == 48 and w["w2"].shape[1] == w["w2__svd_u"].shape[1]
    )  # (out, r) for transB
    h = out.history[-1]
    assert h["fine_tuned"] is False and h["params_after"] <= 0.5 * h["params_before"]
    u, s, vt = np.linalg.svd(W1.astype(np.float64), full_matrices=False)
    best = (u[:, :r1] * s[:r1]) @ vt[:r1]
    np.testing.assert_allclose(w["w1__svd_u"] @ w["w1"], best, rtol=1e-3, atol=1e-3)
    ref = np.tanh(ds.x_eval @ w["w1__svd_u"] @ w["w1"] + B1) @ w["w2__svd_u"] @ w["w2"].T
    np.testing.assert_allclose(_run(out, ds.x_eval), ref, rtol=1e-3, atol=1e-3)


def test_post_training_needs_an_onnx_file() -> None:
    with pytest.raises(CompressionError, match="int8-litert"):
        PruneWeights().fit_transform(Model(files={"tflite": b"x"}), _data())
    with pytest.raises(CompressionError, match="would save parameters"):
        SvdWeights(ratio=0.5, min_size=10**6).fit_transform(_model(), _data())


def test_float_tflite_mlp_converts_back_to_the_ir() -> None:
    from harness.ir.export.tflite_export import network_to_tflite
    from harness.ir.importers.tflite_import import tflite_to_network
    from harness.ir.layers import Dense
    from harness.ir.network import Network

    net = Network([Dense(W1, B1, "relu"), Dense(W2T.T, np.zeros(10, np.float32))])
    imp = tflite_to_network(network_to_tflite(net))
    assert imp.net.describe() == "32-dense-48-dense-10" and imp.net.layers[0].act == "relu"
    x = _data().x_eval
    np.testing.assert_allclose(imp.net.forward(x), net.forward(x), rtol=1e-6)


def test_int8_tflite_does_not_convert() -> None:
    import importlib.util
    from pathlib import Path

    from harness.ir.importers.onnx_import import NotConvertible
    from harness.ir.importers.tflite_import import tflite_to_network

    spec = importlib.util.find_spec("pymicro_wakeword")
    if spec is None or spec.origin is None:
        pytest.skip("pymicro-wakeword is not installed")
    raw = (Path(spec.origin).parent / "models" / "okay_nabu.tflite").read_bytes()
    with pytest.raises(NotConvertible, match="operator CONCATENATION"):  # a streaming model's state
        tflite_to_network(raw)
