"""FNIRSI FNB48 / FNB58 emulator as a fake of the ``hid`` module (cython-hidapi's API).

USB HID cannot be emulated in user space without root, so the seam is the HID library: this module
offers ``enumerate()``, ``device()`` and a device with ``open``/``open_path``/``write``/``read``/
``close`` like ``import hid``. The device behaves as the meter: after the start reports ``aa 81``,
``aa 82`` (and ``aa 82`` again on the FNB58 or ``aa 83`` on the FNB48) it sends one 64-byte IN report
every 40 ms holding 4 samples of 10 ms: ``aa 04`` then 4 × 15 bytes (V u32 ×1e-5 V, I u32 ×1e-5 A,
D+ u16 mV, D− u16 mV, one byte = 1, temperature u16 ×0.1 °C), one unknown byte, and a CRC-8
(poly 0x39, init 0x42) over bytes 1..62. Without a keep-alive (``aa 83``) for 3 s it stops.
The fake identifies itself in the USB descriptor strings it enumerates (product
``FNB58 (frugalbench emulator)``, serial ``EMU0001``); ``impersonate=True`` enumerates real-looking
strings (product ``FNB-58``, a hex serial).
Faults: dropped reports, a starved host (``stall_s``: reports queue up, then arrive in a burst; nothing
is lost), one report with a bad CRC, a disconnect (reads fail), stale reports queued before the host
opens the device. (A wrong baud does not exist on USB HID.) The CRC and report
coding are written here independently of the driver on purpose, so a shared bug cannot hide.
"""

from __future__ import annotations

import math
import struct
import time
from typing import Any

import numpy as np

from .base import Faults
from .profile import Profile

VID_PID = {"fnb58": (0x2E3C, 0x5558), "fnb48": (0x0483, 0x003A)}
REPORT_S = 0.04


def crc8(data: bytes, poly: int = 0x39, init: int = 0x42) -> int:
    """CRC-8, MSB first, no reflection, no final XOR."""
    c = init
    for b in data:
        c ^= b
        for _ in range(8):
            c = ((c << 1) ^ poly) & 0xFF if c & 0x80 else (c << 1) & 0xFF
    return c


def out_report(cmd: int) -> bytes:
    """A 64-byte OUT report ``aa <cmd> 00… <crc>``."""
    body = bytes([0xAA, cmd]) + bytes(61)
    return body + bytes([crc8(body[1:63])])


def in_report(volts: list[float], amps: list[float], temp_c: float = 25.0) -> bytes:
    """A 64-byte data IN report with 4 samples."""
    buf = bytearray(64)
    buf[0], buf[1] = 0xAA, 0x04
    for k in range(4):
        struct.pack_into("<IIHHBH", buf, 2 + 15 * k, round(volts[k] * 1e5), round(amps[k] * 1e5), 600, 600, 1,
                         round(temp_c * 10))  # fmt: skip
    buf[62] = 0
    buf[63] = crc8(bytes(buf[1:63]))
    return bytes(buf)


class FakeHidDevice:
    """What ``hid.device()`` returns, backed by an emulated meter."""

    def __init__(self, owner: FakeHid) -> None:
        self.owner = owner
        self.opened = False
        self.nonblocking = False

    def open(self, vendor_id: int = 0, product_id: int = 0, serial_number: str | None = None) -> None:
        if (vendor_id, product_id) != VID_PID[self.owner.model]:
            raise OSError("open failed")
        self._open()

    def open_path(self, path: bytes) -> None:
        if path != self.owner.path:
            raise OSError("open failed")
        self._open()

    def _open(self) -> None:
        if self.owner.unplugged:
            raise OSError("open failed")
        self.opened = True
        self.owner.session()

    def set_nonblocking(self, value: int) -> int:
        self.nonblocking = bool(value)
        return 0

    def write(self, data: Any) -> int:
        if not self.opened or self.owner.unplugged:
            raise OSError("write error")
        raw = bytes(data)
        report = raw[1:] if len(raw) == 65 else raw  # leading report ID 0
        self.owner.on_report(report)
        return len(raw)

    def read(self, max_length: int, timeout_ms: int = 0) -> list[int]:
        if not self.opened:
            raise OSError("read error")
        deadline = time.monotonic() + (0 if self.nonblocking else timeout_ms / 1000)
        while True:
            if self.owner.unplugged:
                raise OSError("read error")
            rep = self.owner.next_report()
            if rep is not None:
                return list(rep[:max_length])
            if time.monotonic() >= deadline:
                return []
            time.sleep(0.002)

    def close(self) -> None:
        self.opened = False


