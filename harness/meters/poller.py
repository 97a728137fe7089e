"""The one polling loop of the polled meters (USB meters, INA2xx, the Pi 5 PMIC, NVML, RAPL, the estimate).

A :class:`Poller` takes one reading in the caller's thread when ``start()`` is called, one every period
on a thread, and one more in the caller's thread at ``stop()``, so its readings span the whole interval
from ``start()`` to ``stop()``: a window timed in between is always covered, even with a 2 Hz meter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..errors import MeterError, ProtocolError
from ._common import polled_trace
from .trace import Trace


class Poller:
    """Calls ``read()`` every ``1/poll_hz`` s between ``start()`` and ``stop()``; each value is stamped
    with the host ``perf_counter`` midpoint of its request.

    A :class:`~harness.errors.ProtocolError` is a rejected reading (bad frame), a
    :class:`~harness.errors.MeterError` a missed one (no reply); any other exception, or
    ``max_failures`` failures in a row, means the link is lost (``lost`` says why, ``error`` holds the
    exception). ``start()`` clears the readings and the loss of an earlier run.
    """

    def __init__(self, read: Callable[[], float], poll_hz: float, max_failures: int = 5, what: str = "poll"):
        self.read = read
        self.period = 1.0 / poll_hz
        self.max_failures = max_failures
        self.what = what
        self.t: list[float] = []
        self.v: list[float] = []
        self.rejected: list[str] = []
        self.missed = 0
        self.lost = ""
        self.error: Exception | None = None
        self._failures = 0
        self._active = False
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True from ``start()`` to ``stop()``."""
        return self._active

    def start(self) -> None:
        """Take the first reading now, then poll on a thread."""
        self.stop()
        self.t, self.v, self.rejected, self.missed = [], [], [], 0
        self.lost, self.error, self._failures = "", None, 0
        self._halt.clear()
        self._active = True
        t_first = time.perf_counter()
        if self._poll_once():
            self._thread = threading.Thread(
                target=self._run, args=(t_first,), daemon=True, name=f"{self.what}-poll"
            )
            self._thread.start()

    def stop(self, join_s: float = 5.0) -> None:
        """Stop the thread, then take one last reading (unless the link is lost), so the readings cover
        the instant ``stop()`` was called. Does nothing if not started."""
        if not self._active:
            return
        self._active = False
        self._halt.set()
        if self._thread is not None:
            self._thread.join(join_s)
            hung = self._thread.is_alive()  # a read that outlives join_s: no last reading
            self._thread = None
            if hung:
                return
        if not self.lost:
            self._poll_once()

    def _run(self, t_first: float) -> None:
        nxt = t_first + self.period
        while not self._halt.wait(max(0.0, nxt - time.perf_counter())):
            if not self._poll_once():
                return
            nxt += self.period

    def _poll_once(self) -> bool:
        """One reading, classified; False once the link is lost."""
        t_req = time.perf_counter()
        try:
            value = self.read()
        except ProtocolError as exc:
            self.rejected.append(str(exc))
            self._failures += 1
        except MeterError:
            self.missed += 1
            self._failures += 1
        except Exception as exc:  # noqa: BLE001 - serial/library/file errors: the link is gone
            self.error = exc
            self.lost = f"meter connection lost: {exc}"
            return False
        else:
            self.t.append((t_req + time.perf_counter()) / 2)
            self.v.append(value)
            self._failures = 0
        if self._failures >= self.max_failures:
            self.lost = f"meter stopped answering ({self._failures} failed {self.what}s in a row)"
            return False
        return True

    def problems(self) -> list[str]:
        """Why the readings are not a clean trace (empty if they are)."""
        out = [self.lost] if self.lost else []
        out += list(dict.fromkeys(self.rejected))
        if self.missed:
            out.append(f"{self.missed} {self.what}s got no reply")
        return out

    def power_trace(self, extra: dict | None = None) -> Trace:
        """The readings as a host-clock power trace."""
        return polled_trace(self.t, self.v, len(self.rejected) + self.missed, self.problems(), extra)
