"""Artefacts: targets declare the file they load, the variant pipeline alone produces (and caches) it;
the ``mcu-sim`` meter prices the windows handed to it (no module-level ledger)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.errors import ModelError, TargetError
from harness.ir.data import Dataset
from harness.ir.export.onnx_export import network_to_onnx_bytes
from harness.ir.layers import Dense
from harness.ir.model import Model, Variant
from harness.ir.network import Network
from harness.mcu.blob import codec as blob
from harness.meters.mcu_sim import McuSimMeter, SimConfig
from harness.pipeline import variants
from harness.pipeline.variants import Base, produce_artefact
from harness.targets import Artefact, ArtefactFile, SimulatedEnergy, Window
from harness.targets.local import CpuConfig, CpuTarget
from harness.targets.mcu import McuConfig, McuTarget
from harness.targets.ssh import RUNTIME_ARTEFACT


def _net(seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    return Network(
        [Dense(rng.normal(size=(8, 16)), np.zeros(16), "relu"), Dense(rng.normal(size=(16, 3)), np.zeros(3))]
    )


def _base(x_calib: np.ndarray) -> Base:
    data = Dataset("t", np.zeros((2, 8), np.float32), np.zeros(2), x_calib)
    return Base("t", "base-key", Model(), data)


def _variant(tmp: Path, net: Network, key: str = "vkey") -> Variant:
    tmp.mkdir(parents=True, exist_ok=True)
    net.save(tmp / "net.npz")
    (tmp / "model.onnx").write_bytes(network_to_onnx_bytes(net))
    meta = {"task": "t", "technique": "int8", "steps": [{"technique": "int8", "params": {"mode": "static"}}]}
    return Variant("t", "v", key, {"onnx": tmp / "model.onnx"}, meta, tmp / "net.npz")


def test_the_pipeline_exports_and_caches_the_mcu_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = _net()
    x_calib = np.random.default_rng(1).normal(size=(32, 8)).astype(np.float32)
    v = _variant(tmp_path / "v", net)
    cache = tmp_path / "cache"
    art = produce_artefact(_base(x_calib), v, Artefact.MCU_BLOB, cache)
    assert art.kind is Artefact.MCU_BLOB and art.path.parent.parent == cache / "artefacts"
    assert art.read_bytes() == blob.variant_blob(v, x_calib)  # calibrated on the task's calibration rows
    assert blob.read_blob(art.read_bytes()).model_id == "t"

    def no_export(*_: object) -> bytes:
        raise AssertionError("a cached blob must not be exported again")

    monkeypatch.setattr(variants, "variant_blob", no_export)
    assert produce_artefact(_base(x_calib), v, Artefact.MCU_BLOB, cache) == art
    monkeypatch.undo()
    other = produce_artefact(_base(x_calib * 3), v, Artefact.MCU_BLOB, cache)  # other calibration rows
    assert other.path != art.path and other.read_bytes() != art.read_bytes()
    assert [p.name for p in (cache / "artefacts").rglob("*") if p.is_file()] == [
        "model.blob"
    ] * 2  # no temp files


def test_a_variants_own_blob_is_used_and_checked(tmp_path: Path) -> None:
    v = _variant(tmp_path / "v", _net())
    own = tmp_path / "v" / "model.blob"
    own.write_bytes(blob.export_blob(_net(), np.ones((4, 8), np.float32)))
    v = Variant(v.task, v.name, v.key, {**v.files, "blob": own}, v.meta, v.net_path)
    assert (
        produce_artefact(_base(np.ones((4, 8), np.float32)), v, Artefact.MCU_BLOB, tmp_path / "c").path == own
    )
    own.write_bytes(b"not a blob")
    with pytest.raises(ModelError):
        produce_artefact(_base(np.ones((4, 8), np.float32)), v, Artefact.MCU_BLOB, tmp_path / "c")


def test_file_artefacts_come_from_the_variant(tmp_path: Path) -> None:
    v = _variant(tmp_path / "v", _net())
    base = _base(np.ones((4, 8), np.float32))
    assert produce_artefact(base, v, Artefact.ONNX, tmp_path / "c") == ArtefactFile(
        Artefact.ONNX, v.files["onnx"]
    )
    with pytest.raises(ModelError, match=r"has no \.tflite file"):
        produce_artefact(base, v, Artefact.TFLITE, tmp_path / "c")


def test_targets_declare_their_artefact_per_runtime(tmp_path: Path) -> None:
    assert CpuTarget(CpuConfig(name="c", kind="cpu", runtime="ort")).artefact is Artefact.ONNX
    litert = CpuTarget(CpuConfig(name="c", kind="cpu", runtime="litert"))
    assert litert.artefact is Artefact.TFLITE
    assert RUNTIME_ARTEFACT == {
        "ort": Artefact.ONNX,
        "litert": Artefact.TFLITE,
        "tflite-runtime": Artefact.TFLITE,
    }
    assert McuTarget(McuConfig(name="m", kind="mcu", board="qemu-mps2-an386")).artefact is Artefact.MCU_BLOB
    v = _variant(tmp_path / "v", _net())
    with pytest.raises(TargetError, match="loads tflite files, was given onnx"):
        litert.load(v, ArtefactFile(Artefact.ONNX, v.files["onnx"]))


def _window(t0: float, t1: float, instructions: float | None) -> Window:
    sim = None if instructions is None else SimulatedEnergy(instructions, 2e-12, "test MCU")
    return Window(n=10, t_start=t0, t_end=t1, latencies_s=np.array([0.1]), dut_s=1.0, simulated=sim)


def test_mcu_sim_prices_the_windows_it_is_handed() -> None:
    import time

    meter = McuSimMeter(SimConfig(kind="mcu-sim"))
    meter.start()
    a, b, c = time.perf_counter(), time.perf_counter(), time.perf_counter()
    w = _window(a, b, 1_000_000.0)
    meter.observe(w)
    meter.observe(_window(b, c, None))  # a window without simulated energy is ignored
    trace = meter.stop()
    assert trace.valid and trace.energy_j is not None and trace.energy_j[-1] == pytest.approx(2e-6)
    assert meter.window_energy(trace, w.t_start, w.t_end, w.n) == (2e-6, "icount")
    # a second meter has seen nothing: no state is shared between meters
    other = McuSimMeter(SimConfig(kind="mcu-sim", joules_per_instruction=1e-12))
    other.start()
    empty = other.stop()
    assert not empty.valid and "no emulated MCU window was observed" in empty.problem
    other.start()
    other.observe(_window(time.perf_counter(), time.perf_counter(), 1_000_000.0))
    assert other.stop().energy_j[-1] == pytest.approx(1e-6)  # type: ignore[index]  # the override wins
