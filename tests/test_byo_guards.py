"""Bring-your-own models on the MCU and in init-task: user-level reasons, no silent wrong guesses.

* a user's ONNX MLP that converts reaches the MCU (QEMU) through ``frugalbench run``;
* a model that does not convert, and a file that is already int8, are skipped with a reason that says
  what to do (no internal function names, no advice that cannot work);
* init-task refuses to guess a metric for an autoencoder's 640-wide output against 0/1 labels.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from mcu_support import needs_qemu
from onnx import TensorProto, helper, numpy_helper

from harness.byo.inspect import tflite_quantized
from harness.byo.starter import write_starter
from harness.compress.int8 import Int8
from harness.errors import CompressionError, ConfigError
from harness.ir.data import Dataset
from harness.ir.export.tflite_export import network_to_tflite, network_to_tflite_int8
from harness.ir.layers import Dense
from harness.ir.model import Model, Variant
from harness.ir.network import Network
from harness.ir.quant import calibrate
from harness.targets.mcu import McuConfig, McuTarget

INTERNAL = re.compile(r"set_calibration|variant_blob|harness\.|x_calib\b|\(\)")


def _net(seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    return Network(
        [
            Dense(rng.normal(size=(8, 6)).astype(np.float32), np.zeros(6, np.float32), "relu"),
            Dense(rng.normal(size=(6, 3)).astype(np.float32), np.zeros(3, np.float32)),
        ]
    )


def _autoencoder(path: Path, width: int = 640, hidden: int = 16) -> None:
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(0, 0.05, (width, hidden)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.05, (hidden, width)).astype(np.float32), "w2")
    g = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["y"]),
        ],
        "ae",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, width])],
        [w1, w2],
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_init_task_refuses_to_score_an_autoencoder_against_binary_labels(tmp_path: Path) -> None:
    _autoencoder(tmp_path / "ae.onnx")
    x = np.random.default_rng(1).normal(size=(40, 640)).astype(np.float32)
    np.savez(tmp_path / "ae.npz", x_eval=x, y_eval=np.arange(40) % 2)
    with pytest.raises(ConfigError) as e:
        write_starter(tmp_path / "ae.onnx", tmp_path / "ae.npz", tmp_path / "s.toml")
    msg = str(e.value)
    assert "640" in msg and "--metric" in msg and "auc" in msg
    assert not (tmp_path / "s.toml").exists()  # no suite with a metric that scores 0.0000


def test_init_task_scores_reconstruction_targets_with_mae_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _autoencoder(tmp_path / "ae.onnx")
    x = np.random.default_rng(1).normal(size=(40, 640)).astype(np.float32)
    np.savez(tmp_path / "ae.npz", x_eval=x, y_eval=x)
    with caplog.at_level(logging.WARNING):
        s = write_starter(tmp_path / "ae.onnx", tmp_path / "ae.npz", tmp_path / "s.toml")
    assert s.metric == "mae" and s.value is not None and s.value > 0
    assert "reconstruction" in caplog.text


def test_a_quantised_tflite_is_recognised_even_with_float_input() -> None:
    net = _net()
    x = np.random.default_rng(0).normal(size=(32, 8)).astype(np.float32)
    assert tflite_quantized(network_to_tflite_int8(net, calibrate(net, x)))
    assert not tflite_quantized(network_to_tflite(net))


def test_an_int8_tflite_keeps_its_own_quantisation_on_the_mcu(tmp_path: Path, mcu: McuTarget) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from harness.mcu import reference
    from harness.mcu.blob.codec import tflite_int8_model, write_blob

    net = _net()
    x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    raw = network_to_tflite_int8(net, calibrate(net, x))
    it = Interpreter(model_content=raw)
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], x.shape)
    it.allocate_tensors()
    it.set_tensor(inp["index"], x)
    it.invoke()
    litert = it.get_tensor(it.get_output_details()[0]["index"])
    ours = reference.predict(write_blob(tflite_int8_model(raw)), x)
    np.testing.assert_allclose(ours, litert, rtol=0, atol=1e-6)  # the same int8 arithmetic, bit for bit
    (tmp_path / "model.tflite").write_bytes(raw)
    v = Variant(
        "q",
        "fp32",
        "k",
        {"tflite": tmp_path / "model.tflite"},
        {"technique": "fp32", "int8_file": True},
        None,
    )
    assert mcu.supports(v) is None


def test_int8_on_an_int8_file_says_what_to_do() -> None:
    x = np.zeros((4, 8), np.float32)
    ds = Dataset("t", x, np.zeros(4), x, meta={"quantized": True})
    comp = Int8().fit(Model(files={"tflite": b"int8 file"}), ds)
    with pytest.raises(CompressionError) as e:
        comp.transform(Model(files={"tflite": b"int8 file"}))
    assert "already int8" in str(e.value) and 'technique = "fp32"' in str(e.value)


@pytest.fixture
def mcu() -> McuTarget:
    return McuTarget(McuConfig(name="m", kind="mcu", board="qemu-mps2-an386"))


def test_mcu_skip_reasons_are_user_level(mcu: McuTarget) -> None:
    not_converted = Variant(
        "vad",
        "int8-static",
        "k",
        {},
        {
            "technique": "int8",
            "ir": "not converted: operator Pad (node 'p')",
            "steps": [{"technique": "int8", "params": {"mode": "static"}}],
        },
        None,
    )
    why = mcu.supports(not_converted) or ""
    assert "Pad" in why and "CPU target" in why and not INTERNAL.search(why)
    int8_file = Variant("q", "fp32", "k", {}, {"technique": "fp32", "steps": [], "int8_file": True}, None)
    why = mcu.supports(int8_file) or ""
    assert "already int8" in why and "float model" in why and not INTERNAL.search(why)
    assert "add an int8 step" not in why  # following that advice fails on an int8 file


@needs_qemu
@pytest.mark.slow
def test_a_users_onnx_mlp_and_int8_tflite_reach_the_mcu(tmp_path: Path) -> None:
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    from harness.pipeline.runner import run_suite
    from harness.results.store import Store
    from harness.suite import load_suite

    x, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((16,), max_iter=80, random_state=0).fit(x[:1000] / 16, y[:1000])
    onx = skl2onnx.to_onnx(
        clf, (x[:1] / 16).astype(np.float32), options={id(clf): {"zipmap": False}}, target_opset=17
    )
    (tmp_path / "m.onnx").write_bytes(onx.SerializeToString())
    np.savez(tmp_path / "d.npz", x_eval=x[1000:1200] / 16, y_eval=y[1000:1200])
    net = Network(
        [Dense(clf.coefs_[0], clf.intercepts_[0], "relu"), Dense(clf.coefs_[1], clf.intercepts_[1])]
    )
    xc = (x[:500] / 16).astype(np.float32)
    (tmp_path / "q.tflite").write_bytes(network_to_tflite_int8(net, calibrate(net, xc)))
    (tmp_path / "s.toml").write_text(
        '[suite]\nname = "byo-mcu"\n[run]\nwarmup_s = 0.01\nwindow_s = 0.02\nmin_windows = 2\n'
        "max_windows = 2\nci_target = 0.9\n"
        '[[tasks]]\nname = "digits"\nmodel = "m.onnx"\ndata = "d.npz"\nmetric = "accuracy"\n'
        'min_accuracy = 0.5\n[tasks.input]\noutput = "probabilities"\n'
        '[[tasks]]\nname = "int8-file"\nmodel = "q.tflite"\ndata = "d.npz"\nmetric = "accuracy"\n'
        "min_accuracy = 0.5\n"
        '[[variants]]\nname = "int8-static"\ntechnique = "int8"\nparams = { mode = "static" }\n'
        'tasks = ["digits"]\n'
        '[[variants]]\nname = "as-given"\ntechnique = "fp32"\ntasks = ["int8-file"]\n'
        '[[targets]]\nname = "qemu-m4"\nkind = "mcu"\nboard = "qemu-mps2-an386"\n'
    )
    run_suite(load_suite(tmp_path / "s.toml"), tmp_path / "r.sqlite", cache=tmp_path / "cache")
    with Store.open(tmp_path / "r.sqlite", create=False) as s:
        rows = {r.task: r for r in s.results()}
    assert set(rows) == {"digits", "int8-file"}
    for r in rows.values():
        assert r.status == "done", r.reason
        assert r.accuracy is not None and r.accuracy > 0.7  # measured on the emulated MCU
