"""The bench twin: the emulated MCU drives an emulated power meter through its marker pin, in virtual time.

QEMU connects the firmware's second UART (its activity channel, see
``boards/firmware/boards/qemu-mps2-an386/board.c``) to :class:`BenchTwin`'s ``socket://`` port. The
firmware reports there, stamped in SysTick ticks of QEMU's virtual clock, its marker-pin edges and the
intervals it sleeps in WFI waiting for a command. The twin turns them into the board's supply current on
the named MCU's clock (:class:`PowerModel`, from the board profile's ``[energy]`` table):

* active: ``power_w / voltage_v`` (the run current at ``clock_hz``), for ``instructions × CPI / clock_hz``
  seconds (under ``-icount shift=S`` one instruction is ``2^S`` ns of virtual time) — the same clock the
  ``mcu`` target reports an emulated board's latency on;
* asleep: ``sleep_current_a``, for the virtual time the core slept (QEMU advances it with host time).

The LPM01A and PPK2 emulators (:class:`TwinLpm01a`, :class:`TwinPpk2`) sample that current at their own
rate on this clock, never ahead of what the DUT has reported, and put the marker edges where the real
meter does (LPM01A ``event`` lines, PPK2 logic bit D0). Power = current × the voltage the meter supplies.
Every acquisition's exact energy between its marker pulse's edges is kept (:attr:`BenchTwin.windows`).

Faults (:class:`TwinFaults`, each for one acquisition: the ``window``-th ``start``), so a runner that
re-runs an invalid window can succeed: dropped samples, a lost meter (disconnect), a missing marker (no edges).
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..mcu.board import BoardProfile, load_board
from .base import Faults, MeterEmulator, listen_socket
from .lpm01a import Lpm01aEmulator
from .ppk2 import EMULATOR_KEY, Ppk2Emulator, metadata_text
from .ppk2 import RATE_HZ as PPK2_RATE_HZ

SYNC = 0xA5
RECORD_BYTES = 10  # 0xA5, type, uint64 ticks little-endian
#: what marks the twin in a meter's identification (a PPK2 metadata ``EMU`` value, an LPM01A board ID)
VIRTUAL_CLOCK = "virtual clock"
#: at a meter's stop, how long to wait for the DUT to report it went back to sleep (wall s)
SLEEP_WAIT_S = 0.2


@dataclass(frozen=True)
class PowerModel:
    """The twin board's supply current: run current at its clock, sleep current, supply voltage."""

    active_a: float
    sleep_a: float
    voltage_v: float
    clock_hz: float
    cycles_per_instruction: float
    icount_shift: int
    source: str

    @classmethod
    def from_board(cls, board: str | BoardProfile) -> PowerModel:
        """From a board profile's ``[energy]`` table (it needs ``sleep_current_a``)."""
        prof = load_board(board) if isinstance(board, str) else board
        em = prof.energy
        if em is None or em.sleep_current_a is None or em.active_current_a is None or em.voltage_v is None:
            raise ConfigError(
                f"board {prof.name} has no power model for the bench twin: its [energy] table needs power_w, "
                "voltage_v, clock_hz and sleep_current_a (with their sources)"
            )
        return cls(
            active_a=em.active_current_a,
            sleep_a=em.sleep_current_a,
            voltage_v=em.voltage_v,
            clock_hz=em.clock_hz,
            cycles_per_instruction=em.cycles_per_instruction,
            icount_shift=prof.icount_shift,
            source=f"run: {em.describe()}; sleep {em.sleep_current_a * 1e3:g} mA: {em.sleep_source}",
        )

    def seconds(self, ticks: int, tick_hz: float, asleep: bool) -> float:
        """Seconds on the named MCU for ``ticks`` of QEMU virtual time."""
        virtual_s = ticks / tick_hz
        if asleep:
            return virtual_s
        instructions = virtual_s * 1e9 / (1 << self.icount_shift)
        return instructions * self.cycles_per_instruction / self.clock_hz


