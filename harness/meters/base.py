"""The meter contract and its typed trace.

Every serial driver opens its port with ``serial.serial_for_url(url)`` so an emulator on a pty or
``socket://`` is indistinguishable from hardware. Classes of measurement are never mixed in a ranking.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from ..registry import Registry

if TYPE_CHECKING:
    from ..targets.base import Window

METERS: Registry[type[Meter]] = Registry("meter")

EnergyClass = Literal["external", "counter", "simulated", "estimate"]
MarkerMethod = Literal["gpio", "host-clock", "none"]


class MeterConfig(BaseModel):
    """Suite/board ``meter`` table. Subclasses add fields (``url``, ``baud``...)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    kind: str


@dataclass(frozen=True)
class MeterInfo:
    """What a meter measures and how well."""

    energy_class: EnergyClass
    model: str
    boundary: str  # what is measured: "cpu package", "board 5 V input", "MCU VDD"...
    rate_hz: float | None
    accuracy: str
    marker_method: MarkerMethod
    note: str = ""


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


class Meter(ABC):
    """A power or energy source. ``__init__`` stores config; ``open()`` touches hardware."""

    name: ClassVar[str]
    Config: ClassVar[type[MeterConfig]] = MeterConfig

    def __init__(self, config: MeterConfig) -> None:
        self.config = config

    @classmethod
    def availability(cls) -> str | None:
        """``None`` if it can be used here without further configuration, else why not."""
        return None

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def start(self) -> None:
        """Begin recording a trace."""

    @abstractmethod
    def stop(self) -> Trace:
        """End recording and return the trace."""

    @abstractmethod
    def info(self) -> MeterInfo: ...

    def bind_target(self, target_info: dict[str, Any]) -> None:
        """Learn about the target it measures (threads, board); estimators use it. Default: nothing."""

    def observe(self, window: Window) -> None:
        """Called with each timed window the target returned, before ``stop()``. Default: nothing;
        meters that price the window from what the DUT reports (``mcu-sim``) record it here."""

    def window_energy(self, trace: Trace, t_start: float, t_end: float, n: int) -> tuple[float, str]:
        """Energy (J) of one timed window and the marker method used.

        Default: host-clock alignment, integrating the trace between the window's host timestamps.
        Meters with in-stream markers (GPIO events) or a model of their own override it.
        """
        from .energy import window_energy

        return window_energy(trace, t_start, t_end), "host-clock"

    def close(self) -> None:
        """Release the meter (idempotent)."""

    def __enter__(self) -> Meter:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
