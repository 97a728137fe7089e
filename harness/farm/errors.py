"""Farm errors: each says what is wrong with the farm and what to do about it."""

from __future__ import annotations

from ..errors import ConfigError, FrugalbenchError, TargetError


class FarmError(FrugalbenchError):
    """The board farm cannot run the jobs (coordinator, places, labgrid install)."""


class LabgridMissing(FarmError):
    """No Python with labgrid was found."""


class CoordinatorUnreachable(FarmError):
    """The labgrid coordinator does not answer."""


class PlaceNotFound(ConfigError):
    """A place named in the farm profile does not exist on the coordinator."""


class PlaceMismatch(ConfigError):
    """A place's resources do not fit the board profile it is used for."""


class PlaceHeld(FarmError):
    """Someone else holds the place (labgrid refused the acquire)."""

    def __init__(self, message: str, holder: str = "") -> None:
        super().__init__(message)
        self.holder = holder


class NoFreePlace(FarmError):
    """No free place of a needed board kind appeared within the wait timeout."""


class PlaceLost(TargetError):
    """A place stopped working mid-job (exporter gone, board reset, serial link dropped)."""
