"""One exception hierarchy. Every message says what is wrong and how to fix it."""

from __future__ import annotations


class FrugalbenchError(Exception):
    """Base of every error the CLI prints without a traceback."""


class ConfigError(FrugalbenchError):
    """A suite, board profile or option is invalid."""


class ModelError(FrugalbenchError):
    """A model file is corrupt, truncated or uses something we cannot run."""


class DatasetError(FrugalbenchError):
    """A dataset is missing arrays, has NaNs, wrong shapes or labels."""


class CompressionError(FrugalbenchError):
    """A compressor cannot be applied to this model (says which layer and what would work)."""


class TargetError(FrugalbenchError):
    """A target failed to open, load a model or run a window."""


class TargetUnavailable(TargetError):
    """A target cannot run on this machine (the message says why)."""


class WindowInvalid(TargetError):
    """A measurement window must not be stored (dropped samples, lost link, reset DUT...)."""


class MeterError(FrugalbenchError):
    """A power meter is absent, unreadable or sent something we cannot parse."""


class MeterUnavailable(MeterError):
    """A meter cannot be used on this machine (the message says why)."""


class ProtocolError(FrugalbenchError):
    """A peer (DUT, meter, agent) sent a reply that breaks its protocol."""


class StoreError(FrugalbenchError):
    """The results database cannot be used (newer schema, corrupt file...)."""


class StateError(FrugalbenchError):
    """A method was called in the wrong lifecycle state."""
