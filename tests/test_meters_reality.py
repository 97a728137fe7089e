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
