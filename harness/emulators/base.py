"""Byte-level meter emulators served on a pty or a ``socket://`` TCP port, with a virtual clock.

An emulator answers host bytes (``on_bytes``) and, while streaming, emits the samples that are due
(``poll``): virtual time = wall time since the stream started × ``speed``. Sample values come from a
:class:`~harness.emulators.profile.Profile`, so the energy of any window is known exactly.

Faults (:class:`Faults`) are injected on demand: samples dropped, one byte corrupted, a disconnect
mid-stream, stale bytes (sent after the host's first write, before any reply: what pyserial's flush
at open cannot remove), a wrong baud rate (on a pty the emulator reads
the baud the host set and garbles its output on a mismatch, as a UART would; on a socket the fault
flag forces it).

Every emulator identifies itself as one in the meter's own identification reply (a field value real
hardware never sends), so a driver classes its energy ``simulated`` without any configuration.
``impersonate=True`` (for tests only) makes that reply byte-for-byte what real hardware sends.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import socket
import struct
import threading
import time
import tty
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from ..registry import Registry
from .profile import Profile

log = logging.getLogger(__name__)

EMULATORS: Registry[type[MeterEmulator]] = Registry("meter emulator")

_TCGETS2 = 0x802C542A


@dataclass
class Faults:
    """Faults to inject. Times are virtual seconds since the stream started."""

    drop_at_s: float | None = None
    drop_n: int = 0
    corrupt_at_s: float | None = None
    disconnect_at_s: float | None = None
    stale: bytes = b""
    wrong_baud: bool = False
    stall_s: float = 0.0  # polled meters: stop answering for this long at drop_at_s


@dataclass
class _State:
    streaming: bool = False
    t0_wall: float = 0.0
    next_index: int = 0
    dropped_by_overflow: int = 0
    corrupted: bool = False


class MeterEmulator(ABC):
    """One emulated meter. Subclasses implement ``on_bytes`` and ``poll``."""

    name: ClassVar[str]
    baud: ClassVar[int] = 115200
    #: False for USB CDC devices (PPK2, LPM01A): they ignore the baud the host sets; ``wrong_baud``
    #: still forces garbling (the device behind a real UART bridge).
    baud_matters: ClassVar[bool] = True

    def __init__(
        self,
        profile: Profile | None = None,
        faults: Faults | None = None,
        speed: float = 1.0,
        *,
        impersonate: bool = False,
    ):
        self.profile = profile or Profile()
        #: test-only: identify as real hardware (no emulator mark in the identification reply)
        self.impersonate = impersonate
        self.faults = faults or Faults()
        self.speed = speed
        self.state = _State()
        self._out = bytearray()
        self._lock = threading.Lock()
        self.commands: list[bytes] = []  # every host command seen, for tests and debugging
        self.disconnect_now = False
        self.host_baud: int | None = None
        self.reset()

    # -- called by the server ------------------------------------------------------------------
    def reset(self) -> None:
        """A new host connected: fresh session state (stale bytes are sent by the server)."""
        self.state = _State()
        self.disconnect_now = False

    @abstractmethod
    def on_bytes(self, data: bytes) -> None:
        """Handle bytes written by the host."""

    def poll(self) -> None:  # noqa: B027 - optional hook
        """Emit whatever stream data is due now (streaming meters override this)."""

    # -- helpers for subclasses ----------------------------------------------------------------
    def send(self, data: bytes) -> None:
        """Queue bytes for the host."""
        with self._lock:
            self._out += data

    def take_output(self) -> bytes:
        """Bytes to write now (after the wrong-baud fault)."""
        with self._lock:
            data = bytes(self._out)
            self._out.clear()
        if data and self.baud_mismatch():
            data = garble(data)
        return data

    def baud_mismatch(self) -> bool:
        """True when the host's baud differs from the meter's (or the fault forces it)."""
        if self.faults.wrong_baud:
            return True
        return self.baud_matters and self.host_baud is not None and self.host_baud != self.baud

    def start_stream(self) -> None:
        """Start the virtual clock."""
        self.state.streaming = True
        self.state.t0_wall = time.monotonic()
        self.state.next_index = 0

    def vnow(self) -> float:
        """Virtual seconds since the stream started."""
        if not self.state.streaming:
            return 0.0
        return (time.monotonic() - self.state.t0_wall) * self.speed

    def due(self, rate_hz: float, max_n: int) -> tuple[int, int]:
        """Sample index range ``[i0, i1)`` due now, at most ``max_n`` samples."""
        i0 = self.state.next_index
        i1 = min(int(self.vnow() * rate_hz), i0 + max_n)
        i1 = max(i1, i0)
        self.state.next_index = i1
        return i0, i1

    def check_disconnect(self, t_virtual: float) -> bool:
        """True (and flags the server) once the disconnect fault time has passed."""
        t = self.faults.disconnect_at_s
        if t is not None and t_virtual >= t:
            self.disconnect_now = True
            self.faults.disconnect_at_s = None
            return True
        return False


def garble(data: bytes) -> bytes:
    """What a UART at the wrong baud delivers: bits regrouped, framing lost (deterministic)."""
    out = bytearray()
    for i, b in enumerate(data):
        v = ((b << 3) | (b >> 5)) & 0xFF
        out.append(v ^ 0x5A ^ (i & 0x0F))
        if i % 3 == 2:
            out.append(0xFF)
    return bytes(out)


def _pty_baud(fd: int) -> int | None:
    buf = bytearray(44)
    try:
        fcntl.ioctl(fd, _TCGETS2, buf, True)
    except OSError:
        return None
    return struct.unpack_from("I", buf, 40)[0]


def listen_socket(url: str, *, backlog: int = 1, timeout_s: float | None = None) -> tuple[socket.socket, str]:
    """A TCP listener for ``socket://HOST:PORT`` (HOST defaults to 127.0.0.1, PORT 0 = any free port)
    and the ``socket://`` URL clients reach it at, as ``serial_for_url`` opens it."""
    host, _, port = url.removeprefix("socket://").partition(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host or "127.0.0.1", int(port or 0)))
    sock.listen(backlog)
    sock.settimeout(timeout_s)
    return sock, f"socket://{host or '127.0.0.1'}:{sock.getsockname()[1]}"


