"""A fake of ``pyjoulescope_driver.Driver`` with one emulated JS220 (API-level, not protocol-level).

The Joulescope's USB protocol lives inside a C driver, so no byte-level emulator is possible; this
fake implements the pub/sub surface our driver uses: ``device_paths``, ``open``, ``publish``,
``subscribe``, ``unsubscribe``, ``query``, ``close``, ``finalize``. With ``{dev}/s/stats/ctrl = 1`` it
publishes ``{dev}/s/stats/value`` every ``scnt`` samples (1 MS/s clock): time.samples, signals
current/voltage/power avg/std/min/max, accumulators charge/energy. With ``{dev}/s/gpi/0/ctrl = 1`` it
publishes ``{dev}/s/gpi/0/!data`` blocks of bit-packed GPI0 samples (the DUT's marker pin).
The fake identifies itself in its device path: serial number ``EMULATOR`` (``u/js220/EMULATOR``; a real
JS220's serial is digits); ``impersonate=True`` lists a real-looking path (``u/js220/000415``).
Faults: dropped blocks (sample-id gap), a NaN energy value (corrupted), a disconnect (the device
disappears from ``device_paths`` and publishing stops).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .base import Faults
from .profile import Profile

RATE = 1_000_000
DEVICE = "u/js220/000415"  # a real-looking device path (``impersonate=True``)
EMULATED_DEVICE = "u/js220/EMULATOR"


class FakeDriver:
    """Stand-in for ``pyjoulescope_driver.Driver``."""

    def __init__(
        self, profile: Profile | None = None, faults: Faults | None = None, *, impersonate: bool = False
    ) -> None:
        self.profile = profile or Profile()
        self.device = DEVICE if impersonate else EMULATED_DEVICE
        self.faults = faults or Faults()
        self.params: dict[str, Any] = {}
        self.subs: dict[str, list[Callable[[str, Any], None]]] = {}
        self.opened = False
        self.present = True
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self.published: list[tuple[str, Any]] = []

    # -- Driver API ----------------------------------------------------------------------------
    def __enter__(self) -> FakeDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finalize()

    def device_paths(self, timeout: float | None = None) -> list[str]:
        return [self.device] if self.present else []

    def open(self, device_prefix: str, mode: str | None = None, timeout: float | None = None) -> None:
        if device_prefix != self.device or not self.present:
            raise RuntimeError(f"open {device_prefix} failed: not found")
        self.opened = True

    def close(self, device_prefix: str, timeout: float | None = None) -> None:
        self._stop()
        self.opened = False

    def finalize(self, timeout: float | None = None) -> None:
        self._stop()

    def query(self, topic: str, timeout: float | None = None) -> Any:
        return self.params.get(topic)

    def subscribe(
        self, topic: str, flags: Any, fn: Callable[[str, Any], None], timeout: float | None = None
    ) -> None:
        self.subs.setdefault(topic, []).append(fn)

    def unsubscribe(self, topic: str, fn: Callable[[str, Any], None], timeout: float | None = None) -> None:
        if fn in self.subs.get(topic, []):
            self.subs[topic].remove(fn)

    def publish(self, topic: str, value: Any, timeout: float | None = None) -> None:
        if not self.opened:
            raise RuntimeError("device not open")
        self.published.append((topic, value))
        self.params[topic] = value
        stats = self.params.get(f"{self.device}/s/stats/ctrl") in (1, "on", True)
        if stats and self._thread is None:
            self._halt.clear()
            self._thread = threading.Thread(target=self._run, daemon=True, name="fake-jsdrv")
            self._thread.start()
        elif not stats and self._thread is not None:
            self._stop()

    # -- the instrument ------------------------------------------------------------------------
    def _stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(2)
        self._thread = None

    def _emit(self, topic: str, value: Any) -> None:
        for fn in list(self.subs.get(topic, [])):
            fn(topic, value)

    def _run(self) -> None:
        scnt = int(self.params.get(f"{self.device}/s/stats/scnt", 1000))
        gpi = self.params.get(f"{self.device}/s/gpi/0/ctrl") in (1, "on", True)
        v = self.profile.voltage_v
        f = self.faults
        t0 = time.monotonic()
        k = 0
        while not self._halt.is_set():
            if (k + 1) * scnt / RATE > time.monotonic() - t0:
                time.sleep(0.001)
                continue
            s0, s1 = k * scnt, (k + 1) * scnt
            k += 1
            t = s0 / RATE
            if f.disconnect_at_s is not None and t >= f.disconnect_at_s:
                self.present = False
                return
            if (
                f.drop_at_s is not None
                and f.drop_n
                and math.ceil(f.drop_at_s * RATE / scnt)
                <= k - 1
                < (math.ceil(f.drop_at_s * RATE / scnt) + f.drop_n)
            ):
                continue
            e0, e1 = self.profile.cumulative(np.asarray([s0 / RATE, s1 / RATE]))
            p = (e1 - e0) * RATE / scnt
            energy = float(e1)
            if f.corrupt_at_s is not None and t >= f.corrupt_at_s:
                energy = math.nan
                f.corrupt_at_s = None
            sig = {name: {x: {"value": val} for x, val in (("avg", a), ("std", 0.0), ("min", a), ("max", a))}
                   for name, a in (("current", p / v), ("voltage", v), ("power", p))}  # fmt: skip
            self._emit(f"{self.device}/s/stats/value", {
                "time": {"samples": {"value": [s0, s1], "units": "samples"}},
                "signals": sig,
                "accumulators": {"charge": {"value": float(e1 / v)}, "energy": {"value": energy}},
            })  # fmt: skip
            if gpi:
                bits = self.profile.marker(np.arange(s0, s1) / RATE)
                self._emit(f"{self.device}/s/gpi/0/!data", {
                    "data": np.packbits(bits, bitorder="little"), "sample_id": s0, "sample_rate": RATE,
                    "decimate_factor": 1, "field_id": 7, "index": 0, "utc": 0,
                })  # fmt: skip
