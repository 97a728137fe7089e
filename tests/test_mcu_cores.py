"""Every emulated core runs the same firmware sources: Cortex-M0 (microbit), M3 (mps2-an385), M4
(mps2-an386), M7 (mps2-an500), M33 (mps2-an505) and M55 (mps3-an547) boot under QEMU through the
``mcu`` target and compute the quick suite's int8 MLP shapes bit-exact with the NumPy reference; a
model larger than a core's RAM is refused with both sizes, by the harness and by the firmware.
One QEMU per core for the module (the ``target`` fixture)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from mcu_support import KINDS, needs_qemu, random_model

from harness.errors import TargetError
from harness.ir.layers import Dense
from harness.ir.network import Network
from harness.mcu import reference
from harness.mcu.blob import codec
from harness.mcu.blob.graph_codec import write_graph_blob
from harness.mcu.board import load_board
from harness.mcu.build import build_firmware
from harness.mcu.footprint import ModelTooLarge, check_fits, footprint
from harness.mcu.graph_ref import run_graph
from harness.mcu.plan import plan
from harness.mcu.protocol import DutCommandError
from harness.mcu.random_graph import kws_dscnn
from harness.meters.mcu_sim import McuSimMeter, SimConfig
from harness.targets import TARGETS
from harness.targets.mcu import McuConfig, McuTarget

pytestmark = [pytest.mark.slow, needs_qemu]

# board profile -> the core its QEMU machine emulates (QEMU's default CPU for that machine)
CORES = {
    "qemu-microbit": "cortex-m0",
    "qemu-mps2-an385": "cortex-m3",
    "qemu-mps2-an386": "cortex-m4f",
    "qemu-mps2-an500": "cortex-m7",
    "qemu-mps2-an505": "cortex-m33",
    "qemu-mps3-an547": "cortex-m55",
}


def _mlp(rng: np.random.Generator, dims: list[int]) -> Network:
    layers = [
        Dense(
            rng.normal(size=(a, b)) / np.sqrt(a),
            rng.normal(size=b) * 0.1,
            "relu" if i < len(dims) - 2 else None,
        )
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True))
    ]
    return Network(layers)


@pytest.fixture(scope="module")
def blobs() -> dict[str, tuple[bytes, np.ndarray]]:
    """The quick suite's int8 MLP shapes (digits 64-64-10, MNIST-1D 40-128-128-10), random weights."""
    rng = np.random.default_rng(18)
    out = {}
    for name, dims in (("digits", [64, 64, 10]), ("mnist1d", [40, 128, 128, 10])):
        net = _mlp(rng, dims)
        x = rng.normal(size=(40, dims[0])).astype(np.float32)
        out[name] = (codec.export_blob(net, x[:24]), x)
    return out


@pytest.fixture(scope="module", params=sorted(CORES))
def target(request: pytest.FixtureRequest) -> Iterator[McuTarget]:
    """One QEMU per core, started by the target from the board profile."""
    t = TARGETS.get("mcu")(McuConfig(name=request.param, kind="mcu", board=request.param))
    with t:
        yield t  # type: ignore[misc]


def test_profile_names_the_machine_and_core(target: McuTarget) -> None:
    p = target.profile
    info = target.info()
    assert info["cpu"] == CORES[p.name] and info["emulator"].startswith(
        f"qemu-system-arm -M {p.qemu_machine} "
    )
    assert p.energy is not None and p.energy.clock_hz > 0  # a named MCU's clock for simulated latency
    assert target.dut is not None and target.dut.command("name").lines == ["m-name-dut-[frugalbench]"]


def test_quick_suite_mlps_are_bit_exact_or_refused_with_sizes(target: McuTarget, blobs) -> None:
    budget = target.profile.budget
    for name, (blob, x) in blobs.items():
        if len(blob) > budget.model_ram_bytes:
            with pytest.raises(
                TargetError, match=rf"blob is {len(blob)} bytes but board .* has \d+ bytes of model RAM"
            ):
                target.load_blob(blob)
            # past the harness (a raw upload), the firmware refuses it too, naming the size
            assert target.dut is not None and target.dut.ext is not None
            assert target.dut.ext.model_max == budget.model_ram_bytes
            with pytest.raises(DutCommandError, match=rf"{len(blob)} bytes exceed the model area"):
                target.dut.bulk("model", blob)
            continue
        target.load_blob(blob)
        assert np.array_equal(target.predict(x), reference.predict(blob, x)), (target.profile.name, name)


def test_every_layer_kind_gives_the_reference_integers_on_every_core(target: McuTarget) -> None:
    """Each core's kernel path (portable C on M0/M3, SXTB16/SMLAD on M4/M7/M33, Helium on M55) on
    every layer kind, including column tails (in % 16, in % 4) and leftover rows (out % 4). The M4
    runs them all in test_mcu_firmware; the M7 and M33 compile the same DSP sources, so they run the
    kinds that reach its hand-written asm loops (to keep this file quick)."""
    rng = np.random.default_rng(181)
    same_as_m4 = target.profile.cpu in ("cortex-m4f", "cortex-m7", "cortex-m33")
    for kind in ["dense-wide", "monarch-wide", "butterfly"] if same_as_m4 else KINDS:
        net, opts = random_model(kind, rng)
        x = rng.normal(size=(12, net.in_dim)).astype(np.float32)
        blob = codec.export_blob(net, x, **opts)  # type: ignore[arg-type]
        if len(blob) > target.profile.budget.model_ram_bytes:
            continue
        target.load_blob(blob)
        assert np.array_equal(target.predict(x), reference.predict(blob, x)), (target.profile.name, kind)


