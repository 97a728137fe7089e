"""The bench twin end to end: ``frugalbench run`` on the emulated Cortex-M4 measured by an emulated
LPM01A / PPK2 driven by the board's own activity (marker edges, sleep) in virtual time.

Energy per inference goes through the real meter driver, the marker window and the store: it must be
classed ``simulated`` with marker method ``gpio`` and equal the twin's exact energy within 0.5 %; windows
hit by dropped samples, a missing marker or a lost meter are stored invalid and re-run, never as good.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from mcu_support import needs_qemu

from harness.emulators.base import EmulatorServer
from harness.emulators.twin import BenchTwin, PowerModel, Timeline, TwinFaults, TwinWindow, twin_meter
from harness.pipeline.api import run_suite
from harness.results.record import Result
from harness.results.store import Store

EXAMPLES = Path(__file__).resolve().parents[1] / "benches" / "examples"
TOLERANCE = 0.005


def test_timeline_prices_active_and_sleep_time_on_the_named_mcu() -> None:
    """10 µs of virtual time active (10,000 instructions at shift 0) is 83.3 µs at 120 MHz; sleep
    keeps its virtual length; the charge is exact at every instant."""
    model = PowerModel(0.02, 0.005, 1.8, 120e6, 1.0, 0, "test")
    tl = Timeline(model)
    tl.record(ord("B"), 25_000_000)
    tl.record(ord("M"), 250)  # 10 µs virtual, active
    tl.record(ord("m"), 500)
    tl.record(ord("S"), 500)
    tl.record(ord("A"), 25_500)  # 1 ms asleep
    assert tl.edges == [(pytest.approx(10e-6 * 1e3 / 120), 1), (pytest.approx(2 * 10e-6 * 1e3 / 120), 0)]
    t_sleep = 2 * 10e-6 * 1e3 / 120
    assert tl.t == pytest.approx(t_sleep + 1e-3)
    q = tl.charge(np.array([t_sleep, t_sleep + 1e-3]))
    assert q[0] == pytest.approx(0.02 * t_sleep)
    assert q[1] - q[0] == pytest.approx(0.005 * 1e-3)


def test_example_suites_differ_from_the_real_bench_only_in_board_and_urls() -> None:
    """The real-bench suite is the twin suite with the board and the port URLs changed."""

    def keys(path: Path) -> list[str]:
        lines = [ln.split("#")[0].strip() for ln in path.read_text().splitlines()]
        return [ln for ln in lines if ln and not re.match(r"^(board|port|activity|url) =", ln)]

    assert keys(EXAMPLES / "bench-twin.toml") == keys(EXAMPLES / "nucleo-l4r5zi-lpm01a.toml")
    assert keys(EXAMPLES / "bench-twin-ppk2.toml") == keys(EXAMPLES / "nucleo-l4r5zi-ppk2.toml")


@dataclass
class TwinRun:
    result: Result
    windows: list[dict]
    twin: list[TwinWindow]


def _run(tmp: Path, suite: str, meter: str, faults: list[TwinFaults]) -> TwinRun:
    twin = BenchTwin(PowerModel.from_board("qemu-mps2-an386"), faults=faults)
    with twin, EmulatorServer(twin_meter(meter, twin)) as srv:
        text = (EXAMPLES / suite).read_text()
        text = text.replace("socket://127.0.0.1:7101", srv.url).replace("socket://127.0.0.1:7102", twin.url)
        path = tmp / suite
        path.write_text(text)
        results = run_suite(path, db=tmp / "twin.sqlite")
    assert len(results) == 1 and results[0].status == "done", results[0].reason
    with Store.open(tmp / "twin.sqlite", create=False) as store:
        assert results[0].id is not None
        windows = store.windows(results[0].id)
    return TwinRun(results[0], windows, list(twin.windows))


FAULTS = [
    TwinFaults(window=1, drop_n=20, drop_at_s=0.2),
    TwinFaults(window=3, miss_marker=True),
    TwinFaults(window=5, lose_meter_at_s=0.3),
]


@pytest.fixture(scope="module", params=[("bench-twin.toml", "lpm01a"), ("bench-twin-ppk2.toml", "ppk2")])
def twin_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinRun]:
    suite, meter = request.param
    yield _run(tmp_path_factory.mktemp(meter), suite, meter, FAULTS)


@pytest.mark.slow
@needs_qemu
def test_energy_is_simulated_gpio_and_equals_the_twins_exact_energy(twin_run: TwinRun) -> None:
    r = twin_run.result
    assert r.energy.measurement_class == "simulated"
    assert r.energy.marker_method == "gpio"
    clean = [w for w in twin_run.twin if not w.faulted]
    good = [w for w in twin_run.windows if w["valid"]]
    assert len(good) == 3 and len(clean) >= 3
    exact = np.median([w.energy_j for w in clean]) / good[0]["n"]
    assert r.energy.per_inference_j is not None
    assert abs(r.energy.per_inference_j - exact) / exact < TOLERANCE
    for w, t in zip(good, clean[-3:], strict=True):  # each good window against its own truth
        assert abs(w["energy_j"] - t.energy_j) / t.energy_j < TOLERANCE
        # the marker window is the DUT's timed section (plus the marker records' few instructions)
        assert w["dut_s"] == pytest.approx(t.t1_s - t.t0_s, rel=1e-4)


@pytest.mark.slow
@needs_qemu
def test_faulted_windows_are_stored_invalid_and_rerun(twin_run: TwinRun) -> None:
    rows = twin_run.windows
    assert [w["valid"] for w in rows] == [0, 1, 0, 1, 0, 1], [(w["valid"], w["problem"]) for w in rows]
    problems = [w["problem"] for w in rows if not w["valid"]]
    assert "dropped" in problems[0] or "overflow" in problems[0]
    assert "marker" in problems[1]
    assert "lost" in problems[2]
    assert all(w["energy_j"] is None for w in rows if not w["valid"])


@needs_qemu
def test_qemu_says_when_no_twin_listens(tmp_path: Path) -> None:
    from harness.errors import TargetError
    from harness.mcu.build import build_firmware
    from harness.mcu.qemu import QemuDut

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"socket://127.0.0.1:{s.getsockname()[1]}"
    q = QemuDut(build_firmware("qemu-mps2-an386"), activity=url)
    with pytest.raises(TargetError, match="no bench twin listening"):
        q.start()


@pytest.mark.slow
@needs_qemu
def test_mlperf_energy_mode_stock_dut_behind_an_io_manager_on_the_twin(tmp_path: Path) -> None:
    """MLPerf Tiny's energy mode whole: a stock DUT (model built in, plain EEMBC) behind an IO manager at
    9600 baud, powered and windowed by the twin's LPM01A through its timestamp pin."""
    from mcu_support import random_model

    from harness.emulators.iomanager import IoManagerEmulator
    from harness.mcu.blob import codec
    from harness.mcu.build import build_firmware
    from harness.mcu.qemu import QemuDut
    from harness.meters.lpm01a import Lpm01a, Lpm01aConfig
    from harness.targets.mcu import McuConfig, McuTarget

    rng = np.random.default_rng(3)
    net, _ = random_model("dense", rng)
    blob = codec.export_blob(net, rng.normal(size=(16, net.in_dim)).astype(np.float32), model_id="ic01")
    (tmp_path / "m.blob").write_bytes(blob)
    elf = build_firmware("qemu-mps2-an386", model_blob=tmp_path / "m.blob")
    twin = BenchTwin(PowerModel.from_board("qemu-mps2-an386"))
    with (
        twin,
        EmulatorServer(twin_meter("lpm01a", twin)) as srv,
        QemuDut(elf, activity=twin.url) as q,
        IoManagerEmulator(q.url, dut_baud=9600) as iom,
    ):
        cfg = McuConfig(name="dut", kind="mcu", board="qemu-mps2-an386", port=iom.url, io_manager=True)
        meter = Lpm01a(Lpm01aConfig(kind="lpm01a", url=srv.url, volt_mv=1800, marker_method="gpio"))
        with McuTarget(cfg) as t, meter:
            t.load_blob(blob)
            meter.begin_window()
            w = t.window(0.5)
            ew = meter.end_window(w)
    exact = twin.windows[-1]
    assert t.ext is None and ew.valid and ew.method == "gpio"
    assert abs(ew.e_win_j - exact.energy_j) / exact.energy_j < TOLERANCE
    assert w.dut_s == pytest.approx(exact.t1_s - exact.t0_s, rel=1e-3)  # latency on the twin's clock


def test_emulate_twin_command_serves_both_ports() -> None:
    """``frugalbench emulate twin``: the meter answers as the twin; the activity port listens."""
    import subprocess
    import sys

    from harness.meters.ppk2 import Ppk2, Ppk2Config

    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli.meters", "emulate", "twin", "ppk2", "--url", "socket://127.0.0.1:0",
         "--activity", "socket://127.0.0.1:0", "--drop", "2:10"],
        stdout=subprocess.PIPE, text=True, env={"COLUMNS": "300", "PATH": ""},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        urls = re.findall(r"socket://127\.0\.0\.1:\d+", proc.stdout.readline())
        assert len(urls) == 2
        meter = Ppk2(Ppk2Config(kind="ppk2", url=urls[0]))
        meter.open()
        assert meter.virtual_clock and meter.info().energy_class == "simulated"
        meter.close()
        with socket.create_connection(("127.0.0.1", int(urls[1].rsplit(":", 1)[1])), timeout=2):
            pass
    finally:
        proc.terminate()
        proc.wait(5)
