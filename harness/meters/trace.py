"""The data a meter records, and the window it is asked to measure: plain types, no behaviour.

Every other measurement module imports these (``base`` for the meter contract, ``energy`` for the one
integrator, ``windows`` for energy windows), so none of them needs to import another in a circle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

EnergyClass = Literal["external", "counter", "simulated", "estimate"]
MarkerMethod = Literal["gpio", "host-clock", "none"]


@dataclass(frozen=True)
class Marker:
    """An in-stream event (GPIO edge, logic input change) at meter time ``t_s``."""

    t_s: float
    channel: int
    level: int


@dataclass(frozen=True)
class Trace:
    """Samples recorded between ``start()`` and ``stop()``.

    Exactly one of ``power_w`` (instantaneous samples) or ``energy_j`` (a cumulative counter) is set.
    ``t_s`` is in host ``time.perf_counter()`` seconds when ``host_aligned`` is True, else in the
    meter's own clock (then only markers can place a window). ``dropped`` counts lost samples;
    ``valid`` is False if the meter was lost mid-trace (``problem`` says why).
    """

    t_s: np.ndarray
    power_w: np.ndarray | None = None
    energy_j: np.ndarray | None = None
    rate_hz: float | None = None
    markers: list[Marker] = field(default_factory=list)
    dropped: int = 0
    host_aligned: bool = True
    valid: bool = True
    problem: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SimulatedEnergy:
    """What an emulated DUT did in a window, for simulated energy (meter ``mcu-sim``).

    ``instructions`` counted by the emulator (QEMU ``-icount``) over the whole window, priced at
    ``joules_per_instruction`` from the board profile's energy model, which ``model`` describes
    (``None``: the profile names no run power for its MCU, so the window's energy is unknown).
    """

    instructions: float
    joules_per_instruction: float | None
    model: str


class TimedWindow(Protocol):
    """The window a meter is asked to measure, as the target timed it (``targets.base.Window`` is one).

    ``t_start``/``t_end``: host ``time.perf_counter()`` seconds around the ``n`` inferences; ``dut_s``:
    the window's length on the DUT's own clock; ``instr_per_inference``: instructions per inference
    when the DUT runs under an instruction-counting emulator (else None); ``extra``: what else the
    target recorded (an emulated MCU puts the window's total ``instructions`` there).
    Read-only properties so frozen dataclasses satisfy it without importing this module.
    """

    @property
    def n(self) -> int: ...

    @property
    def t_start(self) -> float: ...

    @property
    def t_end(self) -> float: ...

    @property
    def dut_s(self) -> float: ...

    @property
    def instr_per_inference(self) -> float | None: ...

    @property
    def simulated(self) -> SimulatedEnergy | None: ...

    @property
    def extra(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class HostWindow:
    """A :class:`TimedWindow` timed by the host alone (an idle window: nothing runs, ``n`` = 1)."""

    t_start: float
    t_end: float
    n: int = 1
    instr_per_inference: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    simulated: SimulatedEnergy | None = None

    @property
    def dut_s(self) -> float:
        return self.t_end - self.t_start
