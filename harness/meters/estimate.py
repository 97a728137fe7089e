"""The fallback when nothing measures energy: a labelled ``estimate``, never a measurement.

Model (Green Algorithms, Lannelongue et al. 2021): P = active cores × P_core, P_core = 12 W (their
generic per-core default). A window's energy is priced from the same per-inference statistic as
latency, never from the window's wall time: ``E_win = P × median(window latencies) × n``, so energy
per inference is ``P × p50`` and moves with latency and nothing else (preemption of a shared host
between inferences, which stretches the wall time but not the inferences, is not priced). It ranks
variants exactly as latency does and must not be compared with measured figures.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from .base import METERS, Meter, MeterConfig, MeterInfo, Trace
from .poller import Poller
from .trace import TimedWindow
from .windows import EnergyWindow, timed_window


class EstimateConfig(MeterConfig):
    watts_per_core: float = Field(12.0, gt=0)
    cores: int | None = Field(None, ge=1, description="active cores; default: the target's threads")


def per_inference_s(window: TimedWindow) -> float | None:
    """The window's median per-inference latency (the latency figure's statistic), else the DUT
    clock's mean; None when the window says neither."""
    lat = getattr(window, "latencies_s", None)  # targets.base.Window carries it; the protocol does not
    if lat is not None and len(lat):
        return float(np.median(np.asarray(lat, dtype=np.float64)))
    if window.n > 0 and window.dut_s > 0:
        return window.dut_s / window.n
    return None


@METERS.register("estimate")
class EstimateMeter(Meter):
    name = "estimate"
    Config = EstimateConfig
    config: EstimateConfig

    def __init__(self, config: EstimateConfig) -> None:  # type: ignore[override]
        super().__init__(config)
        self.cores = config.cores or 1
        self._poller = Poller(lambda: 0.0, 1.0, what="time stamp")

    def bind_target(self, target_info: dict[str, Any]) -> None:
        if self.config.cores is None:
            self.cores = int(target_info.get("threads") or 1)

    @property
    def power_w(self) -> float:
        return self.cores * self.config.watts_per_core

    def open(self) -> None:
        pass

    def start(self) -> None:
        self._poller.start()

    def stop(self) -> Trace:
        self._poller.stop()
        t = np.asarray(self._poller.t)
        return Trace(t_s=t, power_w=np.full(len(t), self.power_w), rate_hz=None)

    def energy_window(self, trace: Trace, window: TimedWindow) -> EnergyWindow:
        """``P × median latency × n`` (see the module docstring); invalid if the window has no timing."""
        per_inf = per_inference_s(window)
        if per_inf is None:
            return timed_window(trace, window, None, "none", "estimate: the window carries no latencies")
        return timed_window(trace, window, self.power_w * per_inf * window.n, "none")

    def info(self) -> MeterInfo:
        return MeterInfo(
            energy_class="estimate",
            model=f"Green Algorithms TDP model: {self.cores} core(s) × {self.config.watts_per_core:g} W",
            boundary="CPU cores (modelled)",
            rate_hz=None,
            accuracy="unknown: a model, not a measurement",
            marker_method="none",
            note="energy = cores × W per core × median latency; ∝ latency, not comparable with measured classes",
            model_power_w=self.power_w,
        )
