"""The one energy integrator: the energy of a trace between two instants on the trace's clock.

Each kind of trace is integrated exactly for its own sample model:

* a cumulative counter (``energy_j``: RAPL, NVML, Joulescope accumulators): linear interpolation of the
  counter at both edges;
* uniformly sampled meter power (``extra['edges_energy_j']`` with ``rate_hz``: PPK2, LPM01A, Otii),
  where each sample is the mean power of its period ``[i/r, (i+1)/r)``: linear interpolation of the
  cumulative energy at the sample edges (exact for that model);
* polled instantaneous power (``power_w``: USB meters, INA2xx, the PMIC, the estimate): the trapezoid
  integral of the piecewise-linear power, edges interpolated.

Every caller (the meters' ``window_energy``, energy windows, idle power, production energy) uses
:func:`window_energy`.
"""

from __future__ import annotations

import numpy as np

from .trace import Trace

#: Slack (s) on the trace's ends: a marker stamped on the last sample edge is inside the trace.
EDGE_SLACK_S = 1e-12


def _edges(trace: Trace) -> np.ndarray | None:
    edges = trace.extra.get("edges_energy_j")
    if trace.energy_j is None and edges is not None and trace.rate_hz:
        return np.asarray(edges, dtype=np.float64)
    return None


def cumulative(trace: Trace) -> tuple[np.ndarray, np.ndarray]:
    """Instants on the trace's clock and the energy (J) recorded since the first of them.

    For displays and coverage (the instants a window may span); integrate with :func:`window_energy`.
    """
    if trace.energy_j is not None:
        e = np.asarray(trace.energy_j, dtype=np.float64)
        return np.asarray(trace.t_s, dtype=np.float64), e - e[0]
    edges = _edges(trace)
    if edges is not None:
        assert trace.rate_hz
        return np.arange(len(edges)) / trace.rate_hz, edges
    if trace.power_w is None:
        raise ValueError("trace holds neither power samples nor an energy counter")
    t = np.asarray(trace.t_s, dtype=np.float64)
    p = np.asarray(trace.power_w, dtype=np.float64)
    return t, np.concatenate(([0.0], np.cumsum(np.diff(t) * (p[1:] + p[:-1]) / 2)))


def _covered(t: np.ndarray, t0: float, t1: float) -> None:
    if len(t) < 2 or t0 < t[0] - EDGE_SLACK_S or t1 > t[-1] + EDGE_SLACK_S:
        a = f"{t[0]:.6f}" if len(t) else "nan"
        b = f"{t[-1]:.6f}" if len(t) else "nan"
        raise ValueError(f"window [{t0:.6f}, {t1:.6f}] s is not covered by the trace [{a}, {b}] s")


def _trapezoid(t: np.ndarray, p: np.ndarray, t0: float, t1: float) -> float:
    """Integral of the piecewise-linear power through ``(t, p)`` on ``[t0, t1]`` (edges interpolated)."""
    inside = (t > t0) & (t < t1)
    ts = np.concatenate(([t0], t[inside], [t1]))
    ps = np.concatenate(([np.interp(t0, t, p)], p[inside], [np.interp(t1, t, p)]))
    return float(np.trapezoid(ps, ts))


def window_energy(trace: Trace, t0: float, t1: float) -> float:
    """Energy in joules between ``t0`` and ``t1`` (seconds on the trace's clock).

    Raises ValueError if ``t1`` is not after ``t0``, if the trace does not cover the window, or if it
    holds neither power samples nor an energy counter.
    """
    if t1 <= t0:
        raise ValueError(f"window end {t1} is not after its start {t0}")
    if trace.energy_j is not None:
        t = np.asarray(trace.t_s, dtype=np.float64)
        e = np.asarray(trace.energy_j, dtype=np.float64)
        _covered(t, t0, t1)
        return float(np.interp(t1, t, e)) - float(np.interp(t0, t, e))
    edges = _edges(trace)
    if edges is not None:
        assert trace.rate_hz
        t = np.arange(len(edges)) / trace.rate_hz
        _covered(t, t0, t1)
        return float(np.interp(t1, t, edges) - np.interp(t0, t, edges))
    if trace.power_w is None:
        raise ValueError("trace holds neither power samples nor an energy counter")
    t = np.asarray(trace.t_s, dtype=np.float64)
    _covered(t, t0, t1)
    return _trapezoid(t, np.asarray(trace.power_w, dtype=np.float64), t0, t1)


def mean_power(trace: Trace, t0: float, t1: float) -> float:
    """Mean power in watts on ``[t0, t1]``."""
    return window_energy(trace, t0, t1) / (t1 - t0)
