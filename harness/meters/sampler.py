"""A background thread that polls a reading function into a host-clock trace (counters, estimates)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np


class Sampler:
    """Calls ``read()`` every ``period_s`` from ``start()`` to ``stop()``; one reading at each end."""

    def __init__(self, read: Callable[[], float], period_s: float) -> None:
        self._read = read
        self.period_s = period_s
        self._t: list[float] = []
        self._v: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def _sample(self) -> None:
        v = self._read()
        self._t.append(time.perf_counter())
        self._v.append(v)

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.period_s):
                self._sample()
        except BaseException as e:  # surfaced by stop(): a lost counter invalidates the trace
            self.error = e

    def start(self) -> None:
        self._t, self._v = [], []
        self._stop.clear()
        self.error = None
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="meter-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> tuple[np.ndarray, np.ndarray]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.error is None:
            self._sample()
        return np.asarray(self._t), np.asarray(self._v, dtype=np.float64)
