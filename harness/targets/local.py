"""The local CPU: ONNX Runtime or LiteRT in this process, optionally pinned to cores.

Its provenance (:meth:`CpuTarget.info`) holds the host summary, the runtime and its settings, the
versions of numpy, onnxruntime, ai-edge-litert and frugalbench, and the CPU state read when the
first timed window of the loaded variant starts (cpufreq governor, current and maximum frequency of
the cores this process runs on, load average): None where the system does not expose it, and None
before any window was timed (a job skipped or failed before measuring).
"""

from __future__ import annotations

import os
import time
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ..errors import TargetError
from ..ir.model import Variant
from ..runtimes import RUNTIMES, Runtime
from ..sysinfo import CPU_STATE_KEYS, cpu_state, host_summary, package_versions
from .artefact import Artefact, ArtefactFile
from .base import TARGETS, Target, TargetConfig, Window


class CpuConfig(TargetConfig):
    runtime: Literal["ort", "litert"] = "ort"
    threads: int = Field(1, ge=1)
    batch: int = Field(1, ge=1)
    cores: list[int] | None = Field(None, description="pin this process to these CPU cores")


@TARGETS.register("cpu")
class CpuTarget(Target):
    """Runs variants in-process. Latency per inference = call time / batch."""

    kind = "cpu"
    Config = CpuConfig
    config: CpuConfig

    def __init__(self, config: CpuConfig) -> None:  # type: ignore[override]
        super().__init__(config)
        self.rt: Runtime | None = None
        self._batches: list[np.ndarray] = []
        self._old_affinity: set[int] | None = None
        self._state: dict[str, Any] | None = None  # CPU state at the start of the first timed window

    @classmethod
    def availability(cls) -> str | None:
        return None

    @property
    def artefact(self) -> Artefact:
        """The file format of the configured runtime (ONNX for ``ort``, TFLite for ``litert``)."""
        return Artefact(RUNTIMES.get(self.config.runtime).format)

    def supports(self, variant: Variant) -> str | None:
        rt = RUNTIMES.get(self.config.runtime)
        reason = rt.available()
        if reason:
            return reason
        if variant.path(self.artefact.value) is None:
            why = (variant.meta.get("no_file") or {}).get(rt.format)
            if why is None:  # built before the reason was recorded: say what the variant has
                have = ", ".join(f".{f}" for f in sorted(variant.files)) or "no file"
                why = f"the variant has {have} only"
            return f"variant has no .{rt.format} file: {why}"
        return None

    def open(self) -> None:
        if self.config.cores and hasattr(os, "sched_setaffinity"):
            try:
                self._old_affinity = os.sched_getaffinity(0)
                os.sched_setaffinity(0, set(self.config.cores))
            except OSError as e:
                raise TargetError(
                    f"cannot pin to cores {self.config.cores}: {e}; list cores with `nproc`"
                ) from e

    def load(self, variant: Variant, artefact: ArtefactFile) -> None:
        if artefact.kind is not self.artefact:
            raise TargetError(
                f"variant {variant.name}: runtime {self.config.runtime} loads {self.artefact.value} files, "
                f"was given {artefact.kind.value}"
            )
        cls = RUNTIMES.get(self.config.runtime)
        self.rt = cls(artefact.path, threads=self.config.threads, batch=self.config.batch)
        self._state = None

    def _runtime(self) -> Runtime:
        if self.rt is None:
            raise TargetError("no model loaded: call load(variant) first")
        return self.rt

    def set_inputs(self, x: np.ndarray) -> None:
        """Rows that timed windows cycle through (the eval set)."""
        b = self.config.batch
        n = max(1, min(len(x) // b, 64))
        self._batches = [np.ascontiguousarray(x[i * b : (i + 1) * b], dtype=np.float32) for i in range(n)]
        if len(self._batches[0]) < b:  # fewer rows than one batch: repeat rows
            reps = -(-b // len(x))
            self._batches = [np.ascontiguousarray(np.tile(x, (reps, 1))[:b], dtype=np.float32)]

    def predict(self, x: np.ndarray) -> np.ndarray:
        rt = self._runtime()
        b = self.config.batch
        outs = []
        for i in range(0, len(x), b):
            chunk = np.ascontiguousarray(x[i : i + b], dtype=np.float32)
            n = len(chunk)
            if n < b:  # pad the last batch to the model's fixed batch size
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], b - n, axis=0)])
            outs.append(rt.run(chunk)[:n])
        return np.concatenate(outs)

    def window(self, duration_s: float, *, warmup_s: float = 0.0) -> Window:
        rt = self._runtime()
        if not self._batches:
            raise TargetError("call set_inputs(x) before timing windows")
        if self._state is None:  # the measurement of this variant starts here
            self._state = cpu_state()
        probe = rt.timed_loop(self._batches, 20)
        per_call = max(float(np.median(probe)) * 1e-9, 1e-7)
        if warmup_s > 0:
            rt.timed_loop(self._batches, max(1, int(warmup_s / per_call)))
        n_calls = max(10, int(duration_s / per_call))
        t0 = time.perf_counter()
        ns = rt.timed_loop(self._batches, n_calls)
        t1 = time.perf_counter()
        b = self.config.batch
        lat = np.repeat(ns * 1e-9 / b, b) if b > 1 else ns * 1e-9
        return Window(n=n_calls * b, t_start=t0, t_end=t1, latencies_s=lat, dut_s=float(ns.sum()) * 1e-9)

    def info(self) -> dict[str, Any]:
        cls = RUNTIMES.get(self.config.runtime)
        return {
            **host_summary(),
            "target": self.config.name,
            "target_kind": "cpu",
            "runtime": self.config.runtime,
            "runtime_version": cls.version(),
            "threads": self.config.threads,
            "batch": self.config.batch,
            "cores": self.config.cores,
            "clock": "host perf_counter_ns",
            **(self._state or dict.fromkeys(CPU_STATE_KEYS)),
            "packages": package_versions(),
        }

    def close(self) -> None:
        self.rt = None
        if self._old_affinity is not None:
            os.sched_setaffinity(0, self._old_affinity)
            self._old_affinity = None
