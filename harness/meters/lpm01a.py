"""ST X-NUCLEO-LPM01A (PowerShield) driver: ASCII commands, ``ascii_dec`` stream, D7 ``event`` markers.

Protocol (UM2269; public drivers): ``cmd\\r\\n`` answered by ``PowerShield > ack cmd`` or
``PowerShield > error …`` + ``Error detail: …``. After ``start`` the board streams one ``MMMM±EE``
sample per line (mantissa × 10^EE: joules per sample period with ``output energy``, amperes with
``output current``), a ``TimeStamp: SSSs MMMms, buff NN%`` line per second and ``event NN ris`` at
each D7 edge. ``stop`` ends with ``Acquisition completed``.

Loss detection: the sample count between two time stamps must equal ``freq × Δt``; ``buff`` at 100 %
means the board's buffer overflowed; event numbers must be consecutive; a line that parses as nothing
is a corrupted sample (kept as NaN so indices stay aligned). Any of these makes the trace invalid.

Corruption: ``ascii_dec`` lines carry no checksum, so a sample is checked against what the firmware can
print: exactly ``MMMM±EE`` then the line end (nothing else, not even a space: :data:`SAMPLE_LINE`), and a
nonzero value inside the board's current range (:data:`AMPS_RANGE`). A flipped bit that turns one digit
into another digit passes both; on the real board the USB CDC link (CRC16 per packet, resent on error)
keeps such flips from reaching the host, and ``benches/perf/meter_faults.py`` bounds what one can do.
"""

from __future__ import annotations

import math
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
    measurement_class,
    open_serial,
    read_some,
    resolve_url,
    sampled_trace,
    serial_availability,
    write_all,
)
from .base import METERS, Marker, Meter, MeterInfo, Trace

VID_PIDS = [(0x0483, 0x5740)]
FREQS = {100_000: "100k", 50_000: "50k", 20_000: "20k", 10_000: "10k", 5000: "5k", 2000: "2k", 1000: "1k",
         500: "500", 200: "200", 100: "100", 50: "50", 20: "20", 10: "10", 5: "5", 2: "2", 1: "1"}  # fmt: skip

#: what the board can read, with margin (UM2243: 1 nA..200 mA static, 100 nA..50 mA dynamic): a
#: nonzero sample outside it cannot come from the board. ``ascii_dec`` lines carry no checksum, so
#: this catches flipped exponent digits; a digit flipped into another plausible digit stays unseen.
AMPS_RANGE = (1e-10, 0.25)

_SAMPLE = re.compile(r"^(\d{4})([+-]\d{2})$")
#: a sample line exactly as the firmware sends it (before the ``\n``): ASCII digits, sign, optional CR
SAMPLE_LINE = re.compile(r"[0-9]{4}[+-][0-9]{2}\r?")
_STAMP = re.compile(r"^TimeStamp:[ ><](\d{3})s (\d{3})ms, buff (\d{2,3})%$")
_EVENT = re.compile(r"^event (\d+) (ris|fal)$")

Item = tuple


def parse_line(line: str) -> Item:
    """Classify one stream line (pure; never raises).

    Returns ``("sample", value)``, ``("stamp", ms, buff_pct)``, ``("event", n, edge)``,
    ``("ack", text)``, ``("error", text)``, ``("detail", text)``, ``("done",)``, ``("info", text)``,
    ``("empty",)`` or ``("junk", line)``.
    """
    s = line.strip()
    if not s:
        return ("empty",)
    if m := _SAMPLE.match(s):
        return ("sample", int(m.group(1)) * 10.0 ** int(m.group(2)))
    if m := _STAMP.match(s):
        return ("stamp", int(m.group(1)) * 1000 + int(m.group(2)), int(m.group(3)))
    if m := _EVENT.match(s):
        return ("event", int(m.group(1)), m.group(2))
    if s.startswith("Error detail:"):
        return ("detail", s[len("Error detail:") :].strip())
    low = s.lower()
    if low.startswith("powershield >"):
        body = s[len("PowerShield >") :].strip()
        if body.startswith("ack"):
            return ("ack", body[3:].strip())
        if body.lower().startswith("error"):
            return ("error", body)
        if "acquisition completed" in body.lower():
            return ("done",)
        return ("info", body)
    if low.startswith("error"):
        return ("error", s)
    return ("junk", s)


