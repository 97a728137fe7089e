"""What flows through compressors and into targets: a model in one or more runnable formats."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .network import Network

FORMATS = ("onnx", "tflite", "blob")


@dataclass
class Model:
    """A model being built or compressed.

    Attributes:
        net: the float IR, when we have one (our recipes, fine-tuned variants). ``None`` for a
            user's model file that we cannot convert; then only post-training techniques apply.
        files: runnable encodings by format (``onnx``, ``tflite``, ``blob``) as bytes.
        act_q: int8 activation parameters from calibration (list of :class:`harness.ir.quant.QParams`),
            set by quantising compressors; the MCU blob exporter reads them.
        history: one dict per applied compressor: ``{"technique", "params", "fine_tuned",
            "epochs", "produce_s", "produce_j", "produce_energy_class"}``.
    """

    net: Network | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    act_q: list[Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def with_(self, **changes: Any) -> Model:
        return replace(self, **changes)

    @property
    def technique(self) -> str:
        """``fp32`` for an untouched model, else the chain such as ``prune+int8``."""
        names = [h["technique"] for h in self.history]
        return "+".join(names) if names else "fp32"

    @property
    def fine_tuned(self) -> bool:
        return any(h.get("fine_tuned") for h in self.history)


@dataclass(frozen=True)
class Variant:
    """A finished, stored variant of a task's base model (files on disk, metadata in ``meta``).

    ``meta`` keys: task, name, technique, steps (params per step), fine_tuned, epochs, params, macs,
    model_bytes (per format), base_accuracy (filled by the runner), produce_s, produce_j,
    produce_energy_class, no_file (per runnable format without a file: why).
    """

    task: str
    name: str
    key: str
    files: dict[str, Path]
    meta: dict[str, Any]
    net_path: Path | None = None

    def path(self, fmt: str) -> Path | None:
        return self.files.get(fmt)

    def net(self) -> Network | None:
        return Network.load(self.net_path) if self.net_path else None


def content_key(*parts: Any) -> str:
    """A stable short hash of JSON-able parts (recipe, params, code version)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
