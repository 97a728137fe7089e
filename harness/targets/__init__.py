"""Targets, one module each; importing this package registers them."""

from . import (
    local,  # noqa: F401
    mcu,  # noqa: F401
    ssh,  # noqa: F401
)
from .base import TARGETS, Target, TargetConfig, Window

__all__ = ["TARGETS", "Target", "TargetConfig", "Window"]
