"""The inference runtime contract: load a model file, run a batch."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np

from ..registry import Registry

RUNTIMES: Registry[type[Runtime]] = Registry("runtime")


class InputSpec(NamedTuple):
    """One model input as callers feed it: name, shape (``None`` = dynamic) and the dtype to pass."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype


class Runtime(ABC):
    """One loaded model. ``run`` takes a float32 batch ``(B, ...)`` and returns the first output."""

    name: ClassVar[str]
    format: ClassVar[str]  # file format it loads: "onnx" or "tflite"

    @classmethod
    @abstractmethod
    def version(cls) -> str: ...

    @classmethod
    def available(cls) -> str | None:
        """``None`` if usable here, else the reason and the fix."""
        return None

    @abstractmethod
    def __init__(self, path: Path, *, threads: int, batch: int) -> None: ...

    @abstractmethod
    def run(self, x: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def timed_loop(self, batches: list[np.ndarray], n_calls: int) -> np.ndarray:
        """Run ``n_calls`` calls cycling over prepared batches; return per-call ns (int64)."""

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int | None, ...]: ...

    @property
    @abstractmethod
    def input_dtype(self) -> np.dtype:
        """The dtype of the model's (first) input tensor, as stored in the model file."""

    @property
    def input_specs(self) -> list[InputSpec]:
        """Every input callers feed, with the dtype to feed (default: one input named ``input``)."""
        return [InputSpec("input", self.input_shape, self.input_dtype)]

    def timed_feeds(self, feeds: list[dict[str, np.ndarray]], n_calls: int) -> np.ndarray:
        """Like :meth:`timed_loop` with feed dicts keyed by :attr:`input_specs` names."""
        name = self.input_specs[0].name
        return self.timed_loop([f[name] for f in feeds], n_calls)