class EmulatorServer:
    """Serves one emulator on ``socket://127.0.0.1:PORT`` (``url='socket://127.0.0.1:0'`` picks a
    free port) or on a fresh pty (``url='pty'``). ``self.url`` is what the driver opens."""

    def __init__(self, emulator: MeterEmulator, url: str = "socket://127.0.0.1:0") -> None:
        self.emulator = emulator
        self._want = url
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self.url = ""
        self.connections = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> EmulatorServer:
        if self._want == "pty":
            self._master, self._slave = os.openpty()
            tty.setraw(self._slave)  # no echo of stale bytes written before the host opens the port
            os.set_blocking(self._master, False)
            self.url = os.ttyname(self._slave)
            target = self._serve_pty
        elif self._want.startswith("socket://"):
            self._listener, self.url = listen_socket(self._want, timeout_s=0.05)
            target = self._serve_socket
        else:
            raise ValueError(f"emulator URL must be 'pty' or 'socket://HOST:PORT', not {self._want!r}")
        self._thread = threading.Thread(target=target, daemon=True, name=f"emu-{self.emulator.name}")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(3)
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Block until interrupted (for ``frugalbench emulate meter``)."""
        try:
            while not self._halt.is_set():
                time.sleep(0.2)
        finally:
            self.stop()

    # -- loops -------------------------------------------------------------------------------
    def _serve_socket(self) -> None:
        assert self._listener is not None
        while not self._halt.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.emulator.reset()
            try:
                self._pump(conn.fileno(), conn.sendall, conn.recv)
            finally:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()

    def _serve_pty(self) -> None:
        assert self._master is not None
        m = self._master
        self.emulator.reset()

        pending = bytearray()

        def write(data: bytes) -> None:
            # A pty buffers a few KiB and the host may lag: keep what did not fit and send it first
            # next time (never cut a frame). Past 1 MiB of backlog the meter's buffer overflows: the
            # backlog is dropped whole and counted (a real meter loses samples, it does not stall).
            pending.extend(data)
            if len(pending) > 1 << 20:
                self.emulator.state.dropped_by_overflow += len(pending)
                pending.clear()
                return
            try:
                n = os.write(m, pending)
            except BlockingIOError:
                return
            del pending[:n]

        def read(n: int) -> bytes:
            try:
                return os.read(m, n)
            except (BlockingIOError, OSError):
                return b""

        self.connections = 1
        self._pump(m, write, read, pty_fd=m)
        # a disconnect closes the master: the host's next read fails as on a USB unplug
        if not self._halt.is_set() and self.emulator.disconnect_now:
            with contextlib.suppress(OSError):
                os.close(m)
            self._master = None

    def _pump(
        self,
        fd: int,
        write: Callable[[bytes], object],
        read: Callable[[int], bytes],
        pty_fd: int | None = None,
    ) -> None:
        emu = self.emulator
        # Stale bytes come from a device still sending from an earlier session: pyserial flushes what
        # is buffered at open(), so they are sent after the host's first write, before any reply.
        stale = emu.faults.stale
        while not self._halt.is_set():
            r, _, _ = select.select([fd], [], [], 0.002)
            if r:
                data = read(65536)
                if not data and pty_fd is None:
                    return  # host closed the socket
                if data:
                    if pty_fd is not None:
                        emu.host_baud = _pty_baud(pty_fd)
                    if stale:
                        write(stale)
                        stale = b""
                    emu.on_bytes(data)
            emu.poll()
            out = emu.take_output()
            if out or pty_fd is not None:
                try:
                    write(out)
                except OSError:
                    return
            if emu.disconnect_now:
                log.info("emulator %s: injected disconnect", emu.name)
                return
