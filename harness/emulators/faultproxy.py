"""A fault-injecting TCP proxy for a serial link served on a socket (a QEMU DUT, ``frugalbench dut start``).

The host connects to the proxy (``socket://127.0.0.1:<proxy.port>``); the proxy connects to the DUT
and forwards bytes both ways, injecting faults at random byte positions:

* ``drop``: one byte is lost;
* ``flip``: one bit of one byte is inverted;
* ``garbage``: 1 to 8 random bytes are inserted;
* ``stall``: the direction stops for ``stall_s`` (longer than a host timeout by default);
* ``close``: both connections are closed (the host must reconnect; the proxy accepts again and
  reconnects upstream).

Directions: ``up`` is host to DUT, ``down`` is DUT to host. Faults arrive at a mean rate of
``rate`` per forwarded byte (independent gaps), drawn from a seeded generator, and every one is
logged (:attr:`FaultProxy.log`). Use it to rehearse a flaky cable before a real run::

    python -m harness.emulators.faultproxy --upstream 127.0.0.1:4444 --listen 5555 --rate 0.001

then point the MCU target's ``port`` at ``socket://127.0.0.1:5555``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import select
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

KINDS = ("drop", "flip", "garbage", "stall", "close")
DIRECTIONS = ("up", "down")


@dataclass(frozen=True)
class Fault:
    """One injected fault: when, which direction, what, and at which byte of that direction."""

    t: float
    direction: str
    kind: str
    offset: int


@dataclass
class FaultPlan:
    """What to inject: per-byte rate, fault kinds and directions, stall length, an optional cap."""

    rate: float = 0.0
    kinds: tuple[str, ...] = KINDS
    directions: tuple[str, ...] = DIRECTIONS
    stall_s: float = 1.5
    max_faults: int | None = None
    seed: int = 0
    weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in KINDS] + [d for d in self.directions if d not in DIRECTIONS]
        if bad:
            raise ValueError(
                f"unknown fault kind or direction {bad}; kinds: {KINDS}, directions: {DIRECTIONS}"
            )
        if self.rate < 0:
            raise ValueError("fault rate must be >= 0")


class FaultProxy:
    """Forward ``listen`` <-> ``upstream`` with injected faults; one client connection at a time.

    Example:
        >>> with FaultProxy(("127.0.0.1", 4444), FaultPlan(rate=1e-3)) as fp:  # doctest: +SKIP
        ...     url = fp.url
    """

    def __init__(self, upstream: tuple[str, int], plan: FaultPlan | None = None, *, port: int = 0) -> None:
        self.upstream = upstream
        self.plan = plan or FaultPlan()
        self._rng = random.Random(self.plan.seed)
        self._lock = threading.Lock()
        self.log: list[Fault] = []
        self.bytes = {d: 0 for d in DIRECTIONS}
        self._next = {d: self._gap() for d in DIRECTIONS}
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", port))
        self._server.listen(4)
        self.port = int(self._server.getsockname()[1])
        self._stop = threading.Event()
        self._conn: tuple[socket.socket, socket.socket] | None = None
        self._thread: threading.Thread | None = None
        self._armed: list[tuple[str, str, int]] = []
        self.enabled = True

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def set_plan(self, plan: FaultPlan) -> None:
        """Switch to another fault plan (from the next forwarded byte; the log is kept)."""
        with self._lock:
            self.plan = plan
            self._rng = random.Random(plan.seed)
            self._next = {d: self._gap() for d in DIRECTIONS}

    def arm(self, direction: str, kind: str, after: int = 0) -> None:
        """Inject one ``kind`` fault ``after`` bytes from now in ``direction`` (on top of the random plan)."""
        if direction not in DIRECTIONS or kind not in KINDS:
            raise ValueError(f"direction must be one of {DIRECTIONS} and kind one of {KINDS}")
        with self._lock:
            self._armed.append((direction, kind, self.bytes[direction] + after + 1))

    def _due(self, direction: str) -> str | None:
        """An armed fault due at the current byte of ``direction``, else the random plan's."""
        for i, (d, kind, at) in enumerate(self._armed):
            if d == direction and self.bytes[direction] >= at:
                del self._armed[i]
                return kind
        return None

    def counts(self) -> Counter[tuple[str, str]]:
        """Injected faults by (direction, kind)."""
        with self._lock:
            return Counter((f.direction, f.kind) for f in self.log)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._accept_loop, name="faultproxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._server.close()
        self._drop_conn()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ faults
    def _gap(self) -> int:
        """Bytes until the next fault in one direction (geometric gaps, mean 1/rate)."""
        if self.plan.rate <= 0:
            return 1 << 62
        return 1 + int(self._rng.expovariate(self.plan.rate))

    def _capped(self) -> bool:
        return self.plan.max_faults is not None and len(self.log) >= self.plan.max_faults

    def _pick_kind(self) -> str:
        kinds = list(self.plan.kinds)
        return self._rng.choices(kinds, [self.plan.weights.get(k, 1.0) for k in kinds])[0]

    def _mangle(self, direction: str, data: bytes) -> tuple[bytes, float, bool]:
        """Apply the faults due in ``data``: (bytes to forward, stall seconds, close the link)."""
        out = bytearray()
        stall, close = 0.0, False
        with self._lock:
            active = self.enabled and direction in self.plan.directions and not self._capped()
            n = len(data)
            if not self._armed and (not active or self._next[direction] > n):  # no fault in this chunk
                self.bytes[direction] += n
                if active:
                    self._next[direction] -= n
                return bytes(data), stall, close
            for b in data:
                self.bytes[direction] += 1
                kind = self._due(direction)
                if kind is None and active:
                    self._next[direction] -= 1
                    if self._next[direction] <= 0:
                        self._next[direction] = self._gap()
                        kind = self._pick_kind()
                if kind is None:
                    out.append(b)
                    continue
                self.log.append(Fault(time.monotonic(), direction, kind, self.bytes[direction]))
                active = active and not self._capped()
                if kind == "drop":
                    continue
                if kind == "flip":
                    out.append(b ^ (1 << self._rng.randrange(8)))
                elif kind == "garbage":
                    out += bytes(self._rng.randrange(256) for _ in range(self._rng.randint(1, 8)))
                    out.append(b)
                elif kind == "stall":
                    stall += self.plan.stall_s
                    out.append(b)
                else:  # close
                    close = True
                    break
        return bytes(out), stall, close

    # ------------------------------------------------------------ forwarding
    def _drop_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            for s in conn:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self._server], [], [], 0.1)
                if not r:
                    continue
                client, _ = self._server.accept()
            except OSError:
                return
            self._drop_conn()  # one host at a time, as on a serial cable
            up = None
            for _ in range(100):
                try:
                    up = socket.create_connection(self.upstream, timeout=1.0)
                    break
                except OSError:
                    time.sleep(0.02)  # the DUT still closing the previous connection
            if up is None:
                client.close()
                continue
            try:
                for s in (client, up):
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    s.settimeout(None)
            except OSError:  # the host gave up already: close both, keep accepting
                client.close()
                up.close()
                continue
            self._conn = (client, up)
            for src, dst, d in ((client, up, "up"), (up, client, "down")):
                threading.Thread(target=self._pump, args=(src, dst, d), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([src], [], [], 0.1)
                if not r:
                    if self._conn is None or src not in self._conn:
                        return
                    continue
                data = src.recv(4096)
            except (OSError, ValueError):
                return
            if not data:
                if self._conn is not None and src in self._conn:
                    self._drop_conn()
                return
            out, stall, close = self._mangle(direction, data)
            try:
                if close:
                    if out:
                        dst.sendall(out)
                    self._drop_conn()
                    return
                if stall:
                    time.sleep(stall)
                if out:
                    dst.sendall(out)
            except OSError:
                return


def main(argv: list[str] | None = None) -> None:
    """Run a proxy until Ctrl-C: ``--upstream HOST:PORT --listen PORT --rate R [--kinds ...]``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the DUT's TCP serial port")
    ap.add_argument("--listen", type=int, default=0, help="local port for the host (default: any)")
    ap.add_argument("--rate", type=float, default=1e-3, help="mean faults per forwarded byte")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"comma list of {', '.join(KINDS)}")
    ap.add_argument("--directions", default="up,down", help="up (host to DUT), down (DUT to host)")
    ap.add_argument("--stall-s", type=float, default=1.5)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    host, _, port = a.upstream.rpartition(":")
    plan = FaultPlan(
        rate=a.rate,
        kinds=tuple(a.kinds.split(",")),
        directions=tuple(a.directions.split(",")),
        stall_s=a.stall_s,
        seed=a.seed,
    )
    with FaultProxy((host or "127.0.0.1", int(port)), plan, port=a.listen) as fp:
        print(
            f"forwarding {fp.url} -> {a.upstream} with faults at {a.rate:g}/byte; Ctrl-C to stop", flush=True
        )
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    print("faults injected: " + ", ".join(f"{d}/{k}={n}" for (d, k), n in sorted(fp.counts().items())))


if __name__ == "__main__":
    main()
