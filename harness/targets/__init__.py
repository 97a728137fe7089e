"""Targets, one module each; importing this package registers them."""

from . import (
    local,  # noqa: F401
    mcu,  # noqa: F401
    ssh,  # noqa: F401
)
from .artefact import Artefact, ArtefactFile
from .base import TARGETS, SimulatedEnergy, Target, TargetConfig, Window

__all__ = ["TARGETS", "Artefact", "ArtefactFile", "SimulatedEnergy", "Target", "TargetConfig", "Window"]
