"""Intel/AMD RAPL energy counters through Linux powercap (``/sys/class/powercap``), class ``counter``.

Sums the package domains (``intel-rapl:N`` whose ``name`` starts with ``package``), handles counter
wrap-around with ``max_energy_range_uj``, and explains permission errors (kernels ≥ 5.10 make
``energy_uj`` readable by root only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from ..errors import MeterUnavailable
from .base import METERS, Meter, MeterConfig, MeterInfo, Trace
from .poller import Poller

DEFAULT_ROOT = "/sys/class/powercap"


class RaplConfig(MeterConfig):
    root: str = DEFAULT_ROOT
    period_s: float = Field(0.05, gt=0)


class _Domain:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = (path / "name").read_text().strip()
        self.max_uj = int((path / "max_energy_range_uj").read_text())
        self.last = self.read_raw()
        self.total_uj = 0

    def read_raw(self) -> int:
        return int((self.path / "energy_uj").read_text())

    def advance(self) -> int:
        """Accumulate the counter, adding one full range per wrap (polled faster than a wrap period)."""
        raw = self.read_raw()
        delta = raw - self.last
        if delta < 0:
            delta += self.max_uj + 1
        self.last = raw
        self.total_uj += delta
        return self.total_uj


def find_domains(root: str | Path) -> list[Path]:
    """Package-level RAPL zones under ``root``; raises MeterUnavailable with the reason and the fix."""
    root = Path(root)
    if not root.is_dir():
        raise MeterUnavailable(
            f"RAPL: {root} not present (no powercap driver: a VM, a non-x86 CPU, or `modprobe intel_rapl_common` needed)"
        )
    zones = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)
    pkgs = []
    for z in zones:
        try:
            if (z / "name").read_text().strip().startswith("package"):
                pkgs.append(z)
        except OSError:
            continue
    if not pkgs:
        raise MeterUnavailable(f"RAPL: no package domain under {root} (found {[z.name for z in zones]})")
    for z in pkgs:
        try:
            int((z / "energy_uj").read_text())
        except PermissionError:
            raise MeterUnavailable(
                f"RAPL: {z / 'energy_uj'} is readable by root only; run as root or "
                f"`sudo chmod o+r {root}/intel-rapl:*/energy_uj` (reset at reboot)"
            ) from None
        except (OSError, ValueError) as e:
            raise MeterUnavailable(f"RAPL: cannot read {z / 'energy_uj'}: {e}") from None
    return pkgs


@METERS.register("rapl")
class RaplMeter(Meter):
    """CPU package energy from RAPL (``counter`` class; boundary: CPU package(s), not the board)."""

    name = "rapl"
    Config = RaplConfig
    config: RaplConfig

    def __init__(self, config: RaplConfig) -> None:  # type: ignore[override]
        super().__init__(config)
        self._domains: list[_Domain] = []
        self._poller: Poller | None = None

    @classmethod
    def availability(cls, root: str = DEFAULT_ROOT) -> str | None:
        try:
            find_domains(root)
        except MeterUnavailable as e:
            return str(e)
        return None

    def open(self) -> None:
        self._domains = [_Domain(p) for p in find_domains(self.config.root)]
        self._poller = Poller(self._read_j, 1 / self.config.period_s, what="counter read")

    def _read_j(self) -> float:
        return sum(d.advance() for d in self._domains) * 1e-6

    def start(self) -> None:
        if self._poller is None:
            self.open()
        assert self._poller is not None
        self._poller.start()

    def stop(self) -> Trace:
        assert self._poller is not None
        self._poller.stop()
        err, problems = self._poller.error, self._poller.problems()
        return Trace(
            t_s=np.asarray(self._poller.t),
            energy_j=np.asarray(self._poller.v, dtype=np.float64),
            rate_hz=1 / self.config.period_s,
            valid=not problems,
            problem=f"RAPL read failed mid-window: {err}" if err else "; ".join(problems),
        )

    def info(self) -> MeterInfo:
        names = ", ".join(d.name for d in self._domains) or "package"
        return MeterInfo(
            energy_class="counter",
            model="Linux powercap RAPL",
            boundary=f"CPU {names} (not DRAM, not board)",
            rate_hz=1 / self.config.period_s,
            accuracy="model-based counter, ±~5-10 % vs wall power",
            marker_method="host-clock",
        )
