"""Run a suite on a labgrid board farm: places, acquire/release, parallel jobs, re-queue on a lost place.

labgrid (the coordinator, exporters and places) lives in its own virtual environment because its
``pyserial-labgrid`` dependency owns the same ``serial`` module as pyserial; frugalbench talks to it
through :mod:`harness.farm.lgbridge` in a subprocess and reaches the boards directly with
``serial.serial_for_url`` (``socket://`` or ``rfc2217://``), so nothing else in the harness changes.
"""

from .errors import (
    CoordinatorUnreachable,
    FarmError,
    LabgridMissing,
    NoFreePlace,
    PlaceHeld,
    PlaceLost,
    PlaceMismatch,
    PlaceNotFound,
)

__all__ = [
    "CoordinatorUnreachable",
    "FarmError",
    "LabgridMissing",
    "NoFreePlace",
    "PlaceHeld",
    "PlaceLost",
    "PlaceMismatch",
    "PlaceNotFound",
]
