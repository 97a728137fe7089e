"""Check against reality: well-known third-party clients run unmodified against our emulators.

``ppk2-api`` (GPL-2) is a test-time peer only (the ``test`` extra); nothing in ``harness/`` imports it.
It calls ``serial.Serial(path)``, so its emulator is served on a pty. ``otii-tcp-client`` (MIT, the
vendor's client) talks to the Otii server emulator over TCP.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from harness.emulators.base import EmulatorServer
from harness.emulators.ppk2 import Ppk2Emulator
from harness.emulators.profile import Profile


def test_ppk2_api_reads_our_emulator() -> None:
    ppk2_api = pytest.importorskip(
        "ppk2_api.ppk2_api",
        reason="ppk2-api is not installed (pip install 'frugalbench[test]'); it is the reality check",
    )
    prof = Profile(kind="constant", low_w=0.01, windows=[(0.05, 0.15)])
    emu = Ppk2Emulator(prof)
    with EmulatorServer(emu, "pty") as srv:
        api = ppk2_api.PPK2_API(srv.url, timeout=1, write_timeout=1)
        assert api.get_modifiers()
        assert api.modifiers["R"]["2"] == pytest.approx(10.15) and api.modifiers["O"]["1"] == pytest.approx(
            75.0
        )
        api.use_source_meter()
        api.set_source_voltage(3300)
        api.toggle_DUT_power("ON")
        api.start_measuring()
        samples: list[float] = []
        bits: list[int] = []
        t_end = time.monotonic() + 10.0  # ppk2-api decodes per sample in Python: slow on a busy machine
        while time.monotonic() < t_end and len(samples) < 20_000:
            data = api.get_data()
            if data:
                s, b = api.get_samples(data)
                samples += s
                bits += b
            time.sleep(0.002)
        api.stop_measuring()
        api.ser.close()
    assert emu.commands[:5] == [b"\x19", b"\x11\x02", b"\x0d\x0c\xe4", b"\x0c\x01", b"\x06"]
    assert len(samples) >= 20_000
    expected_ua = 0.01 / 3.3 * 1e6
    assert np.mean(samples) == pytest.approx(expected_ua, rel=1e-3)
    d0 = ppk2_api.PPK2_API.digital_channels(api, bits)[0]
    rises = int(np.count_nonzero(np.diff(d0) == 1))
    falls = int(np.count_nonzero(np.diff(d0) == -1))
    assert (rises, falls) == (1, 1)
    assert emu.state.dropped_by_overflow == 0


def test_otii_tcp_client_reads_our_emulator() -> None:
    otii_client = pytest.importorskip(
        "otii_tcp_client.otii_client", reason="otii-tcp-client is not installed"
    )
    from harness.emulators.otii import OtiiEmulator

    prof = Profile(kind="constant", low_w=0.02, windows=[(0.05, 0.15)])
    with EmulatorServer(OtiiEmulator(prof)) as srv:
        port = int(srv.url.rsplit(":", 1)[1])
        client = otii_client.OtiiClient()
        otii = client.connect(host="127.0.0.1", port=port, try_for_seconds=1,
                              licensing=otii_client.LicensingMode.MANUAL)  # fmt: skip
        (arc,) = otii.get_devices()
        arc.enable_channel("mp", True)
        arc.enable_channel("i1", True)
        project = otii.create_project()  # get_active_project() raises when none is open
        project.start_recording()
        time.sleep(0.3)
        project.stop_recording()
        rec = project.get_last_recording()
        n = rec.get_channel_data_count(arc.id, "mp")
        mp = rec.get_channel_data(arc.id, "mp", 0, n)
        i1 = rec.get_channel_data(arc.id, "i1", 0, rec.get_channel_data_count(arc.id, "i1"))
        client.disconnect()
    assert mp["data_type"] == "analog" and mp["interval"] == pytest.approx(1 / 4000)
    assert n > 1000 and np.mean(mp["values"]) == pytest.approx(0.02, rel=1e-9)
    assert [(v["timestamp"], v["value"]) for v in i1["values"][1:]] == [(0.05, True), (0.15, False)]


def test_gpl_peer_is_never_imported_by_the_package() -> None:
    from pathlib import Path

    import harness

    root = Path(harness.__file__).parent
    offenders = [str(p) for p in root.rglob("*.py") if "ppk2_api" in p.read_text(errors="replace")]
    assert offenders == [], "ppk2-api is GPL-2: use it only as a test-time peer"


# --- LPM01A: a host written against real boards ------------------------------------------------
class BoardHost:
    """A minimal host written against real PowerShield boards (as the Zephyr and MLPerf Tiny hosts
    are): a query's answer is read on its ``ack`` line (``ack volt get 3292-03``), and a line other
    than the ack before it means the command failed (such hosts then wait for an ``Error detail``
    that never comes)."""

    def __init__(self, url: str) -> None:
        import serial

        self.port = serial.serial_for_url(url, timeout=2)

    def line(self) -> str:
        raw = self.port.readline()
        assert raw.endswith(b"\n"), f"no complete line within the timeout (got {raw!r}): the host would wait"
        return raw.decode("ascii").strip()

    def ask(self, cmd: str) -> str:
        """Send ``cmd``; the payload of its ack line."""
        self.port.write(f"{cmd}\r\n".encode())
        while True:
            body = self.line().removeprefix("PowerShield >").strip()
            if not body:
                continue
            assert body.startswith(f"ack {cmd}"), f"{cmd!r} answered {body!r} before its ack"
            return body[len(f"ack {cmd}") :].strip()

    def acquire(self, seconds: float) -> list[str]:
        """``start``, read the stream for ``seconds``, ``stop``, read up to ``Acquisition completed``."""
        self.ask("start")
        t_end = time.monotonic() + seconds
        lines = []
        while time.monotonic() < t_end:
            lines.append(self.line())
        self.port.write(b"stop\r\n")
        while "Acquisition completed" not in lines[-1]:
            lines.append(self.line())
        return lines


def test_a_host_written_against_real_boards_reads_our_lpm01a_emulator() -> None:
    import re

    from harness.emulators.lpm01a import Lpm01aEmulator

    with EmulatorServer(Lpm01aEmulator(Profile(kind="constant", low_w=0.01))) as srv:
        host = BoardHost(srv.url)
        assert host.ask("htc") == ""
        assert host.ask("powershield").startswith("PowerShield present")
        assert re.fullmatch(r"\d+\.\d+\.\d+", host.ask("version"))
        assert host.ask("status") == "ok"
        assert host.ask("volt get") == "3300-03"
        assert float(host.ask("temp degc")) == pytest.approx(28.0)
        for cmd in ("pwr off", "acqtime inf", "trigsrc sw", "output energy", "format ascii_dec", "freq 1k",
                    "pwr on nostatus"):  # fmt: skip
            assert host.ask(cmd) == ""
        stream = host.acquire(0.3)
        assert sum(bool(re.fullmatch(r"\d{4}[+-]\d{2}", s)) for s in stream) > 100
        assert host.ask("pwr off") == ""  # nothing of the acquisition lands in the next reply
        assert host.ask("hrc") == ""
        host.port.close()


def test_lpm01a_driver_reads_answers_on_the_ack_line_and_on_their_own_line() -> None:
    from harness.emulators.lpm01a import Lpm01aEmulator
    from harness.meters.lpm01a import Lpm01a, Lpm01aConfig

    class OwnLineEmulator(Lpm01aEmulator):
        """Answers ``powershield``/``version`` on a line after the ack and prints a summary after
        ``stop`` (an older emulator, or firmware that does so)."""

        def _command(self, cmd: str) -> None:
            if cmd in ("powershield", "version", "status"):
                self._ack(cmd)
                answer = {"powershield": f"PowerShield present, board ID {self.board_id}",
                          "version": self.firmware, "status": "ok"}[cmd]  # fmt: skip
                self.send(f"{self.prompt}{answer}\r\n".encode())
                return
            super()._command(cmd)
            if cmd == "stop":
                self.send(b"summary: free text\r\n")

    prof = Profile(kind="constant", low_w=0.01)
    for emu in (Lpm01aEmulator(prof), OwnLineEmulator(prof)):
        with EmulatorServer(emu) as srv:
            meter = Lpm01a(Lpm01aConfig(kind="lpm01a", url=srv.url))
            meter.open()
            try:
                assert "PowerShield present, board ID FRUGALBENCH-EMULATOR" in meter.identity
                assert meter.status() == "ok"
                for _ in range(2):  # a second acquisition after the first one's trailing lines
                    meter.start()
                    time.sleep(0.2)
                    trace = meter.stop()
                    assert trace.valid, trace.problem
                    assert len(trace.power_w) > 100
                assert meter.command("pwr off") == []
                assert meter.command("volt get") == ["3300-03"]
            finally:
                meter.close()
