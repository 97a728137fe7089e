"""Known power profiles for meter emulators: piecewise-constant power with an exact energy integral.

A profile is power on a grid of step ``dt``: constant, a square wave, or seeded random levels.
``energy(t0, t1)`` is exact, so a test can compare a driver's integrated window with the truth.
``windows`` are the intervals during which the DUT holds its marker pin high (D0 / D7 / GPI0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix(k: np.ndarray, seed: int) -> np.ndarray:
    """A counter-based hash → floats in [0, 1) (deterministic, any index order)."""
    with np.errstate(over="ignore"):
        z = (k.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)) & _MASK
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@dataclass
class Profile:
    """Piecewise-constant power (W) on a grid of ``dt`` seconds, plus marker windows."""

    kind: str = "constant"  # constant | square | random
    low_w: float = 0.010
    high_w: float = 0.030
    dt: float = 0.05  # grid step: half period of the square wave, hold time of a random level
    seed: int = 0
    voltage_v: float = 3.3
    windows: list[tuple[float, float]] = field(default_factory=list)
    _cum: np.ndarray = field(default_factory=lambda: np.zeros(1), repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "square", "random"):
            raise ValueError(f"unknown profile kind {self.kind!r}; use constant, square or random")

    def level(self, k: np.ndarray) -> np.ndarray:
        """Power of grid cell ``k``."""
        k = np.asarray(k, dtype=np.int64)
        if self.kind == "constant":
            return np.full(k.shape, self.low_w)
        if self.kind == "square":
            return np.where(k % 2 == 1, self.high_w, self.low_w)
        return self.low_w + (self.high_w - self.low_w) * _splitmix(k, self.seed)

    def _ensure(self, kmax: int) -> None:
        n = len(self._cum) - 1
        if kmax <= n:
            return
        new_n = max(kmax, 2 * n, 1024)
        lv = self.level(np.arange(n, new_n))
        self._cum = np.concatenate((self._cum, self._cum[-1] + np.cumsum(lv) * self.dt))

    def cumulative(self, t: np.ndarray | float) -> np.ndarray:
        """Exact energy in J from 0 to ``t``."""
        ta = np.asarray(t, dtype=np.float64)
        k = np.floor(ta / self.dt).astype(np.int64)
        self._ensure(int(k.max(initial=0)) + 2)
        return self._cum[k] + self.level(k) * (ta - k * self.dt)

    def energy(self, t0: float, t1: float) -> float:
        """Exact energy in J on ``[t0, t1]``."""
        return float(self.cumulative(t1) - self.cumulative(t0))

    def mean_power(self, i0: int, i1: int, rate_hz: float) -> np.ndarray:
        """Mean power of samples ``i0..i1-1`` (sample ``i`` averages ``[i/r, (i+1)/r)``)."""
        edges = self.cumulative(np.arange(i0, i1 + 1) / rate_hz)
        return np.diff(edges) * rate_hz

    def marker(self, t: np.ndarray) -> np.ndarray:
        """Marker pin level (0/1) at instants ``t``."""
        out = np.zeros(np.shape(t), dtype=np.uint8)
        for a, b in self.windows:
            out |= ((t >= a) & (t < b)).astype(np.uint8)
        return out

    def edges(self) -> list[float]:
        """Every marker edge time, sorted."""
        return sorted(x for w in self.windows for x in w)
