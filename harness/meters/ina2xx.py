"""INA219 / INA226 on a USB-I²C bridge speaking the ``fbi2c`` line protocol (see
:mod:`harness.emulators.ina2xx` for the protocol table).

The host polls the shunt-voltage and bus-voltage registers and computes P = V_bus · V_shunt / R_shunt
(independent of the calibration register, which is still programmed so the chip's own current/power
registers are right: INA219 ``CAL = trunc(0.04096 / (I_lsb·R))``, power LSB 20·I_lsb; INA226
``CAL = 0.00512 / (I_lsb·R)``, power LSB 25·I_lsb). No markers: host-clock windows.
A reply that is not 4 hex digits is rejected and counted; a missing reply is a missed reading.
"""

from __future__ import annotations

import time

import serial

from ..errors import ConfigError, MeterError, ProtocolError, StateError
from ._common import MeterProtocolError, SerialMeterConfig, drain_stale, open_serial, read_some
from .base import METERS, Meter, MeterInfo, Trace
from .poller import Poller

CHIPS = {
    "ina219": {"shunt_lsb": 10e-6, "cal_k": 0.04096, "power_k": 20},
    "ina226": {"shunt_lsb": 2.5e-6, "cal_k": 0.00512, "power_k": 25},
}


class Nak(MeterProtocolError):
    """The I²C device did not acknowledge (absent register on this chip, or a wrong address)."""


def parse_reply(line: str) -> int:
    """``HHHH`` → int (pure). Raises ProtocolError for ``nak``, ``err …`` or anything else."""
    s = line.strip()
    if s == "nak":
        raise Nak("I²C device did not acknowledge (wrong address, or the chip is not powered)")
    if s.startswith("err"):
        raise MeterProtocolError(f"bridge rejected the command: {s}")
    if len(s) != 4 or any(c not in "0123456789abcdefABCDEF" for c in s):
        raise MeterProtocolError(f"bridge reply {s[:20]!r} is not a 16-bit hex register value")
    return int(s, 16)


def shunt_volts(raw: int, chip: str) -> float:
    """Signed shunt register → volts."""
    v = raw - 0x10000 if raw & 0x8000 else raw
    return v * CHIPS[chip]["shunt_lsb"]


def bus_volts(raw: int, chip: str) -> float:
    """Bus register → volts (INA219: bits 15–3 × 4 mV)."""
    return (raw >> 3) * 4e-3 if chip == "ina219" else (raw & 0x7FFF) * 1.25e-3


def calibration(chip: str, shunt_ohm: float, max_current_a: float) -> tuple[int, float]:
    """(CAL register, current LSB in A) for the datasheet formula."""
    lsb = max_current_a / 32768
    cal = int(CHIPS[chip]["cal_k"] / (lsb * shunt_ohm))
    return min(cal, 0xFFFE), lsb


class InaConfig(SerialMeterConfig):
    """``[meter] kind = "ina226"`` or ``"ina219"``."""

    baud: int = 115200
    address: int = 0x40
    shunt_ohm: float = 0.01
    max_current_a: float = 3.2
    poll_hz: float = 50.0
    max_failures: int = 10


