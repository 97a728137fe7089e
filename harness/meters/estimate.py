"""The fallback when nothing measures energy: a labelled ``estimate``, never a measurement.

Model (Green Algorithms, Lannelongue et al. 2021): P = active cores × P_core, P_core = 12 W (their
generic per-core default). Energy per inference is then proportional to latency: it ranks variants
exactly as latency does and must not be compared with measured figures.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from .base import METERS, Meter, MeterConfig, MeterInfo, Trace
from .poller import Poller


class EstimateConfig(MeterConfig):
    watts_per_core: float = Field(12.0, gt=0)
    cores: int | None = Field(None, ge=1, description="active cores; default: the target's threads")


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

    def info(self) -> MeterInfo:
        return MeterInfo(
            energy_class="estimate",
            model=f"Green Algorithms TDP model: {self.cores} core(s) × {self.config.watts_per_core:g} W",
            boundary="CPU cores (modelled)",
            rate_hz=None,
            accuracy="unknown: a model, not a measurement",
            marker_method="none",
            note="energy ∝ latency; not comparable with measured classes",
        )
