"""The meter contract.

Every serial driver opens its port with ``serial.serial_for_url(url)`` so an emulator on a pty or
``socket://`` is indistinguishable from hardware. Classes of measurement are never mixed in a ranking.

Measuring one timed window (Zeus-style begin/end)::

    meter.begin_window()                   # start recording
    w = target.window(...)                 # the target times n inferences
    ew = meter.end_window(w)               # stop; the window it measured is passed in, never looked up

``end_window`` = ``stop()`` then ``energy_window(trace, w)``; a meter that computes a window's energy
from the window itself (an instruction-count model) overrides ``energy_window`` or ``end_window``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ..registry import Registry
from .energy import window_energy
from .trace import EnergyClass, Marker, MarkerMethod, TimedWindow, Trace
from .windows import EnergyWindow, timed_window

METERS: Registry[type[Meter]] = Registry("meter")


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
    # A modelled meter's constant power (W): energy per inference is then this × the latency p50,
    # the very statistic the row reports as latency, so the two figures can never disagree.
    model_power_w: float | None = None


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

    def window_energy(self, trace: Trace, t_start: float, t_end: float, n: int) -> tuple[float, str]:
        """Energy (J) of one timed window and the marker method used.

        Default: host-clock alignment, integrating the trace between the window's host timestamps.
        Meters with in-stream markers (GPIO events) or a model of their own override it.
        Raises ValueError if the trace does not cover the window.
        """
        return window_energy(trace, t_start, t_end), "host-clock"

    def begin_window(self) -> None:
        """Start measuring one timed window (default: ``start()``)."""
        self.start()

    def end_window(self, window: TimedWindow) -> EnergyWindow:
        """Stop measuring and return the energy of ``window``, the target's timed window."""
        return self.energy_window(self.stop(), window)

    def energy_window(self, trace: Trace, window: TimedWindow) -> EnergyWindow:
        """``window``'s energy from ``trace``: invalid (saying why) if the trace is invalid, lost
        samples or does not cover the window. Errors of the link (MeterError, WindowInvalid) propagate.
        """
        if not trace.valid or trace.dropped:
            return timed_window(
                trace, window, None, "none", trace.problem or f"{trace.dropped} samples dropped"
            )
        try:
            e, method = self.window_energy(trace, window.t_start, window.t_end, window.n)
        except ValueError as exc:  # the trace does not cover the window
            return timed_window(
                trace, window, None, "none", f"energy window not covered by the meter trace: {exc}"
            )
        return timed_window(trace, window, e, method)

    def close(self) -> None:
        """Release the meter (idempotent)."""

    def __enter__(self) -> Meter:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["METERS", "EnergyClass", "Marker", "MarkerMethod", "Meter", "MeterConfig", "MeterInfo", "Trace"]
