"""Statistics of latency samples: percentiles and a bootstrap CI of the median."""

from __future__ import annotations

import numpy as np


def percentiles(x: np.ndarray) -> dict[str, float]:
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99)}


def median_ci(values: np.ndarray, *, seed: int = 0, n_boot: int = 2000) -> tuple[float, float, float]:
    """Median of ``values`` and a 95 % percentile-bootstrap CI (deterministic in ``seed``).

    With fewer than 3 values the interval is the full range (no claim of precision).
    """
    v = np.asarray(values, dtype=np.float64)
    med = float(np.median(v))
    if len(v) < 3:
        return med, float(v.min()), float(v.max())
    rng = np.random.default_rng(seed)
    boots = np.median(v[rng.integers(0, len(v), size=(n_boot, len(v)))], axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return med, float(lo), float(hi)


def rel_half_width(med: float, lo: float, hi: float) -> float:
    return float((hi - lo) / 2 / med) if med > 0 else float("inf")
