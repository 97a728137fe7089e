"""Convolutional networks on the ``mcu`` target under QEMU: a CNN variant and a user's int8 ``.tflite``
CNN run as operator graphs (blob version 2), bit-exact with the NumPy interpreter and with LiteRT's
reference kernels; RAM and flash reach the result rows; a model over the board's RAM is refused before
anything is sent; ``frugalbench bench MODEL.tflite --target qemu-m4``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from mcu_support import needs_qemu

from harness.ir import architectures
from harness.ir.data import Dataset
from harness.ir.export.prepare import quantisable
from harness.ir.export.tflite_export import network_to_tflite_int8
from harness.ir.layers import Conv2D, Layer, Monarch
from harness.ir.layers.pointwise import Pointwise
from harness.ir.model import Model, Variant
from harness.ir.network import Network
from harness.mcu.blob.codec import graph_blob, read_any_blob
from harness.mcu.blob.graph import QGraph
from harness.mcu.blob.tflite_graph import tflite_graph
from harness.mcu.footprint import ModelTooLarge
from harness.mcu.graph_ref import run_graph
from harness.pipeline.mcu_bench import litert_reference_int8
from harness.pipeline.variants import Base, produce_artefact
from harness.targets import TARGETS
from harness.targets.mcu import McuConfig, McuTarget

pytestmark = [pytest.mark.slow, needs_qemu]
INT8_STATIC = {
    "task": "t",
    "technique": "int8",
    "steps": [{"technique": "int8", "params": {"mode": "static"}}],
}


def _target(**kw: object) -> McuTarget:
    return TARGETS.get("mcu")(McuConfig(name="qemu-m4", kind="mcu", board="qemu-mps2-an386", **kw))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def target() -> Iterator[McuTarget]:
    with _target() as t:
        yield t


@cache
def _digits() -> tuple[Network, np.ndarray, np.ndarray]:
    """The digits CNN (untrained: bit-exactness does not depend on training), calibration and eval rows."""
    net = architectures.digits_cnn(seed=0)
    rng = np.random.default_rng(0)
    return (
        net,
        rng.uniform(0, 1, (64, 64)).astype(np.float32),
        rng.uniform(0, 1, (120, 64)).astype(np.float32),
    )


@cache
def _kws_file() -> bytes:
    """An int8 DS-CNN .tflite (MLPerf Tiny's KWS shape) written by our exporter."""
    net = architectures.ds_cnn_kws()
    form, act_q = quantisable(
        net, np.random.default_rng(1).standard_normal((64, net.in_dim)).astype(np.float32)
    )
    return network_to_tflite_int8(form, act_q)


def _load(target: McuTarget, v: Variant, tmp: Path, x_calib: np.ndarray | None) -> None:
    """As the runner does: the variant pipeline produces the blob, the target checks and uploads it."""
    data = Dataset("t", np.zeros((1, 1), np.float32), np.zeros(1), x_calib)
    target.load(v, produce_artefact(Base("t", "base-key", Model(), data), v, target.artefact, tmp / "cache"))


def test_cnn_variant_runs_bit_exact_with_numpy_and_litert(target: McuTarget, tmp_path: Path) -> None:
    net, x_calib, x_eval = _digits()
    net.save(tmp_path / "net.npz")
    v = Variant("t", "int8", "k", {}, INT8_STATIC, tmp_path / "net.npz")
    assert target.supports(v) is None
    _load(target, v, tmp_path, x_calib)
    assert target.blob is not None
    g = read_any_blob(target.blob)
    assert isinstance(g, QGraph) and {"conv2d", "maxpool", "mean", "dense"} <= {op.kind for op in g.ops}
    # the device's int8 outputs on the float eval rows ...
    xq = g.quantize_input(x_eval)
    dev = target.predict_int8(xq)
    np.testing.assert_array_equal(dev, run_graph(g, xq))  # ... are the NumPy interpreter's
    form, act_q = quantisable(net, x_calib)  # ... and LiteRT's reference kernels' on our int8 file
    raw = network_to_tflite_int8(form, act_q)
    np.testing.assert_array_equal(dev, litert_reference_int8(raw, tflite_graph(raw), xq))
    np.testing.assert_array_equal(target.predict(x_eval), g.dequantize_output(dev))
    info = target.info()
    assert info["ram_bytes"] > info["arena_bytes"] + info["scratch_bytes"] > 0
    assert info["flash_bytes"] > len(target.blob)


@pytest.mark.parametrize("form", ["pruned", "monarch"])
def test_compressed_cnn_variants_run_their_pointwise_kernels(
    target: McuTarget, tmp_path: Path, form: str
) -> None:
    """The KWS DS-CNN with its 1x1 convolutions 90 % pruned (CSR kernels, bit-exact with LiteRT on our
    int8 file) or Monarch-factored (pwconv_monarch, bit-exact with the NumPy interpreter)."""
    net = architectures.ds_cnn_kws()
    layers: list[Layer] = []
    for la in net.layers:
        if isinstance(la, Conv2D) and la.w.shape[:2] == (1, 1):
            if form == "pruned":
                la.w[np.abs(la.w) < np.quantile(np.abs(la.w), 0.9)] = 0
            else:
                la = Pointwise(
                    Monarch.from_dense(la.w.reshape(la.w.shape[2:]), la.b, None, 8, 8), la.in_shape, la.act
                )
        layers.append(la)
    net = Network(layers)
    net.save(tmp_path / "net.npz")
    rng = np.random.default_rng(3)
    x_calib = rng.standard_normal((32, net.in_dim)).astype(np.float32)
    v = Variant("t", form, "k", {}, INT8_STATIC, tmp_path / "net.npz")
    assert target.supports(v) is None
    _load(target, v, tmp_path, x_calib)
    g = read_any_blob(target.blob or b"")
    assert isinstance(g, QGraph)
    kind = "pwconv_csr" if form == "pruned" else "pwconv_monarch"
    assert [op.kind for op in g.ops].count(kind) == 4
    xq = g.quantize_input(rng.standard_normal((6, net.in_dim)).astype(np.float32))
    dev = target.predict_int8(xq)
    np.testing.assert_array_equal(dev, run_graph(g, xq))
    if form == "pruned":
        form_net, act_q = quantisable(net, x_calib)
        raw = network_to_tflite_int8(form_net, act_q)
        np.testing.assert_array_equal(dev, litert_reference_int8(raw, tflite_graph(raw), xq))


def test_users_int8_tflite_cnn_keeps_its_quantisation(target: McuTarget, tmp_path: Path) -> None:
    raw = _kws_file()
    (tmp_path / "model.tflite").write_bytes(raw)
    v = Variant(
        "kws",
        "as-given",
        "k",
        {"tflite": tmp_path / "model.tflite"},
        {"task": "kws", "int8_file": True},
        None,
    )
    assert target.supports(v) is None
    _load(target, v, tmp_path, None)  # no calibration: the file's own scales and zero points
    g = tflite_graph(raw)
    xq = np.random.default_rng(2).integers(-128, 128, (24, g.in_tensor.size)).astype(np.int8)
    np.testing.assert_array_equal(target.predict_int8(xq), litert_reference_int8(raw, g, xq))


def test_supports_names_what_a_users_int8_file_lacks(target: McuTarget, tmp_path: Path) -> None:
    from harness.ir.export import tflite_conv as tc
    from harness.ir.export.tflite_graph import TfliteGraph
    from harness.ir.quant import activation_qparams

    q = activation_qparams(-1, 1)
    g = TfliteGraph()
    x = g.tensor("input", [-1, 8, 8, 3], np.int8, q=q)
    y = tc.depthwise_conv2d_int8(g, x, np.ones((1, 3, 3, 3)), np.zeros(3), q, q)
    g.sub.operators[-1].builtinOptions.dilationWFactor = 2
    (tmp_path / "d.tflite").write_bytes(g.finish([x], [y]))
    v = Variant(
        "d", "as-given", "k", {"tflite": tmp_path / "d.tflite"}, {"task": "d", "int8_file": True}, None
    )
    why = target.supports(v) or ""
    assert "DEPTHWISE_CONV_2D #0" in why and "dilation" in why


def test_model_over_the_boards_ram_is_refused_before_upload(tmp_path: Path) -> None:
    g = tflite_graph(_kws_file())
    blob = graph_blob(g)
    prof = (Path(__file__).parents[1] / "boards" / "qemu-mps2-an386.toml").read_text()
    small = tmp_path / "small-ram.toml"
    small.write_text(prof.replace("ram_bytes = 4194304", "ram_bytes = 65536"))
    with TARGETS.get("mcu")(McuConfig(name="small", kind="mcu", board=str(small))) as t:
        sent = t.dut.tx_bytes  # type: ignore[attr-defined]
        with pytest.raises(ModelTooLarge) as e:
            t.load_blob(blob)  # type: ignore[attr-defined]
        assert t.dut.tx_bytes == sent  # type: ignore[attr-defined]  # nothing was sent
    msg = str(e.value)
    assert "does not fit" in msg and "RAM" in msg and "65,536 B" in msg and "of arena + scratch fit" in msg


# frugalbench bench MODEL.tflite --target qemu-m4


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
        timeout=600,
    )


