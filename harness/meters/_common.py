"""Shared plumbing for meter drivers: serial opening, stale-byte draining, a reader thread, traces,
marker windows. (Polled meters share :class:`harness.meters.poller.Poller`.)

Every serial driver opens its port with :func:`open_serial`, which calls ``serial.serial_for_url`` so
``/dev/ttyACM0``, a pty path from an emulator and ``socket://127.0.0.1:PORT`` all work the same.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import numpy as np
import serial

from ..errors import MeterError, MeterUnavailable, ProtocolError, WindowInvalid
from .base import MeterConfig
from .energy import window_energy
from .trace import EnergyClass, Marker, Trace
from .windows import gpio_window

log = logging.getLogger(__name__)


class MeterProtocolError(MeterError, ProtocolError):
    """A meter sent bytes that break its protocol (garbage, bad checksum, wrong baud rate...)."""


class SerialMeterConfig(MeterConfig):
    """Board-profile ``[meter]`` table of a serial meter.

    ``url`` is anything ``serial.serial_for_url`` accepts; empty means "find it by USB VID:PID".
    ``simulated = true`` marks the meter's energy ``simulated`` (e.g. hardware fed by a replay).
    ``simulated = false`` cannot make an emulator's energy ``external``: every emulator says what it
    is in its identification reply and the driver reads it (:func:`measurement_class`).
    """

    url: str = ""
    baud: int = 115200
    timeout_s: float = 1.0
    simulated: bool = False
    boundary: str = ""  # what is measured, as wired on this rig (overrides the driver's default text)


def measurement_class(emulator_id: str, simulated_flag: bool) -> tuple[EnergyClass, str]:
    """The energy class of a meter and the note that says why.

    ``emulator_id`` is what the meter's own identification reply said that marks an emulator ("" for a
    device that identified as hardware); ``simulated_flag`` is the profile's ``simulated``. Emulated
    energy is never ``external``, whatever the flag says.
    """
    if emulator_id:
        return "simulated", f"emulated meter (it identified itself: {emulator_id}); not a measurement"
    if simulated_flag:
        return "simulated", "marked simulated by the meter profile (simulated = true); not a measurement"
    return "external", ""


def find_ports(vid_pids: Iterable[tuple[int, int]]) -> list[str]:
    """Device paths of serial ports whose USB VID:PID is one of ``vid_pids``."""
    try:
        from serial.tools import list_ports
    except ImportError:  # pragma: no cover - pyserial always ships it
        return []
    wanted = set(vid_pids)
    return sorted(p.device for p in list_ports.comports() if (p.vid, p.pid) in wanted)


def vid_pid_text(vid_pids: Iterable[tuple[int, int]]) -> str:
    """``0483:5740, ...`` for messages."""
    return ", ".join(f"{v:04x}:{p:04x}" for v, p in vid_pids)


def serial_availability(name: str, vid_pids: Sequence[tuple[int, int]], emulator: str) -> str | None:
    """``None`` if a port with the meter's VID:PID is attached, else why not and how to fix it."""
    ports = find_ports(vid_pids)
    if ports:
        return None
    return (
        f"no {name} found: no serial port with USB VID:PID {vid_pid_text(vid_pids)}; plug it in, or give "
        f"its URL in the board profile ([meter] url = '/dev/ttyACM0' or 'socket://host:port'); to rehearse "
        f"without hardware run `frugalbench emulate meter {emulator} --url socket://127.0.0.1:7000`"
    )


def resolve_url(config: SerialMeterConfig, name: str, vid_pids: Sequence[tuple[int, int]]) -> str:
    """The configured URL, or the single port found by VID:PID."""
    if config.url:
        return config.url
    ports = find_ports(vid_pids)
    if len(ports) == 1:
        return ports[0]
    if not ports:
        raise MeterUnavailable(serial_availability(name, vid_pids, name.lower()) or name)
    raise MeterUnavailable(
        f"several {name} ports found ({', '.join(ports)}); set [meter] url to the one you mean"
    )


