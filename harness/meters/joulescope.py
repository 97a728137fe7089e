"""Joulescope JS220 / JS110 through ``pyjoulescope_driver`` (Apache-2.0; ``pip install pyjoulescope-driver``).

On-instrument statistics (the mode the maintainer recommends on small hosts): ``s/i/range/mode auto``,
``s/stats/scnt`` samples per block, ``s/stats/ctrl 1``, subscribe ``s/stats/value``; the energy
accumulator gives a cumulative ``energy_j`` trace on the meter's sample clock. GPI0 (the DUT's marker
pin) streams on ``s/gpi/0/!data`` as bit-packed samples; each change becomes a marker. A gap in the
statistics' sample ids means lost blocks; a NaN accumulator is a corrupted value; a device that leaves
``device_paths()`` is a lost meter. The driver library is injected (``transport=``) so tests can use
:class:`harness.emulators.joulescope.FakeDriver` (API-level fake: no byte-level emulation exists).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import math
import threading
import time
from typing import Any, Literal

import numpy as np

from ..errors import MeterUnavailable, StateError
from ._common import MarkerChoice, MarkerWindows, measurement_class
from .base import METERS, Marker, Meter, MeterConfig, MeterInfo, Trace

INSTALL = "pip install pyjoulescope-driver (frugalbench[joulescope])"


def _load_driver() -> Any:
    try:
        return importlib.import_module("pyjoulescope_driver").Driver()
    except ImportError as exc:
        raise MeterUnavailable(f"pyjoulescope_driver is not installed; install it with `{INSTALL}`") from exc


class JoulescopeConfig(MeterConfig):
    """``[meter] kind = "joulescope"``."""

    device: str = ""  # device path prefix (e.g. "u/js220/000415"); empty: the only one
    stats_hz: float = 1000.0
    markers: bool = True
    marker_method: MarkerChoice = "auto"
    model: Literal["auto", "js220", "js110"] = "auto"
    simulated: bool = False
    boundary: str = ""


@METERS.register("joulescope")
class Joulescope(MarkerWindows, Meter):
    """Joulescope JS220 (JS110 in host-statistics mode)."""

    name = "joulescope"
    Config = JoulescopeConfig
    config: JoulescopeConfig

    def __init__(self, config: JoulescopeConfig, *, transport: Any = None) -> None:
        super().__init__(config)
        self.drv = transport
        self.dev = ""
        self._lock = threading.Lock()
        self._rows: list[tuple[int, int, float, float]] = []
        self._gpi: list[tuple[int, np.ndarray]] = []
        self._recording = False
        self._rate = 1_000_000
        self._host_t0 = 0.0

    @classmethod
    def availability(cls) -> str | None:
        if importlib.util.find_spec("pyjoulescope_driver") is None:
            return f"pyjoulescope_driver is not installed; install it with `{INSTALL}`"
        try:
            drv = _load_driver()
            try:
                paths = drv.device_paths()
            finally:
                drv.finalize()
        except Exception as exc:  # noqa: BLE001 - the C driver raises assorted errors
            return f"pyjoulescope_driver failed to start: {exc}"
        return None if paths else "no Joulescope attached (check the USB cable and the udev rules)"

    def _on_stats(self, topic: str, value: dict[str, Any]) -> None:
        if not self._recording:
            return
        s0, s1 = value["time"]["samples"]["value"]
        e = value["accumulators"]["energy"]["value"]
        p = value["signals"]["power"]["avg"]["value"]
        with self._lock:
            if not self._rows:
                self._host_t0 = time.perf_counter() - (int(s1) - int(s0)) / self._rate
            self._rows.append((int(s0), int(s1), float(e), float(p)))

    def _on_gpi(self, topic: str, value: dict[str, Any]) -> None:
        if not self._recording:
            return
        bits = np.unpackbits(np.asarray(value["data"], dtype=np.uint8), bitorder="little")
        with self._lock:
            self._gpi.append((int(value["sample_id"]), bits))

    def open(self) -> None:
        self.drv = self.drv or _load_driver()
        paths = [
            p for p in self.drv.device_paths() if not self.config.device or p.startswith(self.config.device)
        ]
        if len(paths) != 1:
            raise MeterUnavailable(
                f"need exactly one Joulescope matching {self.config.device!r}; found {paths}"
            )
        self.dev = paths[0]
        self._rate = 2_000_000 if "js110" in self.dev else 1_000_000
        self.drv.open(self.dev, "restore")
        d = self.dev
        self.drv.publish(f"{d}/s/i/range/mode", "auto")
        self.drv.publish(f"{d}/s/stats/scnt", int(round(self._rate / self.config.stats_hz)))
        self.drv.subscribe(f"{d}/s/stats/value", "pub", self._on_stats)
        if self.config.markers:
            self.drv.subscribe(f"{d}/s/gpi/0/!data", "pub", self._on_gpi)
            self.drv.publish(f"{d}/s/gpi/0/ctrl", 1)
        self.drv.publish(f"{d}/s/stats/ctrl", 1)

    def start(self) -> None:
        if not self.dev:
            raise StateError("Joulescope is not open; call open() first")
        with self._lock:
            self._rows, self._gpi = [], []
        self._recording = True

    def stop(self) -> Trace:
        if not self._recording:
            raise StateError("Joulescope stop() without start()")
        self._recording = False
        with self._lock:
            rows, gpi = list(self._rows), list(self._gpi)
        problems: list[str] = []
        if self.dev not in self.drv.device_paths():
            problems.append(f"Joulescope {self.dev} disconnected during the window")
        if len(rows) < 2:
            problems.append(f"only {len(rows)} statistics blocks received")
            return Trace(t_s=np.zeros(0), energy_j=np.zeros(0), valid=False, problem="; ".join(problems),
                         host_aligned=False)  # fmt: skip
        s0 = rows[0][0]
        t = np.asarray([s0] + [r[1] for r in rows], dtype=np.float64)
        # the accumulator holds the energy at each block's end; back out the first block's start
        energy = np.asarray([math.nan] + [r[2] for r in rows], dtype=np.float64)
        energy[0] = rows[0][2] - rows[0][3] * (rows[0][1] - rows[0][0]) / self._rate
        dropped = sum(max(0, b[0] - a[1]) for a, b in zip(rows, rows[1:], strict=False))
        if dropped:
            problems.append(f"{dropped} samples missing between statistics blocks")
        if not np.isfinite(energy[1:]).all():
            problems.append("corrupted (NaN) energy accumulator value")
            energy = np.where(np.isfinite(energy), energy, np.nan)
        markers: list[Marker] = []
        prev: int | None = None
        for sid, bits in sorted(gpi, key=lambda g: g[0]):
            lv = bits.astype(np.int8)
            before = np.concatenate(([lv[0] if prev is None else prev], lv[:-1]))
            for i in np.nonzero(lv != before)[0]:
                markers.append(Marker(t_s=(sid + int(i) - s0) / self._rate, channel=0, level=int(lv[i])))
            prev = int(lv[-1])
        return Trace(
            t_s=(t - s0) / self._rate, energy_j=energy - (energy[0] if np.isfinite(energy[0]) else 0.0),
            rate_hz=self.config.stats_hz, markers=markers, dropped=dropped, host_aligned=False,
            valid=not problems, problem="; ".join(problems), extra={"meter": self.dev, "host_t0": self._host_t0, "meter_t0_s": s0 / self._rate},
        )  # fmt: skip

    def marker_choice(self) -> MarkerChoice:
        return self.config.marker_method if self.config.markers else "host-clock"

    def marker_channel(self) -> int | None:
        return 0

    def info(self) -> MeterInfo:
        emulator_id = f"device path {self.dev!r}" if self.dev.rsplit("/", 1)[-1].upper() == "EMULATOR" else ""
        cls, note = measurement_class(emulator_id, self.config.simulated)
        sim = cls == "simulated"
        return MeterInfo(
            energy_class=cls,
            model=f"Joulescope {self.dev.split('/')[1].upper() if self.dev else 'JS220'}"
            + (" (fake)" if sim else ""),
            boundary=self.config.boundary or "DUT supply through the Joulescope",
            rate_hz=self.config.stats_hz,
            accuracy="see joulescope.com datasheet (vendor figures, not verified here)",
            marker_method="gpio" if self.config.markers else "host-clock",
            note=note,
        )

    def close(self) -> None:
        self._recording = False
        if self.drv is not None and self.dev:
            try:
                self.drv.publish(f"{self.dev}/s/stats/ctrl", 0)
                self.drv.close(self.dev)
            except Exception:  # noqa: BLE001, S110 - a vanished device cannot be closed cleanly
                pass
            self.dev = ""
        if self.drv is not None:
            with contextlib.suppress(Exception):
                self.drv.finalize()
