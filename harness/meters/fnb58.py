"""FNIRSI FNB48 / FNB58 driver over USB HID through the ``hid`` module (``pip install hidapi``).

Start: OUT reports ``aa 81``, ``aa 82``, then ``aa 82`` (FNB58/FNB48S) or ``aa 83`` (FNB48/C1); keep-alive
``aa 83`` every 0.5 s. Each 64-byte IN report of type ``0x04`` holds 4 samples of 10 ms (V u32 ×1e-5,
I u32 ×1e-5, D+/D− u16 mV, 1 byte, temperature u16 ×0.1 °C) and ends with a CRC-8 (poly 0x39, init 0x42)
over bytes 1..62. The meter must be plugged in by its *PC* micro-USB port. Reports carry no counter,
so lost reports show as a lasting lag of the meter's 40 ms report clock behind the host's (a loss
smaller than 0.5 % of the window, the allowed clock mismatch, can pass); reports with a bad CRC are
rejected and counted. Samples are stamped on the meter's report clock, anchored to the host clock on
the least-delayed arrival, so a busy host that reads a buffered burst late does not skew the times.
The HID library is injected (``transport=``) so tests drive a fake of its API.
"""

from __future__ import annotations

import contextlib
import importlib
import struct
import threading
import time
from typing import Any, Literal

import numpy as np

from ..errors import MeterError, MeterUnavailable, ProtocolError, StateError
from ._common import MeterProtocolError, measurement_class, polled_trace
from .base import METERS, Meter, MeterConfig, MeterInfo, Trace

VID_PIDS = {
    "fnb58": (0x2E3C, 0x5558),
    "fnb48s": (0x2E3C, 0x0049),
    "fnb48": (0x0483, 0x003A),
    "c1": (0x0483, 0x003B),
}
SAMPLE_S = 0.01


def crc8(data: bytes, poly: int = 0x39, init: int = 0x42) -> int:
    """FNIRSI CRC-8 (MSB first, no reflection)."""
    c = init
    for b in data:
        c ^= b
        for _ in range(8):
            c = ((c << 1) ^ poly) & 0xFF if c & 0x80 else (c << 1) & 0xFF
    return c


def make_out(cmd: int) -> bytes:
    """64-byte OUT report ``aa <cmd> 0… crc``."""
    body = bytes([0xAA, cmd]) + bytes(61)
    return body + bytes([crc8(body[1:63])])


def parse_report(rep: bytes) -> list[tuple[float, float]] | None:
    """IN report → 4 × (volts, amps), or None for a non-data report (pure). ProtocolError on a bad CRC."""
    if len(rep) != 64 or rep[0] != 0xAA:
        raise MeterProtocolError(
            f"FNB report of {len(rep)} bytes starting {bytes(rep[:2]).hex()} is malformed"
        )
    if crc8(bytes(rep[1:63])) != rep[63]:
        raise MeterProtocolError(
            f"FNB report CRC mismatch (0x{crc8(bytes(rep[1:63])):02x} != 0x{rep[63]:02x})"
        )
    if rep[1] != 0x04:
        return None
    out = []
    for k in range(4):
        v, i = struct.unpack_from("<II", rep, 2 + 15 * k)
        out.append((v * 1e-5, i * 1e-5))
    return out


class FnbConfig(MeterConfig):
    """``[meter] kind = "fnb58"``; ``model`` picks the VID:PID and the start sequence."""

    model: Literal["fnb58", "fnb48s", "fnb48", "c1"] = "fnb58"
    path: str = ""  # hidraw path when several meters are attached
    simulated: bool = False
    boundary: str = ""


def _load_hid() -> Any:
    try:
        return importlib.import_module("hid")
    except ImportError as exc:
        raise MeterUnavailable(
            "the 'hid' module is missing; install it with `pip install hidapi` (frugalbench[hid]) and the "
            "udev rule that gives you access to the meter's hidraw device"
        ) from exc


