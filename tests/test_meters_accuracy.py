"""Integration accuracy: each driver against its emulator (pty or socket://, exactly as hardware) on
profiles of known energy. The integrated window energy must match the exact integral within 0.1 %
and the marker edges must fall within one sample of the true edges."""

from __future__ import annotations

import time

import numpy as np
import pytest

from harness.emulators.base import EmulatorServer, Faults
from harness.emulators.fnb58 import FakeHid
from harness.emulators.ina2xx import InaEmulator
from harness.emulators.joulescope import FakeDriver
from harness.emulators.lpm01a import Lpm01aEmulator
from harness.emulators.otii import OtiiEmulator
from harness.emulators.ppk2 import Ppk2Emulator
from harness.emulators.profile import Profile
from harness.emulators.um34c import UmEmulator
from harness.errors import FrugalbenchError, WindowInvalid
from harness.meters.base import Meter, Trace
from harness.meters.fnb58 import Fnb58, FnbConfig
from harness.meters.ina2xx import Ina226, InaConfig
from harness.meters.joulescope import Joulescope, JoulescopeConfig
from harness.meters.lpm01a import Lpm01a, Lpm01aConfig
from harness.meters.otii import Otii, OtiiConfig
from harness.meters.ppk2 import Ppk2, Ppk2Config
from harness.meters.um34c import Um34c, UmConfig
from harness.meters.windows import gpio_window, host_window
from harness.pipeline.measure import measure
from harness.suite import RunRules
from harness.targets.base import Window

TOL = 1e-3
KINDS = ["constant", "square", "random"]


def record(meter: Meter, seconds: float) -> Trace:
    meter.open()
    try:
        meter.start()
        time.sleep(seconds)
        return meter.stop()
    finally:
        meter.close()


def profile(kind: str, window: tuple[float, float], **kw: float) -> Profile:
    return Profile(kind=kind, low_w=kw.get("low", 0.002), high_w=kw.get("high", 0.05), dt=kw.get("dt", 0.00731),
                   seed=7, windows=[window], voltage_v=kw.get("v", 3.3))  # fmt: skip


def check_gpio(trace: Trace, prof: Profile, window: tuple[float, float], rate: float, channel: int) -> float:
    assert trace.valid, trace.problem
    origin = trace.extra.get("meter_t0_s", 0.0)  # a meter streaming since open(): its time of trace t=0
    truth = prof.energy(*window)
    window = (window[0] - origin, window[1] - origin)
    w = gpio_window(trace, 10, channel=channel)
    assert w.valid and w.method == "gpio"
    assert abs(w.t0 - window[0]) <= 1 / rate and abs(w.t1 - window[1]) <= 1 / rate
    err = w.e_win_j / truth - 1
    assert abs(err) < TOL, f"integrated {w.e_win_j} J vs exact {truth} J"
    return err


@pytest.mark.parametrize("kind", KINDS)
def test_ppk2_window_energy_socket(kind: str) -> None:
    win = (0.1012345, 0.6007891)
    prof = profile(kind, win)
    with EmulatorServer(Ppk2Emulator(prof), "socket://127.0.0.1:0") as srv:
        meter = Ppk2(Ppk2Config(kind="ppk2", url=srv.url, vdd_mv=3300))
        trace = record(meter, 0.75)
    check_gpio(trace, prof, win, 100_000, channel=0)
    assert meter.info().energy_class == "simulated"
    e, method = meter.window_energy(trace, 0.0, 0.0, 10)
    assert method == "gpio" and e == pytest.approx(prof.energy(*win), rel=TOL)


@pytest.mark.parametrize("kind", KINDS)
def test_lpm01a_window_energy_pty(kind: str) -> None:
    win = (0.3123, 2.2771)
    prof = profile(kind, win, dt=0.0137)
    with EmulatorServer(Lpm01aEmulator(prof, speed=4.0), "pty") as srv:
        meter = Lpm01a(Lpm01aConfig(kind="lpm01a", url=srv.url, freq_hz=5000))
        trace = record(meter, 0.8)
    check_gpio(trace, prof, win, 5000, channel=7)
    assert meter.info().energy_class == "simulated"


