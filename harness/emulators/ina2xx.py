"""INA219 / INA226 register-level emulator behind the ``fbi2c`` USB-I²C bridge protocol.

The ``fbi2c`` protocol (ours, version 1; small enough for any USB-serial MCU such as a Pi Pico or an
Arduino as the bridge) is ASCII lines at 115200 baud, hex numbers, ``\\n`` terminated:

=========================  =====================================================
host → bridge              bridge → host
=========================  =====================================================
``?``                      ``fbi2c 1 <name>``
``r AA RR``                ``HHHH`` (16-bit register RR of device AA, big-endian on the bus) or ``nak``
``w AA RR HHHH``           ``ok`` or ``nak``
anything else              ``err <reason>``
=========================  =====================================================

Registers (TI datasheets): 00 config, 01 shunt voltage (signed; LSB 10 µV INA219, 2.5 µV INA226),
02 bus voltage (INA219: bits 15–3 × 4 mV, CNVR bit 1, OVF bit 0; INA226: × 1.25 mV), 03 power,
04 current, 05 calibration; INA226 also 06 mask/enable (CVRF bit 3), 07 alert limit, FE = 0x5449
("TI"), FF = 0x2260. Current = shunt × CAL / 2048 (INA226) or / 4096 (INA219); power = current × bus
/ 20000 (INA226) or / 5000 (INA219). A reading holds the mean of the last completed conversion.
Fault times count from the first measurement read (register 01–04), so identification is never hit.
Faults: a stall (no reply) at ``drop_at_s`` for ``stall_s``, one corrupted reply, a disconnect,
stale bytes, a wrong baud.
"""

from __future__ import annotations

import math

import numpy as np

from .base import EMULATORS, MeterEmulator


@EMULATORS.register("ina2xx")
class InaEmulator(MeterEmulator):
    """One INA219 or INA226 at ``address`` on an emulated USB-I²C bridge."""

    name = "ina2xx"
    baud = 115200

    def __init__(self, *args, chip: str = "ina226", address: int = 0x40, shunt_ohm: float = 0.01,  # noqa: ANN002, ANN003
                 conv_s: float = 0.002, **kwargs) -> None:  # fmt: skip
        if chip not in ("ina219", "ina226"):
            raise ValueError(f"chip must be ina219 or ina226, not {chip!r}")
        self.chip, self.address, self.shunt_ohm, self.conv_s = chip, address, shunt_ohm, conv_s
        super().__init__(*args, **kwargs)

    def reset(self) -> None:
        super().reset()
        self.buf = bytearray()
        self.regs = {0x00: 0x4127 if self.chip == "ina226" else 0x399F, 0x05: 0, 0x06: 0, 0x07: 0}
        self.state.streaming = False  # virtual clock (and fault times) start at the first measurement read

    # -- the chip ---------------------------------------------------------------------------------
    def _measure(self) -> tuple[float, float]:
        """(bus volts, shunt volts) of the last completed conversion."""
        if not self.state.streaming:
            self.start_stream()
        t = self.vnow()
        k = math.floor(t / self.conv_s)
        t1 = k * self.conv_s
        t0 = max(0.0, t1 - self.conv_s)
        p = (
            self.profile.energy(t0, t1) / (t1 - t0)
            if t1 > t0
            else float(self.profile.level(np.asarray([0]))[0])
        )
        v = self.profile.voltage_v
        return v, p / v * self.shunt_ohm

    def read_reg(self, reg: int) -> int | None:
        ina226 = self.chip == "ina226"
        bus, shunt = self._measure() if 0x01 <= reg <= 0x04 else (0.0, 0.0)
        shunt_raw = max(-32768, min(32767, round(shunt / (2.5e-6 if ina226 else 10e-6))))
        bus_raw = min(0x7FFF, round(bus / 1.25e-3)) if ina226 else (min(0x1FFF, round(bus / 4e-3)) << 3) | 0x2
        cal = self.regs[0x05]
        current = int(shunt_raw * cal / (2048 if ina226 else 4096))
        bus_val = bus_raw if ina226 else bus_raw >> 3
        power = abs(current) * bus_val // (20000 if ina226 else 5000)
        if reg == 0x01:
            return shunt_raw & 0xFFFF
        if reg == 0x02:
            return bus_raw
        if reg == 0x03:
            return min(power, 0xFFFF)
        if reg == 0x04:
            return max(-32768, min(32767, current)) & 0xFFFF
        if reg == 0x06 and ina226:
            return self.regs[0x06] | 0x0008
        if reg in (0x00, 0x05) or (ina226 and reg == 0x07):
            return self.regs[reg]
        if ina226 and reg == 0xFE:
            return 0x5449
        if ina226 and reg == 0xFF:
            return 0x2260
        return None

    def write_reg(self, reg: int, value: int) -> bool:
        if reg == 0x00 and value & 0x8000:  # reset bit
            self.regs[0x00] = 0x4127 if self.chip == "ina226" else 0x399F
            self.regs[0x05] = 0
            return True
        if reg in (0x00, 0x05) or (self.chip == "ina226" and reg in (0x06, 0x07)):
            self.regs[reg] = value & 0xFFFF if reg != 0x05 else value & 0xFFFE
            return True
        return False

    # -- the bridge ---------------------------------------------------------------------------------
    def on_bytes(self, data: bytes) -> None:
        self.buf += data
        while (nl := self.buf.find(b"\n")) >= 0:
            line = bytes(self.buf[:nl]).strip().decode("ascii", "replace")
            del self.buf[: nl + 1]
            if line:
                self.commands.append(line.encode())
                reply = self._line(line)
                if reply is not None:
                    self.send(reply.encode() + b"\n")

    def _line(self, line: str) -> str | None:
        t = self.vnow()
        f = self.faults
        if self.check_disconnect(t):
            return None
        if f.drop_at_s is not None and f.drop_at_s <= t < f.drop_at_s + f.stall_s:
            return None
        parts = line.split()
        try:
            if parts == ["?"]:
                return "fbi2c 1" if self.impersonate else "fbi2c 1 frugalbench-emulator"
            if parts[0] == "r" and len(parts) == 3:
                addr, reg = int(parts[1], 16), int(parts[2], 16)
                val = self.read_reg(reg) if addr == self.address else None
                if val is None:
                    return "nak"
                out = f"{val:04X}"
                if f.corrupt_at_s is not None and t >= f.corrupt_at_s and not self.state.corrupted:
                    self.state.corrupted = True
                    out = "G" + out[1:]
                return out
            if parts[0] == "w" and len(parts) == 4:
                addr, reg, val = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
                return "ok" if addr == self.address and self.write_reg(reg, val) else "nak"
        except (ValueError, IndexError):
            pass
        return f"err bad command {line[:20]!r}"
