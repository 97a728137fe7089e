"""The timed windows of one job: an idle window, a warm-up, then windows until the median is precise.

Windows repeat until the 95 % CI half-width of the median latency is within the suite's target, or
``max_windows``, or the time budget. Each window's energy is an :class:`EnergyWindow`: the meter
begins a window, the target times ``n`` inferences, and the meter ends the window given the target's
:class:`Window` (its host instants, ``n``, DUT time, instruction count) as an argument. A window the
meter or target marks invalid is kept as an invalid row and re-run (at most ``MAX_RETRIES`` times in
a row), never stored as good; a meter whose link dropped is reopened first.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np

from ..errors import FrugalbenchError, MeterError, TargetError, WindowInvalid
from ..meters.base import Meter
from ..meters.trace import HostWindow
from ..meters.windows import EnergyWindow
from ..results.store import WindowRow
from ..stats import median_ci, rel_half_width
from ..suite import RunRules
from ..targets.base import Target, Window

MAX_RETRIES = 3


@dataclass(frozen=True)
class Measurement:
    """What the windows of one job gave.

    ``good``: the valid windows with their energy; ``rows``: every window run, invalid ones included,
    as stored; ``p_idle_w``: mean power of the idle window (None without one); ``ci_rel``: the relative
    95 % CI half-width of the median latency over the good windows (inf if never computed).
    """

    good: list[tuple[Window, EnergyWindow]]
    rows: list[WindowRow]
    p_idle_w: float | None
    ci_rel: float


def idle_power(meter: Meter, idle_s: float) -> float:
    """Mean power (W) over ``idle_s`` seconds with nothing running; raises WindowInvalid if invalid."""
    meter.begin_window()
    t0 = time.perf_counter()
    time.sleep(idle_s)
    t1 = time.perf_counter()
    return meter.end_window(HostWindow(t0, t1)).require_valid().mean_power_w


def timed_window(
    target: Target, meter: Meter, window_s: float, warmup_s: float
) -> tuple[Window | None, EnergyWindow | None, str]:
    """One timed window measured by ``meter``: the target's window, its energy, and why it is
    invalid ("" if valid). A lost link or a failed window gives no window and no energy."""
    try:
        meter.begin_window()
        try:
            w = target.window(window_s, warmup_s=warmup_s)
        except Exception:
            _abandon(meter)
            raise
        ew = meter.end_window(w)
    except (WindowInvalid, MeterError, OSError) as e:  # a lost link mid-window: re-run it
        if isinstance(e, (MeterError, OSError)):
            _reopen(meter)
        return None, None, str(e)
    if not ew.valid and "connection lost" in ew.problem:
        _reopen(meter)
    return w, ew, "" if ew.valid else ew.problem


def _reopen(meter: Meter) -> None:
    """A meter whose link dropped is closed and opened again, so the re-run can measure (if it cannot be
    reopened, the next window fails and says why)."""
    with contextlib.suppress(FrugalbenchError, OSError):
        meter.close()
        meter.open()


def _abandon(meter: Meter) -> None:
    """Stop a window the target failed, so the next one starts from a stopped meter."""
    with contextlib.suppress(FrugalbenchError, OSError):
        meter.stop()


def _invalid_row(idx: int, w: Window | None, problem: str) -> WindowRow:
    if w is None:
        return WindowRow(idx, 0, 0.0, None, None, None, False, problem)
    return WindowRow(idx, w.n, w.t_end - w.t_start, w.dut_s, None, None, False, problem)


def _good_row(idx: int, w: Window, ew: EnergyWindow) -> WindowRow:
    extra = {"instr_per_inference": w.instr_per_inference, **w.extra}
    p50 = float(np.median(w.latencies_s))
    return WindowRow(idx, w.n, w.t_end - w.t_start, w.dut_s, p50, ew.e_win_j, True, "", extra)


def measure(target: Target, meter: Meter, rules: RunRules) -> Measurement:
    """Run the idle window (if ``rules.idle_s``) and the timed windows of one loaded variant.

    Raises TargetError after more than ``MAX_RETRIES`` invalid windows in a row.
    """
    p_idle = idle_power(meter, rules.idle_s) if rules.idle_s > 0 else None
    rows: list[WindowRow] = []
    good: list[tuple[Window, EnergyWindow]] = []
    deadline = time.monotonic() + rules.time_budget_s
    retries = 0
    ci = float("inf")
    while len(good) < rules.max_windows:
        w, ew, problem = timed_window(target, meter, rules.window_s, rules.warmup_s if not rows else 0.0)
        if problem or w is None or ew is None:
            rows.append(_invalid_row(len(rows), w, problem))
            retries += 1
            if retries > MAX_RETRIES:
                raise TargetError(f"{retries} invalid windows in a row, last: {problem}")
            continue
        retries = 0
        rows.append(_good_row(len(rows), w, ew))
        good.append((w, ew))
        if len(good) >= rules.min_windows:
            meds = np.array([float(np.median(g.latencies_s)) for g, _ in good])
            ci = rel_half_width(*median_ci(meds, seed=rules.seed))
            if ci <= rules.ci_target or time.monotonic() > deadline:
                break
    return Measurement(good, rows, p_idle, ci)