def test_bench_tflite_on_qemu_m4_json_and_check(tmp_path: Path) -> None:
    path = tmp_path / "kws.tflite"
    path.write_bytes(_kws_file())
    r = _cli("bench", str(path), "--target", "qemu-m4", "--check", "--samples", "32", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["bit_exact"] is True and out["max_abs_diff"] == 0 and out["check_samples"] == 32
    assert out["energy_class"] == "simulated" and out["macs"] > 2_000_000
    instr = out["instructions_per_inference"]
    assert instr > out["macs"] / 4  # at most 4 MACs per instruction (SMLAD does 2)
    # latency and energy are the instruction count at the board's clock, CPI and power: consistent
    assert out["latency_ms"] == pytest.approx(instr * out["cycles_per_instruction"] / out["clock_hz"] * 1e3)
    assert out["energy_per_inference_j"] / (out["latency_ms"] / 1e3) == pytest.approx(0.0329)  # board mW
    assert out["ram_bytes"] > 0 and out["flash_bytes"] > out["blob_bytes"] > 0


def test_bench_refuses_an_unsupported_operator_in_one_line(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.find_spec("pymicro_wakeword")
    if spec is None or spec.origin is None:
        pytest.skip("pymicro-wakeword is not installed")
    model = Path(spec.origin).parent / "models" / "okay_nabu.tflite"
    r = _cli("bench", str(model), "--target", "qemu-m4", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "CALL_ONCE #0" in lines[0], r.stderr


# frugalbench run: a CNN variant and a user's int8 .tflite CNN on qemu-m4


def test_run_suite_with_cnns_on_qemu_m4(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    from harness.pipeline.runner import run_suite
    from harness.results.store import Store
    from harness.suite import load_suite

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    net = architectures.digits_cnn(seed=0)
    from harness.ir.train import train_network

    train_network(net, x[:1000], y[:1000], epochs=4, lr=1e-2, batch_size=32, seed=0)
    form, act_q = quantisable(net, x[:256])
    raw = network_to_tflite_int8(form, act_q)
    (tmp_path / "cnn.tflite").write_bytes(raw)
    x_eval, y_eval = x[1000:1300], y[1000:1300]
    np.savez(tmp_path / "d.npz", x_eval=x_eval, y_eval=y_eval)
    (tmp_path / "s.toml").write_text(
        '[suite]\nname = "cnn-mcu"\n[run]\nwarmup_s = 0.01\nwindow_s = 0.02\nmin_windows = 2\n'
        "max_windows = 2\nci_target = 0.9\n"
        '[[tasks]]\nname = "digits"\nrecipe = "digits_cnn"\nrecipe_params = { epochs = 3 }\n'
        'metric = "accuracy"\nmin_accuracy = 0.3\n'
        '[[tasks]]\nname = "int8-cnn"\nmodel = "cnn.tflite"\ndata = "d.npz"\nmetric = "accuracy"\n'
        "min_accuracy = 0.3\n"
        '[[variants]]\nname = "int8-static"\ntechnique = "int8"\nparams = { mode = "static" }\n'
        'tasks = ["digits"]\n'
        '[[variants]]\nname = "as-given"\ntechnique = "fp32"\ntasks = ["int8-cnn"]\n'
        '[[targets]]\nname = "qemu-m4"\nkind = "mcu"\nboard = "qemu-mps2-an386"\n'
    )
    run_suite(load_suite(tmp_path / "s.toml"), tmp_path / "r.sqlite", cache=tmp_path / "cache")
    with Store.open(tmp_path / "r.sqlite", create=False) as s:
        rows = {r.task: r for r in s.results() if r.target == "qemu-m4"}
    assert set(rows) == {"digits", "int8-cnn"}
    for r in rows.values():
        assert r.status == "done", r.reason
        assert r.latency.instr_per_inference and r.latency.instr_per_inference > 50_000
        assert r.model.ram_bytes and r.model.flash_bytes and r.model.flash_bytes > r.model.model_bytes  # type: ignore[operator]
        assert r.energy.measurement_class == "simulated"
    # the user's file: the device's accuracy is LiteRT's reference kernels' accuracy on the same rows
    g = tflite_graph(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = litert_reference_int8(raw, g, g.quantize_input(x_eval))
    assert rows["int8-cnn"].accuracy == pytest.approx(float((ref.argmax(1) == y_eval).mean()))
    assert rows["int8-cnn"].accuracy > 0.5


def test_bench_target_must_be_an_emulated_mcu_board(tmp_path: Path) -> None:
    from harness.errors import ConfigError
    from harness.pipeline.mcu_bench import bench_mcu

    path = tmp_path / "kws.tflite"
    path.write_bytes(_kws_file())
    with pytest.raises(ConfigError, match="not an MCU board profile; use one of qemu-m4, .*qemu-mps2-an386"):
        bench_mcu(path, target="raspberry-pi-5")
    with pytest.raises(ConfigError, match="emulated board .* real board nucleo-l4r5zi .* serial port"):
        bench_mcu(path, target="nucleo-l4r5zi")
