"""Byte-level meter emulators (pty or ``socket://``) and API-level fakes (HID, Joulescope driver)."""

from . import ina2xx, lpm01a, otii, ppk2, um34c  # noqa: F401
from .base import EMULATORS, EmulatorServer, Faults, MeterEmulator
from .profile import Profile

__all__ = ["EMULATORS", "EmulatorServer", "Faults", "MeterEmulator", "Profile"]
