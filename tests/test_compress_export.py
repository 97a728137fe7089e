"""Exported ONNX and TFLite (float and int8) compute what the IR computes, for every structured layer."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from ai_edge_litert.interpreter import Interpreter

from harness.ir.export.onnx_export import network_to_onnx_bytes
from harness.ir.export.tflite_export import network_to_tflite, network_to_tflite_int8
from harness.ir.layers import Butterfly, Dense, Layer, LowRank, Monarch
from harness.ir.layers.butterfly import random_butterfly
from harness.ir.network import Network
from harness.ir.quant import calibrate
from harness.ir.train import calibrate_inner


def _run_onnx(blob: bytes, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]  # type: ignore[no-any-return]


def _run_tflite(blob: bytes, x: np.ndarray) -> np.ndarray:
    it = Interpreter(model_content=blob)
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], list(x.shape))
    it.allocate_tensors()
    it.set_tensor(inp["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])  # type: ignore[no-any-return]


def _middle(kind: str, rng: np.random.Generator) -> Layer:
    if kind == "monarch":
        return Monarch(
            rng.standard_normal((8, 8, 8)) / 3,
            rng.standard_normal((8, 8, 8)) / 3,
            rng.standard_normal(64) * 0.1,
            "relu",
        )
    if kind == "monarch_rect":
        # 64 -> 48: k=4 blocks of 16 inputs, q=4 blocks of 12 outputs... via (k, p, q) = (4, 16, 4), s = 12
        return Monarch(
            rng.standard_normal((4, 16, 4)) / 4,
            rng.standard_normal((4, 4, 12)) / 2,
            rng.standard_normal(48) * 0.1,
            "relu",
        )
    if kind == "butterfly":
        return Butterfly(random_butterfly(64, rng), rng.standard_normal(64) * 0.1, "relu")
    if kind == "lowrank":
        return LowRank(
            rng.standard_normal((64, 6)) / 3,
            rng.standard_normal((6, 64)) / 3,
            rng.standard_normal(64) * 0.1,
            "relu",
        )
    w = rng.standard_normal((64, 64)) / 8
    w[np.abs(w) < 0.15] = 0.0  # a pruned dense layer
    return Dense(w, rng.standard_normal(64) * 0.1, "relu")


KINDS = ["monarch", "monarch_rect", "butterfly", "lowrank", "pruned"]


def _net(kind: str) -> tuple[Network, np.ndarray]:
    rng = np.random.default_rng(abs(hash(kind)) % 1000)
    mid = _middle(kind, rng)
    net = Network(
        [
            Dense(rng.standard_normal((20, 64)) / 4, rng.standard_normal(64) * 0.1, "relu"),
            mid,
            Dense(rng.standard_normal((mid.out_dim, 10)) / 6, np.zeros(10)),
        ]
    )
    return net, rng.standard_normal((300, 20)).astype(np.float32)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch", [1, 37])
def test_float_exports_match_the_ir(kind: str, batch: int) -> None:
    net, x = _net(kind)
    x = x[:batch]
    ref = net.forward(x)
    np.testing.assert_allclose(_run_onnx(network_to_onnx_bytes(net), x), ref, atol=2e-4, rtol=1e-4)
    np.testing.assert_allclose(_run_tflite(network_to_tflite(net), x), ref, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_int8_tflite_tracks_the_ir(kind: str) -> None:
    net, x = _net(kind)
    calibrate_inner(net, x)
    ref = net.forward(x)
    out = _run_tflite(network_to_tflite_int8(net, calibrate(net, x)), x)
    rel_rms = float(np.sqrt(((out - ref) ** 2).mean()) / ref.std())
    # per-tensor int8 through 3 layers; the butterfly's 6 levels each requantise
    assert rel_rms < (0.15 if kind == "butterfly" else 0.06), rel_rms
    assert (out.argmax(1) == ref.argmax(1)).mean() > (0.8 if kind == "butterfly" else 0.9)


@pytest.mark.parametrize("n", [16, 32, 64])
def test_butterfly_monarch_form_computes_the_same_function(n: int) -> None:
    rng = np.random.default_rng(n)
    layer = Butterfly(random_butterfly(n, rng), rng.standard_normal(n), "relu", form="monarch")
    x = rng.standard_normal((40, n)).astype(np.float32)
    w1, w2 = layer.monarch_factors()
    mon = Monarch(w1, w2, np.zeros(n)).linear(x)
    h = (n.bit_length() - 1) // 2
    # the Monarch output grid (P, m) transposed is the butterfly's order
    np.testing.assert_allclose(
        mon.reshape(-1, 1 << h, n >> h).transpose(0, 2, 1).reshape(-1, n), layer.linear(x), atol=1e-4
    )
    net = Network([layer])
    ref = net.forward(x)
    np.testing.assert_allclose(_run_onnx(network_to_onnx_bytes(net), x), ref, atol=2e-4, rtol=1e-4)
    np.testing.assert_allclose(_run_tflite(network_to_tflite(net), x), ref, atol=2e-4, rtol=1e-4)
    calibrate_inner(net, x)
    out = _run_tflite(network_to_tflite_int8(net, calibrate(net, x)), x)
    assert float(np.sqrt(((out - ref) ** 2).mean()) / ref.std()) < 0.06
    assert layer.macs() < n * n


@pytest.mark.parametrize("form", ["matmul", "einsum", "bcast"])
def test_every_monarch_onnx_form_computes_the_same(form: str) -> None:
    net, x = _net("monarch_rect")
    net.layers[1].form = form  # type: ignore[attr-defined]
    np.testing.assert_allclose(_run_onnx(network_to_onnx_bytes(net), x), net.forward(x), atol=2e-4, rtol=1e-4)


def test_monarch_tflite_uses_the_batched_matmul_form() -> None:
    from ai_edge_litert import schema_py_generated as tfl

    net, _ = _net("monarch")
    model = tfl.ModelT.InitFromPackedBuf(network_to_tflite(net), 0)
    names = {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}
    ops = [names[model.operatorCodes[o.opcodeIndex].builtinCode] for o in model.subgraphs[0].operators]
    assert ops.count("BATCH_MATMUL") == 2 and ops.count("TRANSPOSE") == 3
    assert ops.count("FULLY_CONNECTED") == 2  # only the two dense layers around it
