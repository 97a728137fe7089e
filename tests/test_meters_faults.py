"""Injected faults (dropped samples, a corrupted byte, a disconnect mid-window, stale bytes, a wrong
baud rate) are each detected and reported; the window is then invalid and is never stored as good."""

from __future__ import annotations

import time

import numpy as np
import pytest
import serial

from harness.emulators.base import EmulatorServer, Faults
from harness.emulators.faultproxy import FaultProxy
from harness.emulators.fnb58 import FakeHid
from harness.emulators.ina2xx import InaEmulator
from harness.emulators.joulescope import FakeDriver
from harness.emulators.lpm01a import Lpm01aEmulator
from harness.emulators.otii import OtiiEmulator
from harness.emulators.ppk2 import Ppk2Emulator
from harness.emulators.profile import Profile
from harness.emulators.um34c import UmEmulator
from harness.errors import MeterError, MeterUnavailable, WindowInvalid
from harness.meters.base import Meter, Trace
from harness.meters.fnb58 import Fnb58, FnbConfig
from harness.meters.ina2xx import Ina219, Ina226, InaConfig
from harness.meters.joulescope import Joulescope, JoulescopeConfig
from harness.meters.lpm01a import Lpm01a, Lpm01aConfig
from harness.meters.otii import Otii, OtiiConfig
from harness.meters.ppk2 import Ppk2, Ppk2Config
from harness.meters.um34c import Um34c, UmConfig
from harness.meters.windows import gpio_window, host_window

PROF = Profile(kind="square", low_w=0.002, high_w=0.02, dt=0.01, windows=[(0.05, 0.5)])


def run(meter: Meter, seconds: float, keep_open: bool = False) -> Trace:
    meter.open()
    meter.start()
    time.sleep(seconds)
    trace = meter.stop()
    if not keep_open:
        meter.close()
    return trace


def assert_invalid(trace: Trace, *words: str) -> None:
    assert not trace.valid
    for w in words:
        assert w in trace.problem, trace.problem


# --- LPM01A -----------------------------------------------------------------------------------
def lpm(faults: Faults, url: str = "socket://127.0.0.1:0", seconds: float = 0.45, **cfg: object) -> Trace:
    with EmulatorServer(Lpm01aEmulator(PROF, faults, speed=4.0), url) as srv:
        return run(Lpm01a(Lpm01aConfig(kind="lpm01a", url=srv.url, freq_hz=5000, **cfg)), seconds)


def test_lpm01a_dropped_samples_found_at_the_time_stamp() -> None:
    trace = lpm(Faults(drop_at_s=0.3, drop_n=50))
    assert trace.dropped == 50
    assert_invalid(trace, "50 samples dropped", "overflow")
    w = gpio_window(trace, 10, channel=7)
    assert not w.valid
    with pytest.raises(WindowInvalid, match="dropped"):
        w.require_valid()


def test_lpm01a_corrupted_sample_line() -> None:
    trace = lpm(Faults(corrupt_at_s=0.2))
    assert_invalid(trace, "corrupted line")
    assert not gpio_window(trace, 10, channel=7).valid


def test_lpm01a_disconnect_mid_window_pty() -> None:
    with EmulatorServer(Lpm01aEmulator(PROF, Faults(disconnect_at_s=0.6), speed=4.0), "pty") as srv:
        meter = Lpm01a(Lpm01aConfig(kind="lpm01a", url=srv.url, freq_hz=5000))
        trace = run(meter, 0.45, keep_open=True)
        assert_invalid(trace, "connection lost")
        with pytest.raises(MeterError, match="lost"):
            meter.start()
        meter.close()


def test_lpm01a_stale_bytes_are_drained_and_counted() -> None:
    trace = lpm(Faults(stale=b"1234-05\r\nevent 07 ris\r\nTimeSt"))
    assert trace.valid, trace.problem
    assert trace.extra["stale_bytes"] >= 29  # drained raw, or skipped as lines before the first ack


def test_lpm01a_wrong_baud_on_a_pty_is_reported() -> None:
    with (
        EmulatorServer(Lpm01aEmulator(PROF, Faults(wrong_baud=True)), "pty") as srv,
        pytest.raises(MeterError, match="wrong baud rate"),
    ):
        run(Lpm01a(Lpm01aConfig(kind="lpm01a", url=srv.url, baud=115200, timeout_s=0.5)), 0.1)


