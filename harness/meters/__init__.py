"""Power and energy meters. Importing this package registers every driver in ``METERS``."""

from . import estimate, fnb58, ina2xx, joulescope, lpm01a, mcu_sim, nvml, otii, pi5_pmic, ppk2, rapl, um34c  # noqa: F401
from .base import METERS, Marker, Meter, MeterConfig, MeterInfo, Trace

__all__ = ["METERS", "Marker", "Meter", "MeterConfig", "MeterInfo", "Trace"]
