"""Raspberry Pi 5 PMIC ADCs through ``vcgencmd pmic_read_adc`` (class ``counter``, secondary only).

Each line reads ``VDD_CORE_A current(7)=1.54489000A`` or ``VDD_CORE_V volt(15)=0.88725180V``; power is
Σ V·I over the rails that report both (``EXT5V_V`` is voltage only and is kept in ``extra``). It misses
PMIC conversion losses and 5 V USB loads, so it is a labelled secondary figure beside an external meter.
Each reading is a subprocess plus a firmware mailbox round trip. ``command`` may prefix ``ssh pi``.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from ..errors import MeterUnavailable, ProtocolError, StateError
from ._common import MeterProtocolError
from .base import METERS, Meter, MeterConfig, MeterInfo, Trace
from .poller import Poller

_LINE = re.compile(r"^\s*([A-Z0-9_]+)_([AV])\s+(current|volt)\(\d+\)=([-+0-9.eE]+)([AV])\s*$")


def parse_pmic(text: str) -> dict[str, dict[str, float]]:
    """``{rail: {"A": amps, "V": volts}}`` from ``pmic_read_adc`` output (pure; ignores other lines).

    Raises ProtocolError if no line matches.
    """
    rails: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        rail, kind, _, value, unit = m.groups()
        if kind != unit:
            continue
        try:
            v = float(value)
        except ValueError:
            continue
        rails.setdefault(rail, {})[kind] = v
    if not rails:
        raise MeterProtocolError(
            f"no PMIC ADC lines in vcgencmd output {text[:60]!r}; is this a Raspberry Pi 5?"
        )
    return rails


def rails_power(rails: dict[str, dict[str, float]]) -> float:
    """Σ V·I over rails with both readings."""
    return sum(r["A"] * r["V"] for r in rails.values() if "A" in r and "V" in r)


class PmicConfig(MeterConfig):
    """``[meter] kind = "pi5_pmic"``."""

    command: list[str] = ["vcgencmd", "pmic_read_adc"]
    poll_hz: float = 2.0
    timeout_s: float = 5.0
    boundary: str = ""


@METERS.register("pi5_pmic")
class Pi5Pmic(Meter):
    """Pi 5 PMIC rail sum, polled."""

    name = "pi5_pmic"
    Config = PmicConfig
    config: PmicConfig

    def __init__(self, config: PmicConfig) -> None:
        super().__init__(config)
        self._opened = False
        self._ext5v: list[float] = []
        self.poller = Poller(self._power, config.poll_hz, max_failures=10, what="reading")

    @classmethod
    def availability(cls) -> str | None:
        if shutil.which("vcgencmd") is None:
            return "vcgencmd not found: the PMIC ADCs exist only on a Raspberry Pi 5 (Raspberry Pi OS)"
        try:
            parse_pmic(subprocess.run(["vcgencmd", "pmic_read_adc"], capture_output=True, text=True,
                                      timeout=5, check=False).stdout)  # fmt: skip
        except (ProtocolError, OSError, subprocess.SubprocessError) as exc:
            return f"vcgencmd pmic_read_adc gives no readings ({exc}); Pi 4 and earlier have no PMIC ADCs"
        return None

    def read(self) -> dict[str, dict[str, float]]:
        """One ``pmic_read_adc`` call, parsed."""
        try:
            out = subprocess.run(self.config.command, capture_output=True, text=True,
                                 timeout=self.config.timeout_s, check=False)  # fmt: skip
        except (OSError, subprocess.SubprocessError) as exc:
            raise MeterUnavailable(f"cannot run {' '.join(self.config.command)}: {exc}") from exc
        if out.returncode != 0:
            raise MeterProtocolError(
                f"{' '.join(self.config.command)} exited {out.returncode}: {out.stderr.strip()[:100]}"
            )
        return parse_pmic(out.stdout)

    def open(self) -> None:
        self.read()
        self._opened = True

    def _power(self) -> float:
        rails = self.read()
        if "EXT5V" in rails and "V" in rails["EXT5V"]:
            self._ext5v.append(rails["EXT5V"]["V"])
        return rails_power(rails)

    def start(self) -> None:
        if not self._opened:
            raise StateError("PMIC meter is not open; call open() first")
        self._ext5v = []
        self.poller.start()

    def stop(self) -> Trace:
        if not self.poller.running:
            raise StateError("PMIC stop() without start()")
        self.poller.stop(self.config.timeout_s + 1)
        return self.poller.power_trace({"meter": "pi5_pmic", "ext5v_v": self._ext5v})

    def info(self) -> MeterInfo:
        return MeterInfo(
            energy_class="counter",
            model="Raspberry Pi 5 PMIC ADCs",
            boundary=self.config.boundary
            or "PMIC rails Σ V·I (excludes conversion losses and 5 V USB loads)",
            rate_hz=self.config.poll_hz,
            accuracy="secondary estimate; rail readings drift with temperature",
            marker_method="host-clock",
        )

    def close(self) -> None:
        self.poller.stop()
        self._opened = False
