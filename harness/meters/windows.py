"""Energy windows: in-stream GPIO markers or host-clock alignment, idle power, per-inference energy.

Definitions (DESIGN §5): ``E_win`` = energy between the window edges, ``T`` its length, ``N`` the
inferences in it. **E = E_win / N** is primary; ``E_dyn = (E_win − P_idle·T) / N`` is secondary and is
always reported with ``P_idle`` (mean of the idle windows before and after) and ``T``.
A window is invalid (never stored as good) if the trace is invalid (meter lost), if samples were
dropped, if it holds NaN samples, or if the trace does not cover it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..errors import WindowInvalid
from .energy import cumulative, window_energy
from .trace import Marker, TimedWindow, Trace

#: Default minimum window lengths (MLPerf Tiny: ≥ 10 s on an MCU; ≥ 60 s on a Pi with a 2 Hz meter).
MIN_WINDOW_S = {"mcu": 10.0, "pi": 60.0}
#: Shortest level a marker pin holds (EEMBC EnergyRunner's ``timestamp-hold-us=50``): a shorter pulse or
#: gap is a glitch or a corrupted sample (a flipped logic bit in one PPK2 frame), never a window edge.
MIN_MARKER_HOLD_S = 50e-6


@dataclass(frozen=True)
class EnergyWindow:
    """One integrated window and everything needed to recompute its figures."""

    e_win_j: float
    t_s: float
    n: int
    method: str  # "gpio", "host-clock", or a meter's own ("icount")
    t0: float
    t1: float
    n_samples: int | None  # samples inside the window; None if its edges are not on the trace's clock
    dropped: int
    valid: bool
    problem: str = ""
    p_idle_w: float | None = None
    p_idle_std_w: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def e_per_inf_j(self) -> float:
        """Primary: E_win / N."""
        return self.e_win_j / self.n

    @property
    def e_dyn_per_inf_j(self) -> float | None:
        """Secondary: (E_win − P_idle·T) / N, or None without an idle window."""
        if self.p_idle_w is None:
            return None
        return (self.e_win_j - self.p_idle_w * self.t_s) / self.n

    @property
    def mean_power_w(self) -> float:
        return self.e_win_j / self.t_s

    def require_valid(self) -> EnergyWindow:
        """Return self, or raise :class:`WindowInvalid` saying why (the runner re-runs the window)."""
        if not self.valid:
            raise WindowInvalid(f"energy window invalid: {self.problem}; re-run the window")
        return self


def timed_window(
    trace: Trace, window: TimedWindow, e_win_j: float | None, method: str, problem: str = ""
) -> EnergyWindow:
    """The energy window of a target's timed ``window``, integrated by a meter from ``trace``.

    ``e_win_j`` is None (and ``problem`` says why) when the meter could not integrate it; the window is
    then invalid. Edges are the window's host instants; ``n_samples`` is counted only on a host-clock
    trace (None on a meter-clock trace, whose window a meter places by its markers).
    """
    t0, t1 = window.t_start, window.t_end
    return EnergyWindow(
        e_win_j=math.nan if e_win_j is None else e_win_j,
        t_s=t1 - t0,
        n=window.n,
        method=method,
        t0=t0,
        t1=t1,
        n_samples=_samples_in(trace, t0, t1) if trace.host_aligned else None,
        dropped=trace.dropped,
        valid=e_win_j is not None and not problem,
        problem=problem if e_win_j is not None or problem else "no energy integrated",
    )


def _samples_in(trace: Trace, t0: float, t1: float) -> int:
    return int(np.count_nonzero((trace.t_s >= t0) & (trace.t_s <= t1)))


def _nan_in(trace: Trace, t0: float, t1: float) -> bool:
    vals = trace.power_w if trace.power_w is not None else trace.energy_j
    if vals is None:
        return False
    inside = (trace.t_s >= t0) & (trace.t_s <= t1)
    return bool(np.isnan(np.asarray(vals)[inside]).any())


def idle_power(trace: Trace, intervals: list[tuple[float, float]]) -> tuple[float | None, float | None]:
    """Mean and spread of power over idle intervals (those the trace covers); None if none."""
    t, _ = cumulative(trace)
    means: list[float] = []
    for a, b in intervals:
        a, b = max(a, float(t[0])), min(b, float(t[-1]))
        if b - a > 0:
            means.append(window_energy(trace, a, b) / (b - a))
    if not means:
        return None, None
    mean = float(np.mean(means))
    if trace.power_w is not None:
        p = np.asarray(trace.power_w)
        mask = np.zeros(len(p), dtype=bool)
        for a, b in intervals:
            mask |= (trace.t_s >= a) & (trace.t_s <= b)
        std = float(np.nanstd(p[mask])) if mask.any() else None
    else:
        std = float(np.std(means)) if len(means) > 1 else None
    return mean, std


def _finish(
    trace: Trace,
    t0: float,
    t1: float,
    n: int,
    method: str,
    idle: list[tuple[float, float]],
    problems: list[str],
    min_s: float | None,
) -> EnergyWindow:
    if n <= 0:
        raise ValueError(f"a window needs at least one inference, got n={n}")
    notes: list[str] = []
    if not trace.valid:
        problems.insert(0, trace.problem or "trace marked invalid by the meter")
    if trace.dropped:
        problems.append(f"{trace.dropped} samples dropped")
    try:
        e = window_energy(trace, t0, t1)
    except ValueError as exc:
        problems.append(str(exc))
        e = math.nan
    if math.isfinite(e) and _nan_in(trace, t0, t1):
        problems.append("window holds corrupted (NaN) samples")
    if not math.isfinite(e):
        problems.append("window energy is not finite")
    if min_s is not None and t1 - t0 < min_s:
        notes.append(f"below minimum duration: {t1 - t0:.3f} s < {min_s} s")
    p_idle, p_std = idle_power(trace, idle) if idle else (None, None)
    return EnergyWindow(
        e_win_j=e,
        t_s=t1 - t0,
        n=n,
        method=method,
        t0=t0,
        t1=t1,
        n_samples=_samples_in(trace, t0, t1),
        dropped=trace.dropped,
        valid=not problems,
        problem="; ".join(dict.fromkeys(problems)),
        p_idle_w=p_idle,
        p_idle_std_w=p_std,
        notes=notes,
    )


def marker_edges(trace: Trace, channel: int | None = None) -> list[Marker]:
    """Markers of one channel (all channels if None), in time order."""
    ms = [m for m in trace.markers if channel is None or m.channel == channel]
    return sorted(ms, key=lambda m: m.t_s)


def gpio_bounds(
    trace: Trace, channel: int | None = None, mode: Literal["auto", "pulse", "last-pair"] = "auto"
) -> tuple[float, float]:
    """Window edges from in-stream markers.

    ``pulse``: the last complete pulse, a rising edge and the next falling edge (the DUT holds the pin
    high while it runs; the timed window is the last thing a target runs, after any warm-up pulse). ``last-pair``: the last two markers (MLPerf Tiny's rule for LPM01A/JS220 ``event`` lines).
    ``auto`` picks ``pulse`` if the channel has a rising edge, else ``last-pair``.
    A level held for less than :data:`MIN_MARKER_HOLD_S` between two edges of a pulse channel makes the
    window invalid (a glitch, or a corrupted sample, would otherwise become a window edge).
    """
    ms = marker_edges(trace, channel)
    if mode == "auto":
        mode = "pulse" if any(m.level == 1 for m in ms) else "last-pair"
    if mode == "pulse":
        short = _short_level(ms)
        if short is not None:
            raise WindowInvalid(
                f"marker on channel {channel} changed twice within {MIN_MARKER_HOLD_S * 1e6:.0f} µs at "
                f"{short.t_s:.6f} s: a glitch or a corrupted sample, not a window edge; check the marker "
                "wiring if it repeats"
            )
        rise = fall = None
        for m in ms:
            if m.level == 1 and (rise is None or fall is not None):
                rise, fall = m, None
            elif m.level == 0 and rise is not None and fall is None:
                fall = m
        if rise is None or fall is None:
            raise WindowInvalid(
                f"no complete marker pulse on channel {channel} ({len(ms)} edges); check the DUT's "
                "marker pin wiring and that the trace spans the whole window"
            )
        return rise.t_s, fall.t_s
    if len(ms) < 2:
        raise WindowInvalid(
            f"need two markers on channel {channel}, found {len(ms)}; check the timestamp pin wiring"
        )
    return ms[-2].t_s, ms[-1].t_s


def _short_level(ms: list[Marker]) -> Marker | None:
    """The first edge that comes less than :data:`MIN_MARKER_HOLD_S` after the previous edge of its
    channel (``ms`` in time order), else None."""
    last: dict[int, float] = {}
    for m in ms:
        if m.channel in last and m.t_s - last[m.channel] < MIN_MARKER_HOLD_S - 1e-9:  # float slack
            return m
        last[m.channel] = m.t_s
    return None


def gpio_window(
    trace: Trace,
    n: int,
    *,
    channel: int | None = None,
    mode: Literal["auto", "pulse", "last-pair"] = "auto",
    idle_s: float | None = None,
    min_s: float | None = None,
) -> EnergyWindow:
    """Integrate between in-stream markers; idle windows of ``idle_s`` before and after (if covered)."""
    problems: list[str] = []
    t0, t1 = gpio_bounds(trace, channel, mode)
    idle = [(t0 - idle_s, t0), (t1, t1 + idle_s)] if idle_s else []
    return _finish(trace, t0, t1, n, "gpio", idle, problems, min_s)


def host_window(
    trace: Trace,
    t_start: float,
    t_end: float,
    n: int,
    *,
    idle: list[tuple[float, float]] | None = None,
    max_gap_s: float | None = None,
    min_s: float | None = None,
) -> EnergyWindow:
    """Integrate between two host ``perf_counter`` instants (meters without markers).

    ``idle`` lists host-clock idle intervals (typically one before and one after the window).
    ``max_gap_s``: a gap between readings longer than this inside the window makes it invalid.
    """
    problems: list[str] = []
    if not trace.host_aligned:
        problems.append("trace is on the meter's clock, not the host's: use gpio_window (markers)")
    elif max_gap_s is not None and len(trace.t_s) > 1:
        inside = (trace.t_s >= t_start - max_gap_s) & (trace.t_s <= t_end + max_gap_s)
        ts = trace.t_s[inside]
        if len(ts) > 1 and float(np.max(np.diff(ts))) > max_gap_s:
            problems.append(f"gap of {float(np.max(np.diff(ts))):.3f} s between readings (> {max_gap_s} s)")
    return _finish(trace, t_start, t_end, n, "host-clock", list(idle or []), problems, min_s)