def test_lpm01a_refused_command_says_why() -> None:
    with EmulatorServer(Lpm01aEmulator(PROF)) as srv:
        meter = Lpm01a(Lpm01aConfig(kind="lpm01a", url=srv.url))
        meter.open()
        with pytest.raises(MeterError, match="Error detail|voltage"):
            meter.command("volt 9000m")
        meter.close()


# --- PPK2 -------------------------------------------------------------------------------------
def ppk(faults: Faults, url: str = "socket://127.0.0.1:0", seconds: float = 0.4) -> Trace:
    with EmulatorServer(Ppk2Emulator(PROF, faults), url) as srv:
        return run(Ppk2(Ppk2Config(kind="ppk2", url=srv.url)), seconds)


def test_ppk2_counter_gap() -> None:
    trace = ppk(Faults(drop_at_s=0.1, drop_n=37))
    assert trace.dropped == 37
    assert_invalid(trace, "37 samples dropped")


def test_ppk2_loss_of_64_multiple_caught_by_rate_check() -> None:
    trace = ppk(Faults(drop_at_s=0.1, drop_n=64 * 200))
    assert trace.dropped == 0  # invisible to the 6-bit counter...
    assert_invalid(trace, "multiple of 64")  # ...but not to the wall clock


def test_ppk2_corrupted_frame() -> None:
    assert_invalid(ppk(Faults(corrupt_at_s=0.1)), "corrupted frames")


def test_ppk2_disconnect_pty() -> None:
    assert_invalid(ppk(Faults(disconnect_at_s=0.15), url="pty"), "connection lost")


def test_ppk2_stale_bytes() -> None:
    trace = ppk(Faults(stale=b"\x01\x02\x03\x04\x05"))
    assert trace.valid, trace.problem
    assert trace.extra["stale_bytes"] == 5


# --- UM34C ------------------------------------------------------------------------------------
def um(faults: Faults, seconds: float = 0.6, url: str = "socket://127.0.0.1:0", **cfg: object) -> Trace:
    prof = Profile(kind="constant", low_w=4.0, voltage_v=5.1)
    with EmulatorServer(UmEmulator(prof, faults, update_hz=20), url) as srv:
        return run(Um34c(UmConfig(kind="um34c", url=srv.url, poll_hz=10, timeout_s=0.2, **cfg)), seconds)


def test_um34c_corrupted_frame_rejected() -> None:
    trace = um(Faults(corrupt_at_s=0.2))
    assert trace.dropped == 1
    assert_invalid(trace, "checksum")


def test_um34c_stall_counted_as_missed() -> None:
    trace = um(Faults(drop_at_s=0.2, stall_s=0.3))
    assert trace.dropped >= 1
    assert_invalid(trace, "no reply")
    t = trace.t_s
    assert not host_window(trace, float(t[0]), float(t[-1]), 1, max_gap_s=0.25).valid


def test_um34c_disconnect() -> None:
    assert_invalid(um(Faults(disconnect_at_s=0.3), url="pty"), "connection lost")


def test_um34c_wrong_baud() -> None:
    with pytest.raises(MeterError, match="baud"):
        um(Faults(wrong_baud=True))


def test_um34c_stale_bytes() -> None:
    assert um(Faults(stale=b"\x0d\x4c\x01\xf4"), seconds=0.3).valid


# --- INA219 / INA226 ----------------------------------------------------------------------------
def ina(faults: Faults, chip: str = "ina226", url: str = "socket://127.0.0.1:0", **cfg: object) -> Trace:
    prof = Profile(kind="constant", low_w=4.0, voltage_v=5.1)
    cls = Ina226 if chip == "ina226" else Ina219
    with EmulatorServer(InaEmulator(prof, faults, chip=chip), url) as srv:
        return run(cls(InaConfig(kind=chip, url=srv.url, timeout_s=0.1, **cfg)), 0.5)


def test_ina_corrupted_reply() -> None:
    assert_invalid(ina(Faults(corrupt_at_s=0.1)), "not a 16-bit hex")


def test_ina_stall() -> None:
    assert_invalid(ina(Faults(drop_at_s=0.1, stall_s=0.15)), "no reply")


