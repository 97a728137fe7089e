"""The measurement class comes from the meter, not from a flag the user may forget.

Every emulator names itself in the meter's own identification reply; its driver reads that reply, so
emulated energy is ``simulated`` without any configuration and ``simulated = false`` cannot make it
``external``. The same emulator impersonating hardware byte-for-byte (``impersonate=True``, a test-only
switch) is taken for a real device: ``external``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from harness.emulators.base import EmulatorServer, MeterEmulator
from harness.emulators.fnb58 import FakeHid
from harness.emulators.ina2xx import InaEmulator
from harness.emulators.joulescope import FakeDriver
from harness.emulators.lpm01a import Lpm01aEmulator
from harness.emulators.otii import OtiiEmulator
from harness.emulators.ppk2 import Ppk2Emulator
from harness.emulators.profile import Profile
from harness.emulators.um34c import UmEmulator
from harness.meters.base import Meter, MeterInfo
from harness.meters.fnb58 import Fnb58, FnbConfig
from harness.meters.ina2xx import Ina226, InaConfig
from harness.meters.joulescope import Joulescope, JoulescopeConfig
from harness.meters.lpm01a import Lpm01a, Lpm01aConfig
from harness.meters.otii import Otii, OtiiConfig
from harness.meters.ppk2 import Ppk2, Ppk2Config
from harness.meters.um34c import Um34c, UmConfig

USB = Profile(kind="constant", low_w=4.0, voltage_v=5.1)
MCU = Profile(kind="constant", low_w=0.01)


def _serial(
    emu: Callable[[bool], MeterEmulator], meter: Callable[[str, dict], Meter]
) -> Callable[[bool, dict], MeterInfo]:
    def info(impersonate: bool, cfg: dict) -> MeterInfo:
        with EmulatorServer(emu(impersonate)) as srv:
            m = meter(srv.url, cfg)
            m.open()
            try:
                return m.info()
            finally:
                m.close()

    return info


def _api(make: Callable[[bool, dict], Meter]) -> Callable[[bool, dict], MeterInfo]:
    def info(impersonate: bool, cfg: dict) -> MeterInfo:
        m = make(impersonate, cfg)
        m.open()
        try:
            return m.info()
        finally:
            m.close()

    return info


PAIRS: dict[str, Callable[[bool, dict], MeterInfo]] = {
    "um34c": _serial(
        lambda imp: UmEmulator(USB, update_hz=20, impersonate=imp),
        lambda url, cfg: Um34c(UmConfig(kind="um34c", url=url, poll_hz=10, timeout_s=0.3, **cfg)),
    ),
    "lpm01a": _serial(
        lambda imp: Lpm01aEmulator(MCU, impersonate=imp),
        lambda url, cfg: Lpm01a(Lpm01aConfig(kind="lpm01a", url=url, **cfg)),
    ),
    "ppk2": _serial(
        lambda imp: Ppk2Emulator(MCU, impersonate=imp),
        lambda url, cfg: Ppk2(Ppk2Config(kind="ppk2", url=url, **cfg)),
    ),
    "otii": _serial(
        lambda imp: OtiiEmulator(MCU, impersonate=imp),
        lambda url, cfg: Otii(OtiiConfig(kind="otii", url=url, **cfg)),
    ),
    "ina226": _serial(
        lambda imp: InaEmulator(USB, chip="ina226", impersonate=imp),
        lambda url, cfg: Ina226(InaConfig(kind="ina226", url=url, timeout_s=0.3, **cfg)),
    ),
    "fnb58": _api(lambda imp, cfg: Fnb58(FnbConfig(kind="fnb58", **cfg), transport=FakeHid(impersonate=imp))),
    "joulescope": _api(
        lambda imp, cfg: Joulescope(
            JoulescopeConfig(kind="joulescope", **cfg), transport=FakeDriver(MCU, impersonate=imp)
        )
    ),
}


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_an_emulator_is_simulated_without_any_flag(pair: str) -> None:
    info = PAIRS[pair](False, {})
    assert info.energy_class == "simulated"
    assert "emulat" in info.note and "not a measurement" in info.note


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_simulated_false_cannot_override_the_emulator(pair: str) -> None:
    info = PAIRS[pair](False, {"simulated": False})
    assert info.energy_class == "simulated"


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_a_real_identification_is_external(pair: str) -> None:
    info = PAIRS[pair](True, {})
    assert info.energy_class == "external"
    assert info.note == "" and "emulator" not in info.model


@pytest.mark.parametrize("pair", ["um34c", "lpm01a", "fnb58"])
def test_simulated_true_still_marks_real_hardware_simulated(pair: str) -> None:
    info = PAIRS[pair](True, {"simulated": True})
    assert info.energy_class == "simulated"
    assert "simulated = true" in info.note


@contextmanager
def _um_frames(impersonate: bool) -> Iterator[bytes]:
    emu = UmEmulator(USB, impersonate=impersonate)
    emu.on_bytes(b"\xf0")
    yield emu.take_output()


def test_um34c_impersonation_is_the_hardware_frame_byte_for_byte() -> None:
    from harness.emulators.um34c import build_frame

    with _um_frames(True) as real, _um_frames(False) as emulated:
        assert real == build_frame("um34c", *UmEmulator(USB).reading())  # screen 0, as the hardware
        diff = [i for i, (a, b) in enumerate(zip(real, emulated, strict=True)) if a != b]
        assert set(diff) <= {126, 127, 129}  # only the screen field and the checksum that covers it