class Ina2xx(Meter):
    """Common driver; the registered subclasses fix the chip."""

    chip = "ina226"
    Config = InaConfig
    config: InaConfig

    def __init__(self, config: InaConfig) -> None:
        super().__init__(config)
        if config.shunt_ohm <= 0 or config.max_current_a <= 0:
            raise ConfigError("shunt_ohm and max_current_a must be positive")
        self.port: serial.SerialBase | None = None
        self.bridge = ""
        self.stale_bytes = 0
        self._rx = bytearray()
        self.poller = Poller(self.reading, config.poll_hz, config.max_failures, "reading")

    @classmethod
    def availability(cls) -> str | None:
        return (
            f"{cls.chip.upper()} sits behind a USB-I²C bridge speaking the fbi2c protocol: set [meter] url "
            f"to the bridge's port; rehearse with `frugalbench emulate meter ina2xx --set chip={cls.chip}`"
        )

    def _ask(self, line: str) -> str:
        if self.port is None:
            raise StateError(f"{self.chip} is not open; call open() first")
        self.port.write(line.encode() + b"\n")
        try:
            return self._next_line(time.monotonic() + self.config.timeout_s)
        except MeterError as exc:
            raise MeterError(f"bridge did not answer {line!r} within {self.config.timeout_s} s") from exc

    def _next_line(self, deadline: float) -> str:
        assert self.port is not None
        while (nl := self._rx.find(b"\n")) < 0:
            if time.monotonic() > deadline:
                self._rx.clear()
                raise MeterError("bridge reply timed out")
            self._rx += read_some(self.port, 0.005)
        raw = bytes(self._rx[:nl])
        del self._rx[: nl + 1]
        return raw.decode("ascii", "replace")

    def read_reg(self, reg: int) -> int:
        return parse_reply(self._ask(f"r {self.config.address:02X} {reg:02X}"))

    def write_reg(self, reg: int, value: int) -> None:
        reply = self._ask(f"w {self.config.address:02X} {reg:02X} {value:04X}").strip()
        if reply != "ok":
            raise MeterProtocolError(f"writing register 0x{reg:02X} failed: {reply!r}")

    def open(self) -> None:
        if not self.config.url:
            raise MeterError(self.availability() or "no URL")
        self.port = open_serial(self.config.url, self.config.baud, 0.05, f"{self.chip} bridge")
        self.stale_bytes = drain_stale(self.port)
        try:
            hello = self._ask("?")
            deadline = time.monotonic() + self.config.timeout_s
            while not hello.startswith("fbi2c ") and time.monotonic() < deadline:
                self.stale_bytes += len(hello) + 1  # replies left over from an earlier session
                hello = self._next_line(deadline)
        except MeterError as exc:
            raise MeterProtocolError(f"{exc}; is it an fbi2c bridge at {self.config.baud} baud?") from exc
        if not hello.startswith("fbi2c "):
            raise MeterProtocolError(
                f"not an fbi2c bridge (reply {hello[:30]!r}); check the baud rate is {self.config.baud} "
                "and the URL is the bridge's port"
            )
        self.bridge = hello.strip()
        manuf: int | None = None
        for attempt in range(3):
            try:
                manuf = self.read_reg(0xFE)
                break
            except Nak:
                break  # INA219: no manufacturer-ID register
            except (ProtocolError, MeterError):
                if attempt == 2:
                    raise
        found = "ina226" if manuf == 0x5449 else "ina219"
        if found != self.chip:
            raise MeterError(
                f"configured {self.chip} but the chip at 0x{self.config.address:02X} is an {found}"
            )
        cal, _ = calibration(self.chip, self.config.shunt_ohm, self.config.max_current_a)
        self.write_reg(0x05, cal)

    def reading(self) -> float:
        """One power reading in W."""
        v_shunt = shunt_volts(self.read_reg(0x01), self.chip)
        v_bus = bus_volts(self.read_reg(0x02), self.chip)
        return v_bus * v_shunt / self.config.shunt_ohm

    def start(self) -> None:
        if self.port is None:
            raise StateError(f"{self.chip} is not open; call open() first")
        if self.poller.lost:
            raise MeterError(f"{self.chip} link was lost ({self.poller.lost}); close() and open() it again")
        self.poller.start()

    def stop(self) -> Trace:
        if not self.poller.running:
            raise StateError(f"{self.chip} stop() without start()")
        self.poller.stop(self.config.timeout_s + 2)
        return self.poller.power_trace(
            {"stale_bytes": self.stale_bytes, "meter": self.chip, "bridge": self.bridge}
        )

    def info(self) -> MeterInfo:
        sim = self.config.simulated or "emulator" in self.bridge
        return MeterInfo(
            energy_class="simulated" if sim else "external",
            model=f"TI {self.chip.upper()}" + (" (emulator)" if sim else ""),
            boundary=self.config.boundary or "5 V rail through the shunt",
            rate_hz=self.config.poll_hz,
            accuracy=f"shunt LSB {CHIPS[self.chip]['shunt_lsb'] * 1e6:g} µV; shunt tolerance dominates",
            marker_method="host-clock",
        )

    def close(self) -> None:
        self.poller.stop()
        if self.port is not None:
            self.port.close()
            self.port = None


@METERS.register("ina226")
class Ina226(Ina2xx):
    """TI INA226 (16-bit, 2.5 µV shunt LSB)."""

    name = "ina226"
    chip = "ina226"


@METERS.register("ina219")
class Ina219(Ina2xx):
    """TI INA219 (12-bit, 10 µV shunt LSB)."""

    name = "ina219"
    chip = "ina219"