def open_serial(url: str, baud: int, timeout_s: float, name: str) -> serial.SerialBase:
    """Open ``url`` with ``serial.serial_for_url``; failures become :class:`MeterUnavailable`."""
    try:
        port = serial.serial_for_url(url, baudrate=baud, timeout=timeout_s, write_timeout=timeout_s)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise MeterUnavailable(
            f"cannot open {name} at {url!r}: {exc}; check the cable and the URL, that no other program "
            f"holds the port, and that you may open it (dialout group)"
        ) from exc
    sock = getattr(port, "_socket", None)
    if sock is not None:  # socket://: send single-byte commands now, not after Nagle's ~40 ms
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return port


def close_streaming(
    reader: Reader | None, port: serial.SerialBase | None, stop_cmd: bytes, *, lost: bool
) -> None:
    """Stop a streaming meter: halt its reader, send the stop command unless the link is lost, close."""
    if reader is not None:
        reader.halt()
    if port is not None:
        if not lost:
            with contextlib.suppress(Exception):  # closing a dead link is fine
                port.write(stop_cmd)
        port.close()


def drain_stale(port: serial.SerialBase, quiet_s: float = 0.05, max_s: float = 1.0) -> int:
    """Discard bytes left over from an earlier session; returns how many were dropped.

    Reads until the line has been quiet for ``quiet_s`` (or ``max_s`` elapsed).
    """
    old = port.timeout
    port.timeout = quiet_s
    total = 0
    deadline = time.monotonic() + max_s
    try:
        while time.monotonic() < deadline:
            chunk = read_some(port, quiet_s)
            if not chunk:
                break
            total += len(chunk)
    finally:
        port.timeout = old
    if total:
        log.warning("discarded %d stale bytes from an earlier session", total)
    return total


def read_some(port: serial.SerialBase, wait_s: float = 0.01) -> bytes:
    """Whatever arrives within ``wait_s`` (at most 64 KiB); works for serial ports and ``socket://``.

    (pyserial's ``in_waiting`` on a socket URL says 0/1, not the byte count, so it is not used.)
    """
    try:
        if port.timeout != wait_s:
            port.timeout = wait_s
        return port.read(1 << 16)
    except (serial.SerialException, OSError) as exc:
        raise MeterError(f"meter connection lost: {exc}; close() and open() the meter again") from exc


def write_all(port: serial.SerialBase, data: bytes) -> None:
    """Write ``data``; a dead link becomes :class:`MeterError` (the runner re-runs the window)."""
    try:
        port.write(data)
    except (serial.SerialException, OSError) as exc:
        raise MeterError(f"meter connection lost: {exc}; close() and open() the meter again") from exc


class Reader(threading.Thread):
    """Reads a port in the background and hands every chunk to ``sink`` (which parses the stream).

    A read error (unplugged cable, closed socket) ends the thread and is kept in ``error``.
    """

    def __init__(self, port: serial.SerialBase, sink: Callable[[bytes, float], None]) -> None:
        super().__init__(daemon=True, name="meter-reader")
        self.port = port
        self.sink = sink
        self.error: str = ""
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                data = read_some(self.port)
            except MeterError as exc:
                if not self._halt.is_set():
                    self.error = str(exc).partition("; close()")[0]
                return
            except (TypeError, AttributeError) as exc:  # the port was closed under the reader
                if not self._halt.is_set():
                    self.error = f"meter connection lost: {exc}"
                return
            if data:
                try:
                    self.sink(data, time.perf_counter())
                except MeterError as exc:
                    self.error = str(exc)
                    return

    def halt(self, timeout: float = 2.0) -> None:
        """Stop reading and wait for the thread."""
        self._halt.set()
        self.join(timeout)