def test_lpm01a_current_mode_window_energy() -> None:
    win = (0.3123, 1.9771)
    prof = profile("square", win, dt=0.0137)
    with EmulatorServer(Lpm01aEmulator(prof, speed=4.0), "socket://127.0.0.1:0") as srv:
        meter = Lpm01a(Lpm01aConfig(kind="lpm01a", url=srv.url, freq_hz=5000, output="current", volt_mv=1800))
        trace = record(meter, 0.8)
    check_gpio(trace, prof, win, 5000, channel=7)


@pytest.mark.parametrize("kind", KINDS)
def test_otii_window_energy(kind: str) -> None:
    win = (0.1011, 0.5013)
    prof = profile(kind, win)
    with EmulatorServer(OtiiEmulator(prof)) as srv:
        trace = record(Otii(OtiiConfig(kind="otii", url=srv.url)), 0.6)
    check_gpio(trace, prof, win, 4000, channel=1)


@pytest.mark.parametrize("kind", KINDS)
def test_joulescope_window_energy_fake_driver(kind: str) -> None:
    win = (0.3234567, 0.6567891)  # the instrument streams from open(): leave time before start()
    prof = profile(kind, win)
    # The fake streams in real time from a thread: leave slack for a loaded CI machine.
    trace = record(Joulescope(JoulescopeConfig(kind="joulescope"), transport=FakeDriver(prof)), 1.6)
    check_gpio(trace, prof, win, 1_000_000, channel=0)


def host_check(meter: Meter, watts: float, settle: float = 0.25, length: float = 0.6) -> None:
    meter.open()
    try:
        meter.start()
        time.sleep(settle)
        t0 = time.perf_counter()
        time.sleep(length)
        t1 = time.perf_counter()
        time.sleep(0.4)  # slack after the window for slow polls on a loaded machine
        trace = meter.stop()
    finally:
        meter.close()
    assert trace.valid, trace.problem
    w = host_window(trace, t0, t1, 5, idle=[(t0 - 0.2, t0)], max_gap_s=2.0)  # gaps: see the fault tests
    assert w.valid and w.method == "host-clock", w.problem
    assert abs(w.e_win_j / (watts * (t1 - t0)) - 1) < TOL
    assert w.e_dyn_per_inf_j == pytest.approx(0.0, abs=TOL * w.e_per_inf_j)


def test_um25c_host_clock_energy_pty() -> None:
    prof = Profile(kind="constant", low_w=4.2, voltage_v=5.1)
    with EmulatorServer(UmEmulator(prof, model="um25c", update_hz=20), "pty") as srv:
        host_check(Um34c(UmConfig(kind="um34c", url=srv.url, poll_hz=10, simulated=True)), 4.2)


def test_ina226_host_clock_energy_socket() -> None:
    prof = Profile(kind="constant", low_w=4.0, voltage_v=5.1)
    with EmulatorServer(InaEmulator(prof, chip="ina226"), "socket://127.0.0.1:0") as srv:
        host_check(Ina226(InaConfig(kind="ina226", url=srv.url)), 4.0)


def test_fnb58_host_clock_energy_fake_hid() -> None:
    prof = Profile(kind="constant", low_w=2.5, voltage_v=5.1)
    host_check(Fnb58(FnbConfig(kind="fnb58"), transport=FakeHid(prof)), 2.5)


def test_marker_meter_without_markers_falls_back_to_host_clock() -> None:
    prof = Profile(kind="constant", low_w=0.01)  # no marker windows: the DUT has no marker pin wired
    with EmulatorServer(Ppk2Emulator(prof)) as srv:
        meter = Ppk2(Ppk2Config(kind="ppk2", url=srv.url))
        meter.open()
        meter.start()
        time.sleep(0.1)
        t0 = time.perf_counter()
        time.sleep(0.3)
        t1 = time.perf_counter()
        time.sleep(0.1)
        trace = meter.stop()
        meter.close()
    assert trace.valid and not trace.markers
    e, method = meter.window_energy(trace, t0, t1, 1)
    assert method == "host-clock"
    assert e == pytest.approx(0.01 * (t1 - t0), rel=TOL)