def test_ina_disconnect() -> None:
    assert_invalid(ina(Faults(disconnect_at_s=0.2), url="pty"), "connection lost")


def test_ina_wrong_baud_on_pty() -> None:
    with pytest.raises(MeterError, match="baud"):
        ina(Faults(), url="pty", baud=9600)


def test_ina_wrong_chip_is_named() -> None:
    prof = Profile(kind="constant", low_w=4.0, voltage_v=5.1)
    with EmulatorServer(InaEmulator(prof, chip="ina219")) as srv:
        meter = Ina226(InaConfig(kind="ina226", url=srv.url))
        with pytest.raises(MeterError, match="is an ina219"):
            meter.open()
        meter.close()


def test_ina219_works_and_stale_bytes_drained() -> None:
    assert ina(Faults(stale=b"0FA0\nnak\n"), chip="ina219").valid


# --- Otii ---------------------------------------------------------------------------------------
def otii_run(faults: Faults) -> Trace:
    with EmulatorServer(OtiiEmulator(PROF, faults)) as srv:
        return run(Otii(OtiiConfig(kind="otii", url=srv.url, timeout_s=1.0)), 0.5)


def test_otii_dropped_samples() -> None:
    assert_invalid(otii_run(Faults(drop_at_s=0.1, drop_n=400)), "samples dropped")


def test_otii_corrupted_reply() -> None:
    assert_invalid(otii_run(Faults(corrupt_at_s=0.0)), "not JSON")


def test_otii_disconnect() -> None:
    assert_invalid(otii_run(Faults(disconnect_at_s=0.2)), "connection lost")


def test_otii_stale_reply_skipped() -> None:
    trace = otii_run(Faults(stale=b'{"type":"response","trans_id":"1","data":{}}\r\n'))
    assert trace.valid and trace.extra["stale_lines"] >= 1


# --- FNB58 (fake HID library) ---------------------------------------------------------------------
def fnb(faults: Faults) -> Trace:
    return run(Fnb58(FnbConfig(kind="fnb58"), transport=FakeHid(faults=faults)), 0.6)


def test_fnb58_dropped_reports() -> None:
    assert_invalid(fnb(Faults(drop_at_s=0.1, drop_n=10)), "reports missing")


def test_fnb58_late_burst_is_not_a_loss() -> None:
    prof = Profile(kind="constant", low_w=2.5, voltage_v=5.1)
    meter = Fnb58(FnbConfig(kind="fnb58"), transport=FakeHid(prof, Faults(drop_at_s=0.1, stall_s=0.4)))
    trace = run(meter, 0.8)
    assert trace.valid, trace.problem
    t = trace.t_s
    assert float(np.max(np.diff(t))) == pytest.approx(0.01, abs=1e-9)  # on the meter's clock, no hole
    assert host_window(trace, float(t[0]), float(t[-1]), 1).mean_power_w == pytest.approx(2.5, rel=1e-3)


def test_fnb58_bad_crc() -> None:
    assert_invalid(fnb(Faults(corrupt_at_s=0.1)), "CRC")


def test_fnb58_unplugged() -> None:
    assert_invalid(fnb(Faults(disconnect_at_s=0.2)), "connection lost")


def test_fnb58_stale_report_drained() -> None:
    meter = Fnb58(FnbConfig(kind="fnb58"), transport=FakeHid(faults=Faults(stale=b"x")))
    trace = run(meter, 0.3)
    assert trace.valid and meter.stale_reports == 1


def test_fnb58_absent_meter_and_missing_library() -> None:
    hid = FakeHid()
    hid.unplugged = True
    with pytest.raises(MeterUnavailable, match="PC micro-USB"):
        Fnb58(FnbConfig(kind="fnb58"), transport=hid).open()
    why = Fnb58.availability()
    assert why is None or "pip install hidapi" in why or "FNB58" in why


# --- Joulescope (fake driver API) -------------------------------------------------------------------
def js(faults: Faults) -> Trace:
    return run(Joulescope(JoulescopeConfig(kind="joulescope"), transport=FakeDriver(PROF, faults)), 0.4)


def test_joulescope_missing_blocks() -> None:
    assert_invalid(js(Faults(drop_at_s=0.1, drop_n=3)), "3000 samples missing")


def test_joulescope_nan_accumulator() -> None:
    assert_invalid(js(Faults(corrupt_at_s=0.1)), "NaN")


