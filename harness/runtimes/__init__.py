"""Inference runtimes; importing this package registers them."""

from . import litert, ort  # noqa: F401
from .base import RUNTIMES, InputSpec, Runtime

__all__ = ["RUNTIMES", "InputSpec", "Runtime"]
