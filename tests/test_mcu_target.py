"""The ``mcu`` target on QEMU: upload, on-device accuracy, deterministic windows, simulated energy,
budget refusal, and invalid windows on a reset or a stall."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from mcu_support import needs_qemu, random_model

from harness.errors import TargetError, WindowInvalid
from harness.ir.data import Dataset
from harness.ir.layers.lowrank import LowRank
from harness.ir.model import Model, Variant
from harness.ir.network import Network
from harness.mcu import reference
from harness.mcu.blob import codec
from harness.mcu.footprint import firmware_sizes
from harness.meters.mcu_sim import McuSimMeter, SimConfig
from harness.pipeline.variants import Base, produce_artefact
from harness.targets import TARGETS, Artefact, ArtefactFile
from harness.targets.mcu import McuConfig, McuTarget

pytestmark = [pytest.mark.slow, needs_qemu]


def _target(tmp: Path, **kw: object) -> McuTarget:
    cfg = McuConfig(name="qemu", kind="mcu", board="qemu-mps2-an386", qemu_monitor=str(tmp / "mon"), **kw)
    return TARGETS.get("mcu")(cfg)  # type: ignore[return-value]


@pytest.fixture(scope="module")
def data() -> tuple[Network, np.ndarray, np.ndarray, bytes]:
    rng = np.random.default_rng(21)
    net, _ = random_model("dense-wide", rng)
    x_calib = rng.normal(size=(64, net.in_dim)).astype(np.float32)
    x_eval = rng.normal(size=(300, net.in_dim)).astype(np.float32)
    return net, x_calib, x_eval, codec.export_blob(net, x_calib)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[McuTarget]:
    t = _target(tmp_path_factory.mktemp("mcu"), timeout_s=1.0, infer_timeout_s=3.0)
    with t:
        yield t


def _variant(tmp: Path, net: Network, blob_bytes: bytes | None) -> Variant:
    files = {}
    if blob_bytes is not None:
        (tmp / "model.blob").write_bytes(blob_bytes)
        files["blob"] = tmp / "model.blob"
    net.save(tmp / "net.npz")
    meta = {"task": "t", "technique": "int8", "steps": [{"technique": "int8", "params": {"mode": "static"}}]}
    return Variant("t", "v", "k", files, meta, tmp / "net.npz")


def _load(target: McuTarget, v: Variant, tmp: Path, x_calib: np.ndarray | None = None) -> None:
    """As the runner does: the variant pipeline produces the MCU blob, the target loads it."""
    data = Dataset("t", np.zeros((1, 1), np.float32), np.zeros(1), x_calib)
    base = Base("t", "base-key", Model(), data)
    target.load(v, produce_artefact(base, v, target.artefact, tmp / "cache"))


def test_fp32_and_dynamic_variants_are_not_run_as_int8(target: McuTarget, data, tmp_path: Path) -> None:
    net, *_ = data
    net.save(tmp_path / "net.npz")
    fp32 = Variant("t", "fp32", "k", {}, {"technique": "fp32", "steps": []}, tmp_path / "net.npz")
    assert "full-integer int8 only" in (target.supports(fp32) or "")
    dyn = Variant(
        "t",
        "d",
        "k",
        {},
        {"technique": "int8", "steps": [{"technique": "int8", "params": {"mode": "dynamic"}}]},
        tmp_path / "net.npz",
    )
    assert "not static int8" in (target.supports(dyn) or "")


def test_predict_on_device_equals_reference(target: McuTarget, data, tmp_path: Path) -> None:
    net, x_calib, x_eval, b = data
    _load(target, _variant(tmp_path, net, b), tmp_path)
    y = target.predict(x_eval)
    ref = reference.predict(b, x_eval)
    assert np.array_equal(y, ref)
    labels = net.forward(x_eval).argmax(1)
    assert (y.argmax(1) == labels).mean() == (ref.argmax(1) == labels).mean()
    # an MLP blob's row carries RAM and flash too: the firmware's static buffers, the blob in flash
    info = target.info()
    fw = firmware_sizes(target._elf)  # type: ignore[arg-type]
    assert info["arena_bytes"] == info["scratch_bytes"] == 0 and "version 1" in info["footprint"]
    assert info["ram_bytes"] == fw.runtime_ram_bytes > 0
    assert info["flash_bytes"] == len(b) + fw.image_bytes


def test_variant_without_blob_is_exported_from_its_network(target: McuTarget, data, tmp_path: Path) -> None:
    net, x_calib, x_eval, b = data
    v = _variant(tmp_path, net, None)
    assert target.supports(v) is None and target.artefact is Artefact.MCU_BLOB
    _load(target, v, tmp_path, x_calib)  # the pipeline exports and calibrates, the target uploads
    assert target.blob == codec.variant_blob(v, x_calib)  # the same bytes as a direct export
    assert codec.read_blob(target.blob).model_id == "t"  # the task name becomes the EEMBC model id
    assert np.array_equal(target.predict(x_eval), reference.predict(b, x_eval))


def test_load_refuses_another_artefact_kind(target: McuTarget, data, tmp_path: Path) -> None:
    net, *_ = data
    onnx = ArtefactFile(Artefact.ONNX, tmp_path / "model.onnx")
    with pytest.raises(TargetError, match="loads blob files, was given onnx"):
        target.load(_variant(tmp_path, net, None), onnx)


def test_supports_names_missing_layers(target: McuTarget, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    net = Network([LowRank(rng.normal(size=(8, 2)), rng.normal(size=(2, 8)), np.zeros(8))])
    why = target.supports(_variant(tmp_path, net, None))
    assert why is not None and "0:lowrank" in why and "monarch" in why and "dense" in why


def test_windows_are_deterministic_and_energy_is_simulated(target: McuTarget, data, tmp_path: Path) -> None:
    net, _, x_eval, b = data
    _load(target, _variant(tmp_path, net, b), tmp_path)
    target.set_inputs(x_eval)
    meter = McuSimMeter(SimConfig(kind="mcu-sim"))
    meter.bind_target(target.info())
    meter.start()
    w1 = target.window(0.02)
    meter.observe(w1)
    w2 = target.window(0.02)
    meter.observe(w2)
    trace = meter.stop()
    assert w1.simulated is not None and w1.simulated.instructions == w1.extra["instructions"]
    assert w1.n == w2.n and w1.instr_per_inference == w2.instr_per_inference > 0
    assert w1.extra["instructions"] == w2.extra["instructions"]
    jpi = target.profile.energy.joules_per_instruction  # type: ignore[union-attr]
    e, method = meter.window_energy(trace, w1.t_start, w1.t_end, w1.n)
    assert method == "icount" and e == pytest.approx(w1.extra["instructions"] * jpi)
    assert meter.info().energy_class == "simulated" and "STM32L4R5ZI" in meter.info().model
    assert w1.extra["simulated_s"] == pytest.approx(w1.extra["instructions"] / 120e6)  # CPI 1 at 120 MHz
    # m-lap-us under -icount shift=0 is virtual time: one instruction per ns (1 us resolution); the
    # window's own figures are on the named MCU's 120 MHz clock, the clock its energy is priced at
    assert w1.extra["dut_lap_s"] == pytest.approx(w1.extra["instructions"] * 1e-9, abs=2e-6)
    assert w1.dut_s == w1.extra["simulated_s"]
    assert float(w1.latencies_s[0]) == pytest.approx(
        w1.instr_per_inference / 120e6, rel=1e-5
    )  # rounded to 0.1
    assert e / w1.n == pytest.approx(jpi * 120e6 * float(w1.latencies_s[0]))  # E = P_run × latency


def test_a_fresh_target_reports_the_same_instruction_count(target: McuTarget, data, tmp_path: Path) -> None:
    net, _, x_eval, b = data
    _load(target, _variant(tmp_path, net, b), tmp_path)
    target.set_inputs(x_eval)
    first = target.window(0.01).instr_per_inference
    with _target(tmp_path) as t2:
        t2.load_blob(b)
        t2.set_inputs(x_eval)
        assert t2.window(0.01).instr_per_inference == first


def test_too_big_model_is_refused_before_sending(data, tmp_path: Path) -> None:
    _, _, _, b = data
    prof = (Path(__file__).parents[1] / "boards" / "qemu-mps2-an386.toml").read_text()
    small = tmp_path / "tiny-board.toml"
    small.write_text(prof.replace("model_ram_bytes = 2097152", "model_ram_bytes = 4096"))
    with TARGETS.get("mcu")(McuConfig(name="tiny", kind="mcu", board=str(small))) as t:
        sent = t.dut.tx_bytes  # type: ignore[attr-defined]
        with pytest.raises(
            TargetError, match=rf"blob is {len(b)} bytes but board .* has 4096 bytes of model RAM"
        ):
            t.load_blob(b)  # type: ignore[attr-defined]
        assert t.dut.tx_bytes == sent  # type: ignore[attr-defined]  # nothing was sent


def test_reset_mid_window_invalidates_it_then_recovers(target: McuTarget, data, tmp_path: Path) -> None:
    net, _, x_eval, b = data
    _load(target, _variant(tmp_path, net, b), tmp_path)
    probe = target._probe
    threading.Timer(0.3, lambda: target.qemu.monitor("system_reset")).start()
    with pytest.raises(WindowInvalid, match="reset"):
        target.window(30.0)  # ~4e9 simulated cycles: still running when the reset hits
    w = target.window(0.01)  # model and input uploaded again
    assert w.n > 0 and target._probe == probe


def test_stalled_dut_invalidates_the_window(target: McuTarget, data, tmp_path: Path) -> None:
    net, _, _, b = data
    _load(target, _variant(tmp_path, net, b), tmp_path)
    target.qemu.monitor("stop")
    try:
        t0 = time.monotonic()
        with pytest.raises(WindowInvalid, match="stalled"):
            target.window(0.01)
        assert time.monotonic() - t0 < 10
    finally:
        target.qemu.monitor("cont")
    assert target.window(0.01).n > 0


def test_close_stops_qemu(tmp_path: Path) -> None:
    t = _target(tmp_path)
    t.open()
    proc = t.qemu.proc
    t.close()
    assert proc.poll() is not None and t.qemu is None
