"""Meters, one module each; importing this package registers them."""

from . import estimate, rapl  # noqa: F401
from .base import METERS, Meter, MeterConfig, MeterInfo, Trace

__all__ = ["METERS", "Meter", "MeterConfig", "MeterInfo", "Trace"]