def test_ppk2_ampere_mode_uses_the_configured_supply_voltage() -> None:
    win = (0.1012345, 0.4007891)
    prof = profile("square", win, v=1.8)  # the DUT runs from its own 1.8 V supply through the PPK2
    with EmulatorServer(Ppk2Emulator(prof)) as srv:
        meter = Ppk2(Ppk2Config(kind="ppk2", url=srv.url, mode="ampere", voltage_v=1.8))
        trace = record(meter, 0.5)
    check_gpio(trace, prof, win, 100_000, channel=0)


def test_slow_polled_meter_trace_covers_the_window_end() -> None:
    """A 2 Hz meter stopped right after a window still has a reading after the window's end."""
    prof = Profile(kind="constant", low_w=3.0, voltage_v=5.1)
    with EmulatorServer(UmEmulator(prof, model="um34c", update_hz=2), "socket://127.0.0.1:0") as srv:
        m = Um34c(UmConfig(kind="um34c", url=srv.url, poll_hz=2, simulated=True))
        m.open()
        try:
            m.start()
            time.sleep(0.7)
            t_end = time.perf_counter()
            trace = m.stop()
        finally:
            m.close()
    assert trace.valid, trace.problem
    assert trace.t_s[-1] >= t_end


class SleepTarget:
    """A target whose window is ``n`` inferences of nothing: the meter sees the profile's power."""

    def window(self, window_s: float, warmup_s: float = 0.0) -> Window:
        t0 = time.perf_counter()
        time.sleep(window_s)
        t1 = time.perf_counter()
        return Window(n=10, t_start=t0, t_end=t1, latencies_s=np.full(10, (t1 - t0) / 10), dut_s=t1 - t0)


def test_um34c_idle_window_of_a_cpu_job_is_covered_and_measured() -> None:
    """``idle_s = 1.0`` with a 2 Hz UM34C (the window loop of a CPU job): P_idle is the profile's
    power, not a 'window not covered by the trace' error."""
    prof = Profile(kind="constant", low_w=2.5, voltage_v=5.1)
    rules = RunRules(warmup_s=0.0, window_s=0.6, min_windows=1, max_windows=1, idle_s=1.0)
    with EmulatorServer(UmEmulator(prof, model="um34c", update_hz=2)) as srv:
        m = Um34c(UmConfig(kind="um34c", url=srv.url, poll_hz=2))
        m.open()
        try:
            result = measure(SleepTarget(), m, rules)  # type: ignore[arg-type]
        finally:
            m.close()
    assert result.p_idle_w == pytest.approx(5.1 * 0.490, abs=1e-9)  # 2.5 W at 10 mV / 1 mA resolution
    assert [r.valid for r in result.rows] == [True]


def test_a_failed_idle_window_is_a_one_line_reason() -> None:
    """A meter that stops answering during the idle window fails the job with one line saying why."""
    prof = Profile(kind="constant", low_w=2.5, voltage_v=5.1)
    rules = RunRules(warmup_s=0.0, window_s=0.3, min_windows=1, max_windows=1, idle_s=1.0)
    emu = UmEmulator(prof, Faults(drop_at_s=0.05, stall_s=1e9), update_hz=20)
    with EmulatorServer(emu) as srv:
        m = Um34c(UmConfig(kind="um34c", url=srv.url, poll_hz=10, timeout_s=0.1, max_failures=3))
        m.open()
        try:
            with pytest.raises(WindowInvalid) as err:
                measure(SleepTarget(), m, rules)  # type: ignore[arg-type]
        finally:
            m.close()
    assert isinstance(err.value, FrugalbenchError)  # the runner stores it as the job's failure reason
    assert "\n" not in str(err.value) and "stopped answering" in str(err.value)
