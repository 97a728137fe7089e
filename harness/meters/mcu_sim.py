"""``mcu-sim``: simulated energy for an emulated MCU from its icount instruction counts.

Model (stated in every result): ``E = instructions x CPI x P_run / f_clk`` with the named MCU's run
power and clock from the board profile's ``[energy]`` table (e.g. STM32L4R5ZI, 32.9 mW at 120 MHz).
Class ``simulated``: never ranked against measured energy. Each timed window of the MCU target
carries its instruction count and energy model (``TimedWindow.simulated``); ``end_window`` records the window
(:meth:`McuSimMeter.observe`), and ``stop()`` turns the windows observed since ``start()`` into a trace.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from ..errors import MeterError
from .base import METERS, Meter, MeterConfig, MeterInfo, Trace
from .trace import TimedWindow
from .windows import EnergyWindow


@dataclass(frozen=True)
class SimWindow:
    """One observed window: its host timestamps, instruction count and price per instruction."""

    t_start: float
    t_end: float
    instructions: float
    joules_per_instruction: float


class SimConfig(MeterConfig):
    joules_per_instruction: float | None = Field(
        None, gt=0, description="override the board profile's energy model (J per instruction)"
    )


@METERS.register("mcu-sim")
class McuSimMeter(Meter):
    """Simulated energy of an emulated MCU (see module docstring)."""

    name = "mcu-sim"
    Config = SimConfig
    config: SimConfig

    def __init__(self, config: SimConfig) -> None:  # type: ignore[override]
        super().__init__(config)
        self._t0: float | None = None
        self._seen: list[SimWindow] = []
        self.model = "set by the MCU target (bind_target)"

    def open(self) -> None:
        pass

    def bind_target(self, target_info: dict[str, Any]) -> None:
        self.model = str(target_info.get("energy_model") or self.model)

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._seen = []

    def observe(self, window: TimedWindow) -> None:
        """Record a window that carries simulated-energy information (others are ignored)."""
        sim = window.simulated
        jpi = None if sim is None else self.config.joules_per_instruction or sim.joules_per_instruction
        if sim is not None and jpi is not None:
            self._seen.append(SimWindow(window.t_start, window.t_end, sim.instructions, jpi))

    def end_window(self, window: TimedWindow) -> EnergyWindow:
        """Record ``window`` (its simulated energy comes with it), then stop and price it.

        A window of an MCU whose run power no source gives stays valid (its instruction count and
        simulated latency stand) with its energy unknown: NaN here, ``None`` in the result row.
        """
        sim = window.simulated
        if (
            sim is not None
            and sim.joules_per_instruction is None
            and self.config.joules_per_instruction is None
        ):
            self.stop()
            return EnergyWindow(
                e_win_j=math.nan,
                t_s=window.t_end - window.t_start,
                n=window.n,
                method="icount",
                t0=window.t_start,
                t1=window.t_end,
                n_samples=None,
                dropped=0,
                valid=True,
                notes=["energy unknown: the board profile names no run power for this MCU"],
            )
        self.observe(window)
        return super().end_window(window)

    def stop(self) -> Trace:
        if self._t0 is None:
            raise MeterError("mcu-sim: stop() without start()")
        t0, t1 = self._t0, time.perf_counter()
        self._t0 = None
        wins = [w for w in self._seen if w.t_start >= t0 and w.t_end <= t1]
        self._seen = []
        if not wins:
            return Trace(
                t_s=np.array([t0, t1]),
                energy_j=np.zeros(2),
                valid=False,
                problem="mcu-sim: no emulated MCU window was observed; use it with an emulated mcu target",
            )
        ts, es, e = [t0], [0.0], 0.0
        for w in wins:  # cumulative energy: flat between windows, linear inside each window
            ts += [w.t_start, w.t_end]
            es += [e, e + self._jpi(w) * w.instructions]
            e = es[-1]
        ts.append(t1)
        es.append(e)
        return Trace(
            t_s=np.array(ts),
            energy_j=np.array(es),
            rate_hz=None,
            extra={"windows": [(w.t_start, w.t_end, w.instructions, self._jpi(w)) for w in wins]},
        )

    def _jpi(self, w: SimWindow) -> float:
        return self.config.joules_per_instruction or w.joules_per_instruction

    def window_energy(self, trace: Trace, t_start: float, t_end: float, n: int) -> tuple[float, str]:
        for a, b, instr, jpi in trace.extra.get("windows", []):
            if a == t_start and b == t_end:
                return jpi * instr, "icount"
        raise MeterError("mcu-sim: no observed window matches these timestamps")

    def info(self) -> MeterInfo:
        return MeterInfo(
            energy_class="simulated",
            model=f"mcu-sim: {self.model}",
            boundary="MCU core (modelled from instruction counts)",
            rate_hz=None,
            accuracy="a model: QEMU -icount instructions, not the core's cycles; CPI assumed",
            marker_method="none",
            note="simulated energy; not comparable with measured classes",
        )
