"""The target contract: where a variant runs. Hardware is touched only in ``open()``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from ..ir.model import Variant
from ..meters.trace import SimulatedEnergy
from ..registry import Registry
from .artefact import Artefact, ArtefactFile

TARGETS: Registry[type[Target]] = Registry("target kind")


class TargetConfig(BaseModel):
    """Suite ``[[targets]]`` entry. Subclasses add their own fields; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: str
    kind: str


@dataclass(frozen=True)
class Window:
    """One timed window of ``n`` inferences.

    ``t_start``/``t_end`` are host ``time.perf_counter()`` seconds (for host-clock energy alignment).
    ``latencies_s`` holds per-inference latencies measured by the DUT/agent/local clock (a batch call
    counts as ``batch`` inferences of ``call/batch`` each). ``dut_s`` is the window length measured by
    the DUT's own clock. ``instr_per_inference`` is set under QEMU ``-icount``; ``simulated`` then
    carries the window's instruction count and energy model (read by the ``mcu-sim`` meter).
    """

    n: int
    t_start: float
    t_end: float
    latencies_s: np.ndarray
    dut_s: float
    instr_per_inference: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    simulated: SimulatedEnergy | None = None


class Target(ABC):
    """A place that runs variants: local CPU, Raspberry Pi over SSH, MCU over serial.

    Lifecycle: ``__init__`` stores config only; ``open()`` acquires; ``load()`` a variant's
    artefact; ``predict()`` for the accuracy pass; ``window()`` for timed windows; ``close()``.

    A target never builds, exports or calibrates a model: it declares the :class:`Artefact` it
    consumes (:attr:`artefact`, per runtime where it has several) and ``load()`` receives that file
    from the variant pipeline (:func:`harness.pipeline.variants.produce_artefact`).
    """

    kind: ClassVar[str]
    Config: ClassVar[type[TargetConfig]] = TargetConfig

    def __init__(self, config: TargetConfig) -> None:
        self.config = config

    @classmethod
    def availability(cls) -> str | None:
        """``None`` if this kind can run on this machine, else why not (for ``frugalbench targets``)."""
        return None

    def supports(self, variant: Variant) -> str | None:
        """``None`` if the variant can run here, else the reason (stored as 'skipped')."""
        return None

    @abstractmethod
    def open(self) -> None: ...

    @property
    @abstractmethod
    def artefact(self) -> Artefact:
        """The model format ``load()`` consumes under this target's configuration."""

    @abstractmethod
    def load(self, variant: Variant, artefact: ArtefactFile) -> None:
        """Load ``variant`` from ``artefact`` (a file of kind :attr:`artefact`, produced by the pipeline)."""

    def set_inputs(self, x: np.ndarray) -> None:
        """Rows of the eval set that timed windows cycle through (default: the target picks)."""

    @abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Outputs (logits/scores) for every row of ``x`` (the accuracy pass)."""

    @abstractmethod
    def window(self, duration_s: float, *, warmup_s: float = 0.0) -> Window:
        """Run inferences back to back for about ``duration_s`` and time them."""

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """Provenance: ISA, runtime and version, threads, batch, board, clock offset..."""

    def default_meter(self) -> dict[str, Any] | None:
        """Meter config from the board profile, if the target has one."""
        return None

    def close(self) -> None:
        """Release the target (idempotent)."""

    def __enter__(self) -> Target:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