@dataclass
class LpmStream:
    """Incremental, IO-free parser of the acquisition stream (feed bytes, read results)."""

    rate_hz: int
    to_watts: float  # energy mode: rate (J/sample → W); current mode: supply volts (A → W)
    #: the board's measurement range in stream units: a nonzero value outside it is a corrupted line
    lo: float = 0.0
    hi: float = math.inf
    values: list[float] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    dropped: int = 0
    done: bool = False
    junk_bytes: int = 0
    _buf: bytearray = field(default_factory=bytearray)
    _last_stamp: tuple[int, int] | None = None
    _last_event: int | None = None

    def feed(self, data: bytes) -> None:
        self._buf += data
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > 4096:  # no line end in 4 KiB: garbage
                    self.junk_bytes += len(self._buf)
                    self._buf.clear()
                return
            raw = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            self.line(raw.decode("ascii", "replace"))

    def line(self, text: str) -> None:
        item = parse_line(text)
        kind = item[0]
        if kind == "sample" and not SAMPLE_LINE.fullmatch(text):
            self.values.append(math.nan)  # e.g. a CR flipped into a form feed: the line is not the board's
            self.problems.append(f"malformed sample line {text!r} at {len(self.values) - 1} (kept as NaN)")
        elif kind == "sample" and item[1] and not self.lo <= item[1] <= self.hi:
            self.values.append(math.nan)  # e.g. a flipped exponent digit: 2000-08 read as 2000-88
            self.problems.append(
                f"sample {text.strip()!r} at {len(self.values) - 1} outside the board's range (kept as NaN)"
            )
        elif kind == "sample":
            self.values.append(item[1] * self.to_watts)
        elif kind == "stamp":
            self._stamp(item[1], item[2])
        elif kind == "event":
            n = item[1]
            if self._last_event is not None and n != (self._last_event + 1) % 100:
                self.problems.append(f"event counter jumped from {self._last_event} to {n} (lost marker)")
            self._last_event = n
            self.markers.append(Marker(t_s=len(self.values) / self.rate_hz, channel=7, level=0))
        elif kind == "done" or (kind == "ack" and item[1] == "stop"):
            self.done = True
        elif kind in ("error", "detail"):
            self.problems.append(f"meter reported: {item[1]}")
        elif kind == "junk":
            self.junk_bytes += len(text)
            if not self.done:
                self.values.append(math.nan)
                self.problems.append(
                    f"corrupted line {text[:20]!r} at sample {len(self.values) - 1} (kept as NaN)"
                )

    def _stamp(self, ms: int, buff: int) -> None:
        n = len(self.values)
        prev_ms, prev_n = self._last_stamp or (0, 0)
        expected = round((ms - prev_ms) * self.rate_hz / 1000)
        got = n - prev_n
        if got < expected:
            self.dropped += expected - got
        if buff >= 100:
            self.problems.append(f"meter buffer overflow at {ms / 1000:.3f} s (buff {buff}%)")
        self._last_stamp = (ms, n)


class Lpm01aConfig(SerialMeterConfig):
    """``[meter] kind = "lpm01a"``."""

    baud: int = 3_686_400
    freq_hz: int = 1000
    output: Literal["energy", "current"] = "energy"
    volt_mv: int = 3300
    eventsrc: str = "d7 fal"
    stop_timeout_s: float = 3.0
    marker_method: MarkerChoice = "auto"


