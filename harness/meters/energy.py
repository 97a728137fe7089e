"""Energy integration over a trace between two instants (host clock) or two markers."""

from __future__ import annotations

import numpy as np

from .base import Trace


def _interp_cumulative(t: np.ndarray, e: np.ndarray, at: float) -> float:
    return float(np.interp(at, t, e))


def _integrate_power(t: np.ndarray, p: np.ndarray, t0: float, t1: float) -> float:
    """Trapezoidal integral of piecewise-linear power on ``[t0, t1]`` (edges interpolated)."""
    inside = (t > t0) & (t < t1)
    ts = np.concatenate(([t0], t[inside], [t1]))
    ps = np.concatenate(([np.interp(t0, t, p)], p[inside], [np.interp(t1, t, p)]))
    return float(np.trapezoid(ps, ts))


def window_energy(trace: Trace, t0: float, t1: float) -> float:
    """Energy in joules between ``t0`` and ``t1`` (seconds on the trace's clock)."""
    if t1 <= t0:
        raise ValueError(f"window end {t1} is not after its start {t0}")
    if len(trace.t_s) < 2 or t0 < trace.t_s[0] or t1 > trace.t_s[-1]:
        raise ValueError(
            f"window [{t0:.6f}, {t1:.6f}] s is not covered by the trace "
            f"[{trace.t_s[0] if len(trace.t_s) else float('nan'):.6f}, "
            f"{trace.t_s[-1] if len(trace.t_s) else float('nan'):.6f}] s"
        )
    if trace.energy_j is not None:
        return _interp_cumulative(trace.t_s, trace.energy_j, t1) - _interp_cumulative(
            trace.t_s, trace.energy_j, t0
        )
    if trace.power_w is None:
        raise ValueError("trace holds neither power samples nor an energy counter")
    return _integrate_power(trace.t_s, trace.power_w, t0, t1)


def mean_power(trace: Trace, t0: float, t1: float) -> float:
    """Mean power in watts on ``[t0, t1]``."""
    return window_energy(trace, t0, t1) / (t1 - t0)