class Timeline:
    """The board's current against time (s since boot, on the named MCU's clock), from activity records.

    Current is piecewise constant: ``charge`` is exact (linear between the breakpoints). Not thread-safe:
    :class:`BenchTwin` serialises access.
    """

    def __init__(self, model: PowerModel) -> None:
        self.model = model
        self.boots = 0
        self.reset()

    def reset(self) -> None:
        self.tick_hz = 0.0
        self.last_tick = 0
        self.t = 0.0  # the horizon: time of the last record
        self.asleep = False
        self.level = 0
        self.current = self.model.active_a
        self._t_bp = [0.0]  # breakpoints (current changes) and the charge (C) there
        self._q_bp = [0.0]
        self.edges: list[tuple[float, int]] = []
        self.wall_last = time.monotonic()

    def record(self, kind: int, value: int) -> None:
        """Apply one record (``kind`` is its type byte)."""
        self.wall_last = time.monotonic()
        if kind == ord("B"):
            self.reset()
            self.boots += 1
            self.tick_hz = float(value)
            return
        if not self.tick_hz:
            return  # before a boot record the tick rate is unknown
        d = max(0, value - self.last_tick)  # ticks are monotonic; a wrap read with IRQs off may not be
        self.last_tick = max(self.last_tick, value)
        self.t += self.model.seconds(d, self.tick_hz, self.asleep)
        if kind in (ord("S"), ord("A")):
            self.asleep = kind == ord("S")
            self._set(self.model.sleep_a if self.asleep else self.model.active_a)
        elif kind in (ord("M"), ord("m")):
            level = 1 if kind == ord("M") else 0
            if level != self.level:
                self.level = level
                self.edges.append((self.t, level))

    def _set(self, amps: float) -> None:
        if amps == self.current:
            return
        q = self._q_bp[-1] + self.current * (self.t - self._t_bp[-1])
        self._t_bp.append(self.t)
        self._q_bp.append(q)
        self.current = amps

    def charge(self, t: np.ndarray) -> np.ndarray:
        """Charge (C) drawn since boot at instants ``t`` (beyond the horizon: the present current)."""
        t = np.asarray(t, dtype=np.float64)
        tb, qb = np.asarray(self._t_bp), np.asarray(self._q_bp)
        inside = np.interp(t, tb, qb)
        return np.where(t > tb[-1], qb[-1] + self.current * (t - tb[-1]), inside)


@dataclass(frozen=True)
class TwinFaults:
    """Faults for the ``window``-th acquisition (1-based ``start`` count) only."""

    window: int = 1
    drop_n: int = 0  # samples dropped, from ``drop_at_s`` into the acquisition
    drop_at_s: float = 0.05
    lose_meter_at_s: float | None = None  # the meter's link drops
    miss_marker: bool = False  # the timestamp wire is loose: no edges reach the meter

    def meter_faults(self) -> Faults:
        return Faults(drop_at_s=self.drop_at_s if self.drop_n else None, drop_n=self.drop_n,
                      disconnect_at_s=self.lose_meter_at_s)  # fmt: skip


@dataclass(frozen=True)
class TwinWindow:
    """One acquisition's marker pulse and its exact energy (the truth a measurement is compared with)."""

    acquisition: int
    t0_s: float
    t1_s: float
    energy_j: float
    voltage_v: float
    faulted: bool