def sampled_trace(
    power_w: np.ndarray,
    rate_hz: float,
    markers: list[Marker],
    dropped: int,
    problems: list[str],
    extra: dict | None = None,
) -> Trace:
    """A meter-clock trace of uniformly sampled power: sample ``i`` averages ``[i/r, (i+1)/r)``.

    ``t_s`` holds sample centres. ``extra['edges_energy_j']`` holds the cumulative energy at the sample
    edges ``i/r`` so marker windows integrate exactly (see :mod:`harness.meters.energy`).
    """
    p = np.asarray(power_w, dtype=np.float64)
    t = (np.arange(len(p)) + 0.5) / rate_hz
    ex = dict(extra or {})
    ex["edges_energy_j"] = np.concatenate(([0.0], np.cumsum(p) / rate_hz))
    if dropped:
        problems = [*problems, f"{dropped} samples dropped by the meter link"]
    return Trace(
        t_s=t,
        power_w=p,
        rate_hz=rate_hz,
        markers=markers,
        dropped=dropped,
        host_aligned=False,
        valid=not problems,
        problem="; ".join(problems),
        extra=ex,
    )


def polled_trace(
    t_host: list[float],
    power_w: list[float],
    dropped: int,
    problems: list[str],
    extra: dict | None = None,
    rate_hz: float | None = None,
) -> Trace:
    """A host-clock trace of polled power readings (``time.perf_counter()`` seconds)."""
    t = np.asarray(t_host, dtype=np.float64)
    p = np.asarray(power_w, dtype=np.float64)
    if len(t) < 2:
        problems = [*problems, f"only {len(t)} readings recorded; record for longer"]
    if dropped:
        problems = [*problems, f"{dropped} readings lost or rejected"]
    if rate_hz is None and len(t) >= 2:
        rate_hz = float((len(t) - 1) / (t[-1] - t[0])) if t[-1] > t[0] else None
    return Trace(
        t_s=t,
        power_w=p,
        rate_hz=rate_hz,
        dropped=dropped,
        host_aligned=True,
        valid=not problems,
        problem="; ".join(problems),
        extra=dict(extra or {}),
    )


def logic_markers(logic: np.ndarray, rate_hz: float, start_index: int, prev: int | None) -> list[Marker]:
    """Markers for every change of each bit of an 8-bit logic stream (time = edge ``i/r``)."""
    out: list[Marker] = []
    if len(logic) == 0:
        return out
    lv = logic.astype(np.int16)
    before = np.concatenate(([lv[0] if prev is None else prev], lv[:-1]))
    changed = np.nonzero(lv != before)[0]
    for i in changed:
        diff = int(lv[i]) ^ int(before[i])
        for bit in range(8):
            if diff >> bit & 1:
                out.append(
                    Marker(t_s=(start_index + int(i)) / rate_hz, channel=bit, level=int(lv[i]) >> bit & 1)
                )
    return out


MarkerChoice = Literal["auto", "gpio", "host-clock"]


class MarkerWindows:
    """Mixin for meters with in-stream markers: ``window_energy`` integrates between the DUT's markers
    (``gpio``) or, without markers, maps the host instants onto the meter clock through
    ``trace.extra['host_t0']`` (the host ``perf_counter`` of sample 0; ``host-clock``).

    The class using it provides ``marker_choice()`` and ``marker_channel()``.
    """

    def marker_choice(self) -> MarkerChoice:
        return "auto"

    def marker_channel(self) -> int | None:
        return None

    def window_energy(self, trace: Trace, t_start: float, t_end: float, n: int) -> tuple[float, str]:
        choice = self.marker_choice()
        ch = self.marker_channel()
        has = any(ch is None or m.channel == ch for m in trace.markers)
        if choice == "gpio" or (choice == "auto" and has):
            w = gpio_window(trace, n, channel=ch)
            if not w.valid:
                raise WindowInvalid(f"energy window invalid: {w.problem}")
            return w.e_win_j, "gpio"
        if trace.host_aligned:
            return window_energy(trace, t_start, t_end), "host-clock"
        t0 = trace.extra.get("host_t0")
        if t0 is None:
            raise WindowInvalid("trace has no markers and no host-clock origin; wire the DUT's marker pin")
        return window_energy(trace, t_start - t0, t_end - t0), "host-clock"
