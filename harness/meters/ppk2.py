"""Nordic Power Profiler Kit II driver (our own, MIT-compatible; the GPL ``ppk2-api`` is not used).

Protocol facts (Nordic's app, ppk2lab's spec): opcodes ``0x19`` metadata (``Key: value`` lines ending
``END``), ``0x11 mode`` (1 ampere, 2 source), ``0x0D hi lo`` source mV, ``0x0C 1`` DUT power on,
``0x06``/``0x07`` start/stop streaming. Samples: 100 kS/s little-endian uint32 frames: ADC bits 0–13,
range 14–16, 6-bit counter 18–23, logic D0–D7 24–31. Current::

    x   = (4·ADC − O[r]) · 1.8/163840 / R[r]
    I_A = UG[r] · (x·(GS[r]·x + GI[r]) + S[r]·VDD_V + I[r])

Loss detection: counter gaps (lost samples are kept as NaN so time stays right), frames with an
invalid range or an isolated bad counter (corrupted), and a wall-clock rate check, since a loss of a
multiple of 64 samples is invisible to a 6-bit counter. No spike filter is applied (raw series).
A sample the instrument cannot give is kept as NaN too (the window is then invalid): an ADC code at
full scale (the input was beyond its range: the value is a ceiling, not a reading) or a current above
the PPK2's 1 A span (:data:`AMPS_LIMIT`; e.g. a flipped range bit). The frame has no checksum: a
flipped ADC bit, or a range bit that gives another plausible range, stays unseen (on the real kit the
USB link's CRC keeps flips from the host; ``benches/perf/meter_faults.py`` bounds their effect).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import serial

from ..errors import ConfigError, MeterError, StateError
from ._common import (
    MarkerChoice,
    MarkerWindows,
    MeterProtocolError,
    Reader,
    SerialMeterConfig,
    close_streaming,
    drain_stale,
    logic_markers,
    measurement_class,
    open_serial,
    read_some,
    resolve_url,
    sampled_trace,
    serial_availability,
    write_all,
)
from .base import METERS, Marker, Meter, MeterInfo, Trace

VID_PIDS = [(0x1915, 0xC00A)]
RATE_HZ = 100_000
DEFAULT_R = [1031.64, 101.65, 10.15, 0.94, 0.043]
#: the PPK2 measures up to 1 A (range 4: 50 mA–1 A); above 1.1 A (ppk2lab's limit) a sample is not a reading
AMPS_LIMIT = 1.1
ADC_FULL_SCALE = 0x3FFF


def parse_metadata(text: str) -> dict[str, str]:
    """``Key: value`` lines up to ``END`` → dict (pure). Raises ProtocolError without ``END``."""
    out: dict[str, str] = {}
    for line in text.replace("\r", "").split("\n"):
        if line.strip() == "END":
            return out
        key, sep, value = line.partition(":")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    raise MeterProtocolError("PPK2 metadata has no END line: not a PPK2, or the reply was cut")


@dataclass(frozen=True)
class Calibration:
    """Per-range calibration (5 ranges)."""

    R: np.ndarray
    GS: np.ndarray
    GI: np.ndarray
    O: np.ndarray
    S: np.ndarray
    I: np.ndarray
    UG: np.ndarray

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> Calibration:
        """Build from parsed metadata; missing or zero shunts fall back to Nordic's defaults."""

        def arr(key: str, default: list[float]) -> np.ndarray:
            vals = []
            for i in range(5):
                try:
                    v = float(meta.get(f"{key}{i}", default[i]))
                except ValueError as exc:
                    raise MeterProtocolError(f"PPK2 metadata {key}{i} is not a number: {exc}") from exc
                if not np.isfinite(v):
                    raise MeterProtocolError(f"PPK2 metadata {key}{i} is not finite")
                vals.append(v)
            return np.asarray(vals, dtype=np.float64)

        r = arr("R", DEFAULT_R)
        r = np.where(r == 0, DEFAULT_R, r)
        return cls(
            R=r, GS=arr("GS", [0.0] * 5), GI=arr("GI", [1.0] * 5), O=arr("O", [0.0] * 5),
            S=arr("S", [0.0] * 5), I=arr("I", [0.0] * 5), UG=arr("UG", [1.0] * 5),
        )  # fmt: skip