@dataclass
class Acquisition:
    """One meter acquisition's view of the twin: the ``Profile`` interface the meter emulators read,
    with time 0 at the meter's ``start``."""

    twin: BenchTwin
    number: int
    voltage_v: float
    t0: float
    miss_marker: bool = False
    end: float | None = None  # set by finish(): how far the meter samples before it stops

    def known_s(self) -> float:
        """Acquisition time the meter may sample up to (what the DUT has reported)."""
        with self.twin.lock:
            end = self.twin.timeline.t if self.end is None else self.end
        return max(0.0, end - self.t0)

    def finish(self, margin_s: float) -> None:
        """The host sent stop: read what the DUT reported before, and sample a sleeping DUT up to now
        (at least ``margin_s``, so the sample holding the last marker edge is complete)."""
        # The DUT replies on its UART before it goes back to sleep (and reports it): give that record a
        # moment to arrive, so the sample that holds the last marker edge can be completed.
        deadline = time.monotonic() + SLEEP_WAIT_S
        while True:
            self.twin.sync()
            with self.twin.lock:
                tl = self.twin.timeline
                if tl.asleep or time.monotonic() > deadline:
                    extra = max(margin_s, time.monotonic() - tl.wall_last) if tl.asleep else 0.0
                    self.end = tl.t + extra
                    return
            time.sleep(0.001)

    def mean_power(self, i0: int, i1: int, rate_hz: float) -> np.ndarray:
        edges = self.t0 + np.arange(i0, i1 + 1) / rate_hz
        with self.twin.lock:
            q = self.twin.timeline.charge(edges)
        return np.diff(q) * rate_hz * self.voltage_v

    def _edges(self) -> list[tuple[float, int]]:
        if self.miss_marker:
            return []
        with self.twin.lock:
            return [(t - self.t0, lv) for t, lv in self.twin.timeline.edges if t >= self.t0]

    def edges(self) -> list[float]:
        return [t for t, _ in self._edges()]

    def marker(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        with self.twin.lock:
            before = [lv for te, lv in self.twin.timeline.edges if te < self.t0]
        out = np.full(t.shape, before[-1] if before and not self.miss_marker else 0, dtype=np.uint8)
        for te, lv in self._edges():
            out[t >= te] = lv
        return out

    def exact(self) -> TwinWindow | None:
        """The last complete marker pulse in this acquisition and its exact energy (None without one)."""
        with self.twin.lock:
            tl = self.twin.timeline
            edges = [(t, lv) for t, lv in tl.edges if t >= self.t0]
            rise = fall = None
            for t, lv in edges:
                if lv == 1:
                    rise, fall = t, None
                elif rise is not None and fall is None:
                    fall = t
            if rise is None or fall is None:
                return None
            q = tl.charge(np.array([rise, fall]))
        e = float(q[1] - q[0]) * self.voltage_v
        return TwinWindow(self.number, rise - self.t0, fall - self.t0, e, self.voltage_v, False)


class BenchTwin:
    """Accepts QEMU's activity connection on ``socket://HOST:PORT`` and keeps the board's timeline.

    A new connection (QEMU started again) replaces the old one; a boot record resets the timeline.
    """

    def __init__(
        self, model: PowerModel, url: str = "socket://127.0.0.1:0", faults: Sequence[TwinFaults] = ()
    ) -> None:
        self.model = model
        self.faults = list(faults)
        self.lock = threading.RLock()
        self.timeline = Timeline(model)
        self.acquisitions = 0
        self.windows: list[TwinWindow] = []
        self.connections = 0
        self._want = url
        self._buf = bytearray()
        self._conn: socket.socket | None = None
        self._listener: socket.socket | None = None
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self.url = ""
        #: called with each exact window as it is recorded (the CLI prints and logs them)
        self.on_window: Callable[[TwinWindow], None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> BenchTwin:
        if not self._want.startswith("socket://"):
            raise ConfigError(f"the twin's activity URL must be socket://HOST:PORT, not {self._want!r}")
        self._listener, self.url = listen_socket(self._want, backlog=2)
        self._thread = threading.Thread(target=self._serve, daemon=True, name="twin-activity")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(3)
        for s in (self._conn, self._listener):
            if s is not None:
                with contextlib.suppress(OSError):
                    s.close()
        self._conn = self._listener = None

    def __enter__(self) -> BenchTwin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- activity ----------------------------------------------------------------------------
    def _serve(self) -> None:
        assert self._listener is not None
        while not self._halt.is_set():
            socks = [self._listener] + ([self._conn] if self._conn is not None else [])
            try:
                r, _, _ = select.select(socks, [], [], 0.05)
            except (OSError, ValueError):
                r = []
            if self._listener in r:
                conn, _ = self._listener.accept()
                conn.setblocking(False)
                with self.lock:
                    if self._conn is not None:
                        self._conn.close()
                    self._conn, self._buf = conn, bytearray()
                    self.connections += 1
            if self._conn is not None and self._conn in r:
                self.sync()

    def sync(self) -> None:
        """Read every activity record QEMU has sent so far."""
        with self.lock:
            conn = self._conn
            while conn is not None:
                try:
                    data = conn.recv(65536)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    data = b""
                if not data:  # QEMU exited: keep the timeline, wait for the next board
                    conn.close()
                    self._conn = conn = None
                    return
                self._feed(data)

    def _feed(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        i = 0
        while len(buf) - i >= RECORD_BYTES:
            if buf[i] != SYNC:
                i += 1  # resynchronise on the next sync byte
                continue
            value = int.from_bytes(buf[i + 2 : i + RECORD_BYTES], "little")
            self.timeline.record(buf[i + 1], value)
            i += RECORD_BYTES
        del buf[:i]

    # -- meters ------------------------------------------------------------------------------
    def acquisition(self, voltage_v: float) -> tuple[Acquisition, Faults]:
        """A meter started: its view of the twin from now on, and the faults for it."""
        self.sync()
        with self.lock:
            self.acquisitions += 1
            n = self.acquisitions
            f = self.fault_for(n)
            acq = Acquisition(self, n, voltage_v, self.timeline.t, miss_marker=bool(f and f.miss_marker))
        return acq, (f.meter_faults() if f else Faults())

    def fault_for(self, acquisition: int) -> TwinFaults | None:
        """The faults planned for the ``acquisition``-th meter start (None: a clean one)."""
        return next((f for f in self.faults if f.window == acquisition), None)

    def record_window(self, acq: Acquisition) -> None:
        """Keep the exact energy of the acquisition's marker pulse (after the meter stopped)."""
        w = acq.exact()
        if w is not None:
            faulted = self.fault_for(acq.number) is not None
            w = TwinWindow(**{**w.__dict__, "faulted": faulted})
            self.windows.append(w)
            if self.on_window is not None:
                self.on_window(w)


class _TwinMeter(MeterEmulator):
    """What the LPM01A and PPK2 twins share: the clock is the DUT's, the profile is the twin's."""

    twin: BenchTwin
    acq: Acquisition | None = None

    def meter_volts(self) -> float:
        raise NotImplementedError

    def start_stream(self) -> None:
        super().start_stream()
        self.acq, self.faults = self.twin.acquisition(self.meter_volts())
        self.profile = self.acq  # type: ignore[assignment]  # duck-typed Profile

    def vnow(self) -> float:
        if not self.state.streaming or self.acq is None:
            return 0.0
        return self.acq.known_s()

    def end_stream(self, rate_hz: float, catch_up: Any) -> None:
        """Sample up to what the DUT reported before the stop, then record the exact window."""
        if self.acq is None or not self.state.streaming:
            return
        self.acq.finish(3.0 / rate_hz)
        target = int(self.vnow() * rate_hz)
        while self.state.streaming and self.state.next_index < target and not self.disconnect_now:
            catch_up()
        self.twin.record_window(self.acq)


class TwinLpm01a(_TwinMeter, Lpm01aEmulator):
    """An LPM01A powering the twin board; ``event`` lines at the marker's edges (D7)."""

    board_id = f"FRUGALBENCH-EMULATOR bench twin ({VIRTUAL_CLOCK})"

    def __init__(self, twin: BenchTwin, **kw: Any) -> None:
        self.twin = twin
        super().__init__(**kw)

    def meter_volts(self) -> float:
        return self.volt

    def _command(self, cmd: str) -> None:
        if cmd.partition(" ")[0] == "stop":
            self.end_stream(self.freq, self.poll)
        super()._command(cmd)


class TwinPpk2(_TwinMeter, Ppk2Emulator):
    """A PPK2 in source mode powering the twin board; the marker on logic input D0."""

    def __init__(self, twin: BenchTwin, **kw: Any) -> None:
        self.twin = twin
        super().__init__(**kw)

    def meter_volts(self) -> float:
        return self.vdd_mv / 1000 if self.mode == 2 else self.twin.model.voltage_v

    def _op(self, op: int, args: bytes) -> None:
        if op == 0x19:
            text = metadata_text(self.vdd_mv, emulator=not self.impersonate)
            self.send(text.replace(EMULATOR_KEY, f"EMU: frugalbench bench twin ({VIRTUAL_CLOCK})").encode())
            return
        if op in (0x07, 0x20):

            def more() -> None:
                self.catching_up = True
                self.poll()
                self.catching_up = False

            self.end_stream(PPK2_RATE_HZ, more)
        super()._op(op, args)


TWIN_METERS = ("lpm01a", "ppk2")


def twin_meter(kind: str, twin: BenchTwin, **kw: Any) -> MeterEmulator:
    """The ``kind`` meter emulator (``lpm01a`` or ``ppk2``) driven by ``twin``."""
    if kind == "lpm01a":
        return TwinLpm01a(twin, **kw)
    if kind == "ppk2":
        return TwinPpk2(twin, **kw)
    raise ConfigError(f"no bench-twin meter {kind!r}; the twin drives: {', '.join(TWIN_METERS)}")


__all__ = [
    "Acquisition",
    "BenchTwin",
    "PowerModel",
    "Timeline",
    "TwinFaults",
    "TwinLpm01a",
    "TwinPpk2",
    "TwinWindow",
    "twin_meter",
]