def test_joulescope_disconnect() -> None:
    assert_invalid(js(Faults(disconnect_at_s=0.1)), "disconnected")


def test_unopenable_url_is_meter_unavailable() -> None:
    with pytest.raises(MeterUnavailable, match="cannot open"):
        Ppk2(Ppk2Config(kind="ppk2", url="/dev/does-not-exist-frugalbench")).open()
    with pytest.raises(serial.SerialException):
        serial.serial_for_url("/dev/does-not-exist-frugalbench")


# --- through the fault proxy (benches/perf/meter_faults.py) -----------------------------------
def test_lpm01a_reopens_after_a_lost_link() -> None:
    """The driver says "close() and open() it again" after a lost link: doing so must work."""
    with (
        EmulatorServer(Lpm01aEmulator(PROF, speed=4.0)) as srv,
        FaultProxy(("127.0.0.1", int(srv.url.rpartition(":")[2]))) as fp,
    ):
        meter = Lpm01a(Lpm01aConfig(kind="lpm01a", url=fp.url, freq_hz=5000, timeout_s=0.5))
        meter.open()
        meter.start()
        fp.arm("down", "close", after=2000)
        time.sleep(0.3)
        assert_invalid(meter.stop(), "connection lost")
        meter.close()
        meter.open()
        meter.start()
        time.sleep(0.3)
        trace = meter.stop()
        meter.close()
        assert trace.valid, trace.problem


class _AckOtherFreq(Lpm01aEmulator):
    """Acks ``freq 5k`` for ``freq 1k``: a bit flipped in the command or in the ack on the link."""

    def _ack(self, cmd: str, payload: str = "") -> None:
        super()._ack(cmd.replace("freq 1k", "freq 5k"), payload)


def test_lpm01a_ack_of_another_setting_is_refused() -> None:
    with EmulatorServer(_AckOtherFreq(PROF)) as srv:
        meter = Lpm01a(Lpm01aConfig(kind="lpm01a", url=srv.url, freq_hz=1000))
        with pytest.raises(MeterError, match="acked 'freq 5k'"):
            meter.open()
        meter.close()


class _FlippedExponent(Lpm01aEmulator):
    """Sends one sample with its exponent's tens digit flipped (``4000-09`` → ``4000-89``)."""

    flipped = False

    def send(self, data: bytes) -> None:
        if not self.flipped and b"4000-09\r\n" in data:
            data = data.replace(b"4000-09\r\n", b"4000-89\r\n", 1)
            self.flipped = True
        super().send(data)


def test_lpm01a_sample_outside_the_board_range_is_corrupt() -> None:
    with EmulatorServer(_FlippedExponent(PROF, speed=4.0)) as srv:
        meter = Lpm01a(Lpm01aConfig(kind="lpm01a", url=srv.url, freq_hz=5000))
        trace = run(meter, 0.45)
    assert_invalid(trace, "'4000-89'", "outside the board's range")


def test_lpm01a_link_closed_while_opening_is_a_meter_error() -> None:
    """A socket closed under a command is a MeterError the runner handles, not a pyserial exception."""
    with (
        EmulatorServer(Lpm01aEmulator(PROF)) as srv,
        FaultProxy(("127.0.0.1", int(srv.url.rpartition(":")[2]))) as fp,
    ):
        fp.arm("down", "close", after=40)
        meter = Lpm01a(Lpm01aConfig(kind="lpm01a", url=fp.url, timeout_s=0.5))
        with pytest.raises(MeterError, match="connection lost"):
            meter.open()
        meter.close()


def test_ppk2_reopens_after_a_lost_link() -> None:
    with (
        EmulatorServer(Ppk2Emulator(PROF)) as srv,
        FaultProxy(("127.0.0.1", int(srv.url.rpartition(":")[2]))) as fp,
    ):
        meter = Ppk2(Ppk2Config(kind="ppk2", url=fp.url))
        meter.open()
        meter.start()
        fp.arm("down", "close", after=20_000)
        time.sleep(0.2)
        assert_invalid(meter.stop(), "connection lost")
        meter.close()
        meter.open()
        meter.start()
        time.sleep(0.2)
        trace = meter.stop()
        meter.close()
        assert trace.valid, trace.problem
