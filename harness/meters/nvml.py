"""NVIDIA NVML total-energy counter (``pip install nvidia-ml-py``; module ``pynvml``), class ``counter``.

``nvmlDeviceGetTotalEnergyConsumption`` returns millijoules since the driver loaded (Volta and newer)
and updates roughly every 10 ms. A poller stamps each reading with ``time.perf_counter()``, giving a
host-clock cumulative ``energy_j`` trace. A counter that goes backwards (driver reload) or a failed read
invalidates the trace. The ``pynvml`` module is injectable (``transport=``) so tests use a fake.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any

import numpy as np

from ..errors import MeterError, MeterUnavailable, StateError
from .base import METERS, Meter, MeterConfig, MeterInfo, Trace
from .poller import Poller

INSTALL = "pip install nvidia-ml-py (frugalbench[nvml])"


def _load() -> Any:
    try:
        return importlib.import_module("pynvml")
    except ImportError as exc:
        raise MeterUnavailable(f"pynvml is not installed; install it with `{INSTALL}`") from exc


def probe(nv: Any, index: int = 0) -> str | None:
    """``None`` if GPU ``index`` has a readable energy counter, else why not (leaves NVML shut down)."""
    try:
        nv.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError subclasses vary by version
        return f"NVML cannot start ({exc}); no NVIDIA driver on this machine"
    try:
        count = nv.nvmlDeviceGetCount()
        if index >= count:
            return f"no NVIDIA GPU with index {index} ({count} found)"
        h = nv.nvmlDeviceGetHandleByIndex(index)
        try:
            nv.nvmlDeviceGetTotalEnergyConsumption(h)
        except Exception as exc:  # noqa: BLE001
            return f"GPU {index} has no total-energy counter ({exc}); it needs a Volta or newer GPU"
        return None
    finally:
        with contextlib.suppress(Exception):
            nv.nvmlShutdown()


class NvmlConfig(MeterConfig):
    """``[meter] kind = "nvml"``."""

    index: int = 0
    poll_hz: float = 50.0
    boundary: str = ""


@METERS.register("nvml")
class Nvml(Meter):
    """One NVIDIA GPU's energy counter."""

    name = "nvml"
    Config = NvmlConfig
    config: NvmlConfig

    def __init__(self, config: NvmlConfig, *, transport: Any = None) -> None:
        super().__init__(config)
        self.nv = transport
        self.handle: Any = None
        self.gpu = ""
        self.poller = Poller(self._read_j, config.poll_hz, max_failures=5, what="counter read")

    @classmethod
    def availability(cls) -> str | None:
        try:
            nv = _load()
        except MeterUnavailable as exc:
            return str(exc)
        return probe(nv)

    def read_mj(self) -> int:
        """The counter now, in mJ."""
        if self.handle is None:
            raise StateError("NVML meter is not open; call open() first")
        return int(self.nv.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    def open(self) -> None:
        self.nv = self.nv or _load()
        why = probe(self.nv, self.config.index)
        if why:
            raise MeterUnavailable(why)
        self.nv.nvmlInit()
        self.handle = self.nv.nvmlDeviceGetHandleByIndex(self.config.index)
        name = self.nv.nvmlDeviceGetName(self.handle)
        self.gpu = name.decode() if isinstance(name, bytes) else str(name)

    def _read_j(self) -> float:
        try:
            return self.read_mj() / 1000.0
        except StateError:
            raise
        except Exception as exc:  # noqa: BLE001 - NVMLError subclasses vary by version
            raise MeterError(f"NVML read failed: {exc}") from exc

    def start(self) -> None:
        if self.handle is None:
            raise StateError("NVML meter is not open; call open() first")
        self.poller.start()

    def stop(self) -> Trace:
        if not self.poller.running:
            raise StateError("NVML stop() without start()")
        self.poller.stop()
        problems = self.poller.problems()
        e = np.asarray(self.poller.v, dtype=np.float64)
        if len(e) > 1 and np.any(np.diff(e) < 0):
            problems.append("energy counter went backwards (driver reloaded?)")
        if len(e) < 2:
            problems.append(f"only {len(e)} counter readings")
        return Trace(
            t_s=np.asarray(self.poller.t), energy_j=e, rate_hz=self.config.poll_hz, host_aligned=True,
            dropped=self.poller.missed, valid=not problems, problem="; ".join(problems),
            extra={"meter": "nvml", "gpu": self.gpu},
        )  # fmt: skip

    def info(self) -> MeterInfo:
        return MeterInfo(
            energy_class="counter",
            model=f"NVML {self.gpu}".strip(),
            boundary=self.config.boundary or "GPU board (NVML total energy)",
            rate_hz=self.config.poll_hz,
            accuracy="NVML counter, ≈10 ms update; board-level, not wall power",
            marker_method="host-clock",
        )

    def close(self) -> None:
        self.poller.stop()
        if self.handle is not None:
            self.handle = None
            try:
                self.nv.nvmlShutdown()
            except Exception as exc:  # noqa: BLE001
                raise MeterError(f"nvmlShutdown failed: {exc}") from exc