@METERS.register("fnb58")
class Fnb58(Meter):
    """FNIRSI FNB48/FNB58 USB inline meter."""

    name = "fnb58"
    Config = FnbConfig
    config: FnbConfig

    def __init__(self, config: FnbConfig, *, transport: Any = None) -> None:
        super().__init__(config)
        self.hid = transport
        self.dev: Any = None
        self.product = ""
        self.stale_reports = 0
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self._arrivals: list[float] = []
        self._reports: list[list[float] | None] = []
        self._rejected: list[str] = []
        self._error = ""

    @classmethod
    def availability(cls) -> str | None:
        try:
            hid = _load_hid()
        except MeterUnavailable as exc:
            return str(exc)
        for vid, pid in VID_PIDS.values():
            if hid.enumerate(vid, pid):
                return None
        return "no FNIRSI FNB48/FNB58 found (VID:PID 2e3c:5558, 2e3c:0049, 0483:003a); plug its PC micro-USB port"

    def open(self) -> None:
        self.hid = self.hid or _load_hid()
        vid, pid = VID_PIDS[self.config.model]
        found = self.hid.enumerate(vid, pid)
        if not found:
            raise MeterUnavailable(
                f"no {self.config.model.upper()} (VID:PID {vid:04x}:{pid:04x}) on USB; use its PC micro-USB port"
            )
        self.product = str(found[0].get("product_string", ""))
        self.dev = self.hid.device()
        try:
            if self.config.path:
                self.dev.open_path(self.config.path.encode())
            else:
                self.dev.open(vid, pid)
        except OSError as exc:
            raise MeterUnavailable(
                f"cannot open the FNB meter: {exc}; check the udev rule / permissions"
            ) from exc
        while self.dev.read(64, 20):
            self.stale_reports += 1
        second = 0x82 if self.config.model in ("fnb58", "fnb48s") else 0x83
        for cmd in (0x81, 0x82, second):
            self._write(cmd)

    def _write(self, cmd: int) -> None:
        self.dev.write(b"\x00" + make_out(cmd))

    def _run(self) -> None:
        last_keep = time.monotonic()
        while True:
            halting = self._halt.is_set()  # then read what is buffered, without waiting, and end
            try:
                if time.monotonic() - last_keep > 0.5:
                    self._write(0x83)
                    last_keep = time.monotonic()
                rep = bytes(self.dev.read(64, 0 if halting else 100))
            except OSError as exc:
                self._error = f"meter connection lost: {exc}"
                return
            now = time.perf_counter()
            if not rep:
                if halting:
                    return
                continue
            try:
                samples = parse_report(rep)
            except ProtocolError as exc:
                self._rejected.append(str(exc))
                self._arrivals.append(now)  # a report slot, even if unreadable
                self._reports.append(None)
                continue
            if samples is not None:
                self._arrivals.append(now)
                self._reports.append([v * i for v, i in samples])

    def _timeline(self) -> tuple[list[float], list[float], int]:
        """Sample times on the meter's own report clock (anchored on the least-delayed arrival), the
        powers, and the number of missing reports (a lasting lag of the latest reports).

        Reports carry no counter, and the OS buffers them when the host is busy, so arrival gaps alone
        would be misleading: a buffered burst catches up, lost reports leave a lasting lag.
        """
        n = len(self._arrivals)
        if n == 0:
            return [], [], 0
        period = 4 * SAMPLE_S
        arr = np.asarray(self._arrivals)
        lag0 = arr - np.arange(n) * period
        offset = float(lag0.min())
        tail = lag0[-1:] - offset  # buffered reports are all read at stop: the last one is fresh
        tolerance = max(2 * period, 0.005 * (arr[-1] - arr[0]))  # allow ±0.5 % between the two clocks
        missing = round(float(tail.min()) / period) if float(tail.min()) > tolerance else 0
        t: list[float] = []
        p: list[float] = []
        for k, rep in enumerate(self._reports):
            if rep is None:
                continue
            for j, watts in enumerate(rep):
                t.append(offset + k * period - (3 - j) * SAMPLE_S)
                p.append(watts)
        return t, p, missing

    def start(self) -> None:
        if self.dev is None:
            raise StateError("FNB meter is not open; call open() first")
        if self._error:
            raise MeterError(f"FNB meter link was lost ({self._error}); close() and open() it again")
        self._arrivals, self._reports, self._rejected = [], [], []
        self._halt.clear()
        self._thread = threading.Thread(target=self._run, daemon=True, name="fnb-read")
        self._thread.start()

    def stop(self) -> Trace:
        if self._thread is None:
            raise StateError("FNB meter stop() without start()")
        self._halt.set()
        self._thread.join(2)
        self._thread = None
        t, p, missing = self._timeline()
        problems = [self._error] if self._error else []
        problems += list(dict.fromkeys(self._rejected))
        if missing:
            problems.append(f"about {missing} reports missing (the meter's data lags the host clock)")
        return polled_trace(t, p, len(self._rejected) + missing, problems,
                            {"meter": self.config.model, "stale_reports": self.stale_reports}, rate_hz=100.0)  # fmt: skip

    def info(self) -> MeterInfo:
        emulator_id = f"USB product {self.product!r}" if "emulator" in self.product.lower() else ""
        cls, note = measurement_class(emulator_id, self.config.simulated)
        sim = cls == "simulated"
        return MeterInfo(
            energy_class=cls,
            model=f"FNIRSI {self.config.model.upper()}" + (" (emulator)" if sim else ""),
            boundary=self.config.boundary or "board USB supply (inline meter)",
            rate_hz=100.0,
            accuracy="10 µV / 10 µA resolution; ≈25 independent samples/s (the rest interpolated)",
            marker_method="host-clock",
            note=note,
        )

    def close(self) -> None:
        if self._thread is not None:
            self._halt.set()
            self._thread.join(2)
            self._thread = None
        if self.dev is not None:
            with contextlib.suppress(OSError):
                self.dev.close()
            self.dev = None