@pytest.fixture(scope="module")
def kws_blob() -> tuple[bytes, np.ndarray, np.ndarray]:
    """MLPerf Tiny's KWS DS-CNN (random int8 weights) as a version 2 blob, inputs and reference outputs."""
    rng = np.random.default_rng(1818)
    g = kws_dscnn(rng)
    plan(g)
    x = rng.integers(-128, 128, size=(2, g.in_tensor.size)).astype(np.int8)
    return write_graph_blob(g), x, run_graph(g, x).reshape(len(x), -1)


def test_kws_dscnn_is_bit_exact_on_every_core_it_fits(target: McuTarget, kws_blob) -> None:
    """The whole DS-CNN (conv 10x4 on 1 channel, 4 x depthwise 3x3 + pointwise, avgpool, dense) through
    each core's kernel path (portable C, SXTB16/SMLAD, Helium); the 16 KiB micro:bit refuses it, with
    the sizes, before upload (its arena, RAM and model area are all too small)."""
    blob, x, want = kws_blob
    p = target.profile
    if p.name == "qemu-microbit":
        with pytest.raises(ModelTooLarge, match=r"does not fit qemu-microbit: tensor arena 16,000 B .* RAM "):
            check_fits(footprint(blob, p), p)
        with pytest.raises(ModelTooLarge, match=rf"blob {len(blob):,} B .* > the model area 8,192 B"):
            target.load_blob(blob)  # the target checks the same footprint first, before any upload
        return
    target.load_blob(blob)
    assert want.std() > 2 and np.array_equal(target.predict_int8(x), want), p.name


def test_windows_are_simulated_on_the_named_mcu_and_energy_is_unknown_without_a_power(target, blobs) -> None:
    """Latency is instructions / the named MCU's clock; a core whose profile names no run power keeps a
    valid window with its energy unknown (NaN here, None in the result row), never 0."""
    target.load_blob(blobs["digits"][0])
    target.set_inputs(blobs["digits"][1])
    meter = McuSimMeter(SimConfig(kind="mcu-sim"))
    meter.bind_target(target.info())
    meter.begin_window()
    w = target.window(0.001)
    ew = meter.end_window(w)
    em = target.profile.energy
    assert em is not None and ew.valid and w.instr_per_inference and w.instr_per_inference > 0
    assert w.extra["simulated_s"] == pytest.approx(w.extra["instructions"] / em.clock_hz)
    if em.power_w is None:
        assert np.isnan(ew.e_win_j) and "energy unknown" in ew.notes[0]
    else:
        assert ew.e_win_j == pytest.approx(w.extra["instructions"] * em.joules_per_instruction)


def test_microbit_budget_is_its_ram_and_mnist1d_does_not_fit(blobs) -> None:
    p = load_board("qemu-microbit")
    assert p.budget.ram_bytes == 16384 and p.budget.flash_bytes == 262144
    assert len(blobs["digits"][0]) <= p.budget.model_ram_bytes < len(blobs["mnist1d"][0])


def test_every_core_has_a_firmware_board_and_profile() -> None:
    for board in CORES:
        p = load_board(board)
        assert p.firmware_board == board and p.emulated
        assert Path(build_firmware(board)).is_file()


def test_bench_a_tflite_file_on_a_core_and_refuse_one_that_does_not_fit(tmp_path: Path) -> None:
    """``frugalbench bench MODEL.tflite --target BOARD``: costs on the named core, or the refusal."""
    import json

    from typer.testing import CliRunner

    from harness.cli.main import app
    from harness.ir.export.tflite_export import network_to_tflite

    rng = np.random.default_rng(3)
    small, big = tmp_path / "small.tflite", tmp_path / "big.tflite"
    small.write_bytes(network_to_tflite(_mlp(rng, [64, 64, 10])))
    big.write_bytes(network_to_tflite(_mlp(rng, [40, 128, 128, 10])))
    r = CliRunner().invoke(app, ["bench", str(small), "--target", "qemu-mps2-an505", "--windows", "2",
                                 "--window-s", "0.005", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["board"] == "qemu-mps2-an505" and out["macs"] == 64 * 64 + 64 * 10
    em = load_board("qemu-mps2-an505").energy
    assert em is not None and em.joules_per_instruction is not None
    assert out["latency_ms"] == pytest.approx(out["instructions_per_inference"] / em.clock_hz * 1e3, rel=0.02)
    assert out["energy_per_inference_j"] == pytest.approx(
        out["instructions_per_inference"] * em.joules_per_instruction, rel=0.02
    )
    r = CliRunner().invoke(app, ["bench", str(big), "--target", "qemu-microbit"])
    assert r.exit_code != 0 and "bytes but board qemu-microbit has 8192 bytes of model RAM" in str(
        r.exception
    )