def split_frames(buf: bytes) -> tuple[np.ndarray, bytes]:
    """Whole 4-byte frames as uint32 and the leftover bytes (pure)."""
    n = len(buf) // 4
    return np.frombuffer(buf[: 4 * n], dtype="<u4").copy(), bytes(buf[4 * n :])


def decode_frames(words: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(adc, range, counter, logic)`` of uint32 frames (pure)."""
    w = words.astype(np.uint32)
    return (w & 0x3FFF, (w >> 14) & 0x7, (w >> 18) & 0x3F, (w >> 24) & 0xFF)


def to_amps(adc: np.ndarray, rng: np.ndarray, cal: Calibration, vdd_v: float) -> np.ndarray:
    """Current in A; NaN where the range field is invalid (5–7)."""
    ok = rng <= 4
    r = np.where(ok, rng, 0)
    x = (adc.astype(np.float64) * 4 - cal.O[r]) * (1.8 / 163840) / cal.R[r]
    amps = cal.UG[r] * (x * (cal.GS[r] * x + cal.GI[r]) + cal.S[r] * vdd_v + cal.I[r])
    return np.where(ok, amps, np.nan)


@dataclass
class Ppk2Stream:
    """IO-free stream decoder: feed bytes, collect currents, logic markers, losses."""

    cal: Calibration
    vdd_v: float
    amps: list[np.ndarray] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    dropped: int = 0
    corrupted: int = 0
    over_range: int = 0
    n: int = 0
    _rem: bytes = b""
    _last_counter: int | None = None
    _last_logic: int | None = None

    def feed(self, data: bytes) -> None:
        words, self._rem = split_frames(self._rem + data)
        if len(words) == 0:
            return
        adc, rng, cnt, logic = decode_frames(words)
        amps = to_amps(adc, rng, self.cal, self.vdd_v)
        bad_range = rng > 4
        self.corrupted += int(bad_range.sum())
        impossible = ~bad_range & ((adc == ADC_FULL_SCALE) | (np.abs(amps) > AMPS_LIMIT))
        if impossible.any():
            amps[impossible] = np.nan
            self.over_range += int(impossible.sum())
        # counter continuity
        prev = self._last_counter
        c = cnt.astype(np.int64)
        d = (np.diff(c, prepend=c[0] - 1 if prev is None else prev)) & 0x3F
        anomalies = np.nonzero(d != 1)[0]
        gaps = np.zeros(len(c), dtype=np.int64)  # samples lost before frame k
        skip: set[int] = set()
        for idx in anomalies:
            k = int(idx)
            if k in skip:
                continue
            before = int(c[k - 1]) if k > 0 else prev
            nxt = k + 1
            if before is not None and nxt < len(c) and (c[nxt] - before) & 0x3F == 2 and d[nxt] != 1:
                amps[k] = np.nan  # an isolated frame with a bad counter: corrupted, not a loss
                self.corrupted += 1
                skip.add(nxt)
                continue
            gaps[k] = (int(d[k]) - 1) & 0x3F or 64
        lost = int(gaps.sum())
        if lost:
            self.dropped += lost
            # re-insert NaN for lost samples so later samples keep their time
            parts, lparts = [], []
            start = 0
            for idx in np.nonzero(gaps)[0]:
                k = int(idx)
                parts += [amps[start:k], np.full(gaps[k], np.nan)]
                lparts += [
                    logic[start:k],
                    np.full(gaps[k], logic[k - 1] if k else logic[k], dtype=logic.dtype),
                ]
                start = k
            parts.append(amps[start:])
            lparts.append(logic[start:])
            amps = np.concatenate(parts)
            logic = np.concatenate(lparts)
        self.markers += logic_markers(logic, RATE_HZ, self.n, self._last_logic)
        self._last_logic = int(logic[-1])
        self._last_counter = int(c[-1])
        self.n += len(amps)
        self.amps.append(amps)

    def current(self) -> np.ndarray:
        return np.concatenate(self.amps) if self.amps else np.zeros(0)


class Ppk2Config(SerialMeterConfig):
    """``[meter] kind = "ppk2"``. ``mode = "source"`` powers the DUT at ``vdd_mv``; in ``ampere`` mode
    the PPK2 only measures current and ``voltage_v`` (the DUT's supply) turns it into power."""

    mode: Literal["source", "ampere"] = "source"
    vdd_mv: int = 3300
    voltage_v: float | None = None
    rate_check: bool = True
    marker_method: MarkerChoice = "auto"
    marker_channel: int = 0
    #: start() returns this long after the start opcode, which has no reply: a PPK2 streams from ≈2.3 ms
    #: after it (ppk2lab), so a DUT window begun at once could lose its first marker edge
    start_settle_s: float = 0.02


@METERS.register("ppk2")
class Ppk2(MarkerWindows, Meter):
    """Nordic PPK2 on its measurement CDC port (or an emulator URL)."""

    name = "ppk2"
    Config = Ppk2Config
    config: Ppk2Config

    def __init__(self, config: Ppk2Config) -> None:
        super().__init__(config)
        if not 800 <= config.vdd_mv <= 5000:
            raise ConfigError(f"PPK2 vdd_mv {config.vdd_mv} outside 800..5000")
        if config.mode == "ampere" and config.voltage_v is None:
            raise ConfigError("PPK2 in ampere mode needs voltage_v (the DUT supply voltage) to give power")
        self.port: serial.SerialBase | None = None
        self.meta: dict[str, str] = {}
        self.cal: Calibration | None = None
        self._stream: Ppk2Stream | None = None
        self._reader: Reader | None = None
        self._t0 = 0.0
        self._t_first: float | None = None
        self.stale_bytes = 0
        self._lost = ""

    @classmethod
    def availability(cls) -> str | None:
        return serial_availability("PPK2", VID_PIDS, "ppk2")

    def _write(self, data: bytes) -> None:
        if self.port is None:
            raise StateError("PPK2 is not open; call open() first")
        write_all(self.port, data)

    def read_metadata(self) -> dict[str, str]:
        """Ask for metadata (``0x19``) and parse it."""
        assert self.port is not None
        self._write(b"\x19")
        buf = bytearray()
        deadline = time.monotonic() + self.config.timeout_s
        while b"END" not in buf and time.monotonic() < deadline:
            buf += read_some(self.port)
        if b"END" not in buf:
            raise MeterProtocolError(
                f"PPK2 at {self.config.url}: no metadata (got {len(buf)} bytes, e.g. {bytes(buf[:24])!r}) "
                f"within {self.config.timeout_s} s; is this the PPK2's measurement port (the lower-numbered "
                "CDC interface) and is no other program streaming from it?"
            )
        text = buf.decode("ascii", "replace")
        m = re.search(r"(?m)^[A-Za-z][A-Za-z0-9]*: ", text)
        if m and m.start():
            self.stale_bytes += len(text[: m.start()].encode("ascii", "replace"))
        return parse_metadata(text)

    def open(self) -> None:
        url = resolve_url(self.config, "PPK2", VID_PIDS)
        self.config = self.config.model_copy(update={"url": url})
        self.port = open_serial(url, self.config.baud, 0.05, "PPK2")
        self._lost = ""  # a fresh connection: a link lost before is no longer in the way
        self._write(b"\x07")  # stop a stream an earlier session left running
        self.stale_bytes = drain_stale(self.port)
        self.meta = self.read_metadata()
        self.cal = Calibration.from_metadata(self.meta)
        mv = self.config.vdd_mv
        if self.config.mode == "source":
            self._write(bytes([0x11, 0x02, 0x0D, mv >> 8, mv & 0xFF, 0x0C, 0x01]))
        else:
            self._write(bytes([0x11, 0x01, 0x0C, 0x01]))

    def _volts(self) -> float:
        return (
            self.config.vdd_mv / 1000 if self.config.mode == "source" else float(self.config.voltage_v or 0)
        )

    def start(self) -> None:
        if self.port is None or self.cal is None:
            raise StateError("PPK2 is not open; call open() first")
        if self._lost:
            raise MeterError(f"PPK2 link was lost ({self._lost}); close() and open() it again")
        self.port.reset_input_buffer()
        self._stream = Ppk2Stream(cal=self.cal, vdd_v=self.config.vdd_mv / 1000)
        stream = self._stream
        self._t_first = None

        def sink(data: bytes, t: float) -> None:
            if self._t_first is None:
                self._t_first = t
            stream.feed(data)

        self._reader = Reader(self.port, sink)
        self._write(b"\x06")
        self._t0 = time.perf_counter()
        self._reader.start()
        time.sleep(self.config.start_settle_s)

    def stop(self) -> Trace:
        if self._stream is None or self._reader is None:
            raise StateError("PPK2.stop() without start()")
        t_stop = time.perf_counter()
        elapsed = t_stop - self._t0
        stream, reader = self._stream, self._reader
        if not reader.error:
            try:
                self._write(b"\x07")
            except Exception as exc:  # noqa: BLE001 - any write failure means the link is gone
                reader.error = f"meter connection lost: {exc}"
            # let the reader drain what was sent before the stop (until 0.1 s of silence, at most 2 s)
            deadline = time.monotonic() + 2.0
            seen = -1
            while seen != stream.n and not reader.error and time.monotonic() < deadline:
                seen = stream.n
                time.sleep(0.1)
        reader.halt()
        problems: list[str] = []
        if reader.error:
            self._lost = reader.error
            problems.append(f"{reader.error} after {stream.n / RATE_HZ:.3f} s")
        if stream.corrupted:
            problems.append(f"{stream.corrupted} corrupted frames (bad counter or range; kept as NaN)")
        if stream.over_range:
            problems.append(
                f"{stream.over_range} samples at the ADC's full scale or above the PPK2's {AMPS_LIMIT:g} A "
                "(over range or corrupted; kept as NaN): lower the DUT's current or check the wiring"
            )
        # wall-clock cross-check from the first data's arrival (a late start can only shorten it)
        streamed = t_stop - self._t_first if self._t_first is not None else 0.0
        expected = streamed * RATE_HZ
        if stream.n == 0 and not reader.error:
            problems.append("no samples received: is the DUT powered and this the measurement port?")
        elif (
            self.config.rate_check
            and not reader.error
            and not self.virtual_clock
            and stream.n < expected - max(0.02 * expected, 2000)
        ):
            problems.append(
                f"received {stream.n} samples in {streamed:.3f} s, expected ≈{expected:.0f}: data lost "
                "(a loss of a multiple of 64 samples is invisible to the counter); check the USB cable/hub"
            )
        self._stream = self._reader = None
        return sampled_trace(
            stream.current() * self._volts(),
            float(RATE_HZ),
            stream.markers,
            stream.dropped,
            problems,
            {
                "stale_bytes": self.stale_bytes,
                "meter": "ppk2",
                "host_elapsed_s": elapsed,
                "host_t0": self._t0,
            },
        )

    @property
    def virtual_clock(self) -> bool:
        """The bench twin samples on the emulated DUT's virtual clock: no wall-clock rate cross-check
        applies (the counter check still does)."""
        return "virtual clock" in self.meta.get("EMU", "")

    def marker_choice(self) -> MarkerChoice:
        return self.config.marker_method

    def marker_channel(self) -> int | None:
        return self.config.marker_channel

    def info(self) -> MeterInfo:
        emulator_id = f"metadata EMU: {self.meta['EMU']}" if "EMU" in self.meta else ""
        cls, note = measurement_class(emulator_id, self.config.simulated)
        sim = cls == "simulated"
        return MeterInfo(
            energy_class=cls,
            model="Nordic PPK2" + (" (emulator)" if sim else ""),
            boundary=self.config.boundary or f"DUT supply ({self.config.mode} mode)",
            rate_hz=float(RATE_HZ),
            accuracy="±10 % typical per range (±15 % on range 4), gain errors do not average out",
            marker_method="gpio",
            note=note,
        )

    def close(self) -> None:
        close_streaming(self._reader, self.port, b"\x07", lost=bool(self._lost))
        self._reader = None
        self.port = None
