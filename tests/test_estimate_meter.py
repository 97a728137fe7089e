"""The estimate meter prices a window from its median latency, not its wall time, so its energy per
inference is cores × W per core × p50 and moves with latency only."""

from __future__ import annotations

import time

import numpy as np
import pytest

from harness.meters.base import Trace
from harness.meters.estimate import EstimateConfig, EstimateMeter
from harness.targets.base import Window


def _window(latencies: list[float], t0: float, t1: float) -> Window:
    lat = np.asarray(latencies)
    return Window(n=len(lat), t_start=t0, t_end=t1, latencies_s=lat, dut_s=float(lat.sum()))


def test_energy_is_power_times_median_latency_whatever_the_wall_time() -> None:
    m = EstimateMeter(EstimateConfig(kind="estimate"))
    m.bind_target({"threads": 2})
    m.start()
    time.sleep(0.05)
    tr = m.stop()
    t0, t1 = float(tr.t_s[0]), float(tr.t_s[-1])
    lat = [1e-5] * 99 + [5e-3]  # one inference preempted for 5 ms
    calm = m.energy_window(tr, _window(lat, t0, t0 + 0.006))
    busy = m.energy_window(tr, _window(lat, t0, t1))  # the host was preempted between calls
    assert calm.valid and busy.valid
    assert calm.e_per_inf_j == pytest.approx(24.0 * 1e-5) == busy.e_per_inf_j
    assert busy.t_s == pytest.approx(t1 - t0) and busy.t_s > 0.04  # the window stays as timed


def test_a_window_without_timing_is_invalid() -> None:
    m = EstimateMeter(EstimateConfig(kind="estimate", cores=1))
    w = Window(n=10, t_start=0.0, t_end=1.0, latencies_s=np.array([]), dut_s=0.0)
    ew = m.energy_window(_trace(m), w)
    assert not ew.valid and "no latencies" in ew.problem


def _trace(m: EstimateMeter) -> Trace:
    m.start()
    return m.stop()