class FakeHid:
    """A stand-in for the ``hid`` module with one FNB meter attached."""

    def __init__(self, profile: Profile | None = None, faults: Faults | None = None, model: str = "fnb58",
                 speed: float = 1.0, *, impersonate: bool = False) -> None:  # fmt: skip
        if model not in VID_PID:
            raise ValueError(f"model must be one of {sorted(VID_PID)}")
        self.profile = profile or Profile(kind="constant", low_w=2.5, voltage_v=5.1)
        self.faults = faults or Faults()
        self.model = model
        self.speed = speed
        self.impersonate = impersonate
        self.path = b"/dev/hidraw-emu0"
        self.unplugged = False
        self.received: list[bytes] = []
        n_stale = len(self.faults.stale) // 64 + (1 if self.faults.stale else 0)
        self.stale = [in_report([5.0] * 4, [0.1] * 4)] * n_stale  # left in the OS buffer before open
        self.session()

    # -- hid module API -----------------------------------------------------------------------
    def enumerate(self, vendor_id: int = 0, product_id: int = 0) -> list[dict[str, Any]]:
        vid, pid = VID_PID[self.model]
        if self.unplugged or (vendor_id and vendor_id != vid) or (product_id and product_id != pid):
            return []
        if self.impersonate:
            serial, product = "0A1B2C3D4E5F", f"{self.model.upper()[:3]}-{self.model[3:]}"
        else:
            serial, product = "EMU0001", f"{self.model.upper()} (frugalbench emulator)"
        return [{"path": self.path, "vendor_id": vid, "product_id": pid, "serial_number": serial,
                 "manufacturer_string": "FNIRSI", "product_string": product, "interface_number": 0}]  # fmt: skip

    def device(self) -> FakeHidDevice:
        return FakeHidDevice(self)

    # -- the meter ------------------------------------------------------------------------------
    def session(self) -> None:
        self.started = False
        self.t0 = 0.0
        self.next_k = 0
        self.last_keepalive = 0.0
        self.corrupted = False

    def on_report(self, rep: bytes) -> None:
        self.received.append(rep)
        if len(rep) != 64 or rep[0] != 0xAA or crc8(rep[1:63]) != rep[63]:
            return  # the meter ignores bad reports
        if rep[1] == 0x82 and not self.started:
            self.started = True
            self.t0 = time.monotonic()
            self.next_k = 0
        if rep[1] in (0x82, 0x83):
            self.last_keepalive = time.monotonic()

    def vnow(self) -> float:
        return (time.monotonic() - self.t0) * self.speed

    def next_report(self) -> bytes | None:
        if self.stale:
            return self.stale.pop()
        if not self.started:
            return None
        if time.monotonic() - self.last_keepalive > 3.0:
            self.started = False  # no keep-alive: the meter stops streaming
            return None
        f = self.faults
        now = self.vnow()
        if f.stall_s and f.drop_at_s is not None and f.drop_at_s <= now < f.drop_at_s + f.stall_s:
            return None  # the host is starved: reports queue up in the OS (nothing is lost)
        while True:
            k = self.next_k
            if (k + 1) * REPORT_S > now:
                return None
            self.next_k += 1
            t = k * REPORT_S
            if f.disconnect_at_s is not None and t >= f.disconnect_at_s:
                self.unplugged = True
                return None
            if f.drop_at_s is not None and f.drop_n:
                k0 = math.ceil(f.drop_at_s / REPORT_S)
                if k0 <= k < k0 + f.drop_n:
                    continue
            i0 = 4 * k
            p = self.profile.mean_power(i0, i0 + 4, 100.0)
            v = self.profile.voltage_v
            rep = bytearray(in_report([v] * 4, list(np.asarray(p) / v)))
            if f.corrupt_at_s is not None and t >= f.corrupt_at_s and not self.corrupted:
                rep[7] ^= 0x10
                self.corrupted = True
            return bytes(rep)
