"""What a target loads: the kind of file each target (or each of its runtimes) consumes.

A target only *declares* its :class:`Artefact`; the variant pipeline
(:func:`harness.pipeline.variants.produce_artefact`) is the one producer: it writes or exports the
file, caches it, and hands the :class:`ArtefactFile` to ``Target.load()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class Artefact(StrEnum):
    """A runnable model format. Values are the variant's file keys (``Variant.path(value)``)."""

    ONNX = "onnx"
    TFLITE = "tflite"
    MCU_BLOB = "blob"  # our int8 MCU container, calibrated on the task's calibration rows


@dataclass(frozen=True)
class ArtefactFile:
    """A produced artefact on disk, ready for ``Target.load()``."""

    kind: Artefact
    path: Path

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()


__all__ = ["Artefact", "ArtefactFile"]