@METERS.register("lpm01a")
class Lpm01a(MarkerWindows, Meter):
    """X-NUCLEO-LPM01A on its USB virtual COM port (or an emulator URL)."""

    name = "lpm01a"
    Config = Lpm01aConfig
    config: Lpm01aConfig

    def __init__(self, config: Lpm01aConfig) -> None:
        super().__init__(config)
        if config.freq_hz not in FREQS:
            raise ConfigError(f"LPM01A freq_hz {config.freq_hz} is not one of {sorted(FREQS)}")
        if config.output == "energy" and config.freq_hz > 10_000:
            raise ConfigError("LPM01A output energy supports at most 10 kHz; lower freq_hz")
        if not 1800 <= config.volt_mv <= 3300:
            raise ConfigError(f"LPM01A volt_mv {config.volt_mv} outside 1800..3300")
        self.port: serial.SerialBase | None = None
        self._reader: Reader | None = None
        self._stream: LpmStream | None = None
        self._lines: list[str] = []
        self._rx = bytearray()
        self.stale_bytes = 0
        self.identity = ""
        self._lost = ""
        self._host_t0 = 0.0

    @classmethod
    def availability(cls) -> str | None:
        return serial_availability("LPM01A", VID_PIDS, "lpm01a")

    # -- command link --------------------------------------------------------------------------
    def _readline(self, deadline: float) -> str | None:
        assert self.port is not None
        while True:
            nl = self._rx.find(b"\n")
            if nl >= 0:
                raw = bytes(self._rx[:nl])
                del self._rx[: nl + 1]
                return raw.decode("ascii", "replace")
            if time.monotonic() > deadline:
                return None
            chunk = read_some(self.port)
            self._rx += chunk
            if len(self._rx) > 8192 and b"\n" not in self._rx:
                return None

    def command(self, cmd: str, extra_lines: int = 0) -> list[str]:
        """Send one command and wait for its ``ack``; returns what the board answered.

        A board answers a query on the ack line itself (``ack volt get 3292-03``): that payload is
        returned. Tolerated too: info lines before the ack, and, when the ack line carries no payload,
        up to ``extra_lines`` info lines after it (firmware or emulators that answer on their own line).
        Stray stream lines and a late ``Acquisition completed`` are skipped. Raises on an ``error``
        reply or a timeout."""
        if self.port is None:
            raise StateError("LPM01A is not open; call open() first")
        write_all(self.port, f"{cmd}\r\n".encode())
        deadline = time.monotonic() + self.config.timeout_s
        seen: list[str] = []
        while True:
            line = self._readline(deadline)
            if line is None:
                raw = bytes(self._rx[:40])
                hint = (
                    f" (received {len(self._rx)} bytes that are not PowerShield lines, e.g. {raw!r}: wrong "
                    f"baud rate? the board runs at {self.config.baud})"
                    if self._rx or seen
                    else ""
                )
                raise MeterProtocolError(
                    f"LPM01A at {self.config.url}: no ack for {cmd!r} within {self.config.timeout_s} s{hint}; "
                    "check the port is the PowerShield's and its firmware is >= 1.0.6"
                )
            item = parse_line(line)
            if item[0] == "ack" and item[1].startswith(cmd.split(" ")[0]):
                if item[1] != cmd and not item[1].startswith(cmd + " "):
                    # the board acked something else: a corrupted command or ack, never a setting to trust
                    raise MeterProtocolError(
                        f"LPM01A at {self.config.url}: sent {cmd!r} but the board acked {item[1]!r} "
                        "(corrupted on the link); close() and open() the meter again"
                    )
                payload = item[1][len(cmd) :].strip()
                if payload:
                    return [*seen, payload]
                end = time.monotonic() + 0.3
                while extra_lines > 0 and (more := self._readline(end)) is not None:
                    after = parse_line(more)
                    if after[0] in ("info", "junk"):  # the answer, with or without the prompt
                        seen.append(after[1].strip())
                        extra_lines -= 1
                return seen
            if item[0] == "error":
                detail = self._readline(time.monotonic() + 0.5) or ""
                raise MeterError(
                    f"LPM01A refused {cmd!r}: {item[1]} {detail.strip()}; check the value against UM2269"
                )
            if item[0] == "info":
                seen.append(item[1])
            elif item[0] in ("junk", "sample", "stamp", "event"):
                self.stale_bytes += len(line) + 1  # left over from an earlier session

    def status(self) -> str:
        """The board's ``status`` answer: ``ok`` or ``error: …`` (UM2269)."""
        return " ".join(self.command("status", extra_lines=1))

    # -- Meter -----------------------------------------------------------------------------------
    def open(self) -> None:
        url = resolve_url(self.config, "LPM01A", VID_PIDS)
        self.config = self.config.model_copy(update={"url": url})
        self.port = open_serial(url, self.config.baud, 0.05, "LPM01A")
        self._lost = ""  # a fresh connection: a link lost before is no longer in the way
        self.stale_bytes = drain_stale(self.port)
        self._rx.clear()
        self.command("htc")
        self.identity = " ".join(self.command("powershield", extra_lines=1))
        for cmd in (
            "pwr off", "acqtime inf", "trigdelay 0", "trigsrc sw", f"eventsrc {self.config.eventsrc}",
            f"output {self.config.output}", "format ascii_dec", f"freq {FREQS[self.config.freq_hz]}",
            f"volt {self.config.volt_mv}m", "pwr on nostatus",
        ):  # fmt: skip
            if cmd.startswith("eventsrc") and not self.config.eventsrc:
                continue
            self.command(cmd)

    def start(self) -> None:
        if self.port is None:
            raise StateError("LPM01A is not open; call open() first")
        if self._lost:
            raise MeterError(f"LPM01A link was lost ({self._lost}); close() and open() it again")
        volts = self.config.volt_mv / 1000
        energy = self.config.output == "energy"
        to_w = float(self.config.freq_hz) if energy else volts
        per_amp = volts / self.config.freq_hz if energy else 1.0  # stream units per ampere
        self._stream = LpmStream(self.config.freq_hz, to_w, AMPS_RANGE[0] * per_amp, AMPS_RANGE[1] * per_amp)
        self.command("start")
        self._host_t0 = time.perf_counter()
        leftover = bytes(self._rx)
        self._rx.clear()
        if leftover:
            self._stream.feed(leftover)
        self._reader = Reader(self.port, lambda d, _t: self._stream.feed(d))  # type: ignore[union-attr]
        self._reader.start()

    def stop(self) -> Trace:
        if self._stream is None or self._reader is None or self.port is None:
            raise StateError("LPM01A.stop() without start()")
        stream, reader = self._stream, self._reader
        problems: list[str] = []
        if not reader.error:
            try:
                self.port.write(b"stop\r\n")
            except Exception as exc:  # noqa: BLE001 - any write failure means the link is gone
                reader.error = reader.error or f"meter connection lost: {exc}"
            deadline = time.monotonic() + self.config.stop_timeout_s
            while not stream.done and not reader.error and time.monotonic() < deadline:
                time.sleep(0.01)
        reader.halt()
        if reader.error:
            self._lost = reader.error
            problems.append(f"{reader.error} after {len(stream.values) / stream.rate_hz:.3f} s")
        elif not stream.done:
            problems.append("no 'Acquisition completed' after stop: the stream end is unknown")
        problems += stream.problems
        self._stream = self._reader = None
        return sampled_trace(
            np.asarray(stream.values),
            float(stream.rate_hz),
            stream.markers,
            stream.dropped,
            problems,
            {
                "stale_bytes": self.stale_bytes,
                "meter": "lpm01a",
                "identity": self.identity,
                "host_t0": self._host_t0,
            },
        )

    def marker_choice(self) -> MarkerChoice:
        return self.config.marker_method

    def marker_channel(self) -> int | None:
        return 7

    def info(self) -> MeterInfo:
        emulator_id = f"board ID {self.identity!r}" if "emulator" in self.identity.lower() else ""
        cls, note = measurement_class(emulator_id, self.config.simulated)
        sim = cls == "simulated"
        return MeterInfo(
            energy_class=cls,
            model="ST X-NUCLEO-LPM01A" + (" (emulator)" if sim else ""),
            boundary=self.config.boundary or "DUT VDD (LPM01A VOUT)",
            rate_hz=float(self.config.freq_hz),
            accuracy="±2 % static mode (UM2243 §9); 4-digit mantissa per sample",
            marker_method="gpio",
            note=note,
        )

    def close(self) -> None:
        close_streaming(self._reader, self.port, b"hrc\r\n", lost=bool(self._lost))
        self._reader = None
        self.port = None
