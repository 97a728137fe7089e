"""LiteRT (ai-edge-litert) interpreter with XNNPACK; ``tflite-runtime`` as a fallback for 32-bit Pi OS."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from .base import RUNTIMES, InputSpec, Runtime


def _interpreter_cls() -> tuple[Any, str]:
    try:
        import ai_edge_litert
        from ai_edge_litert import interpreter as lt

        return lt.Interpreter, f"ai-edge-litert {getattr(ai_edge_litert, '__version__', '?')}"
    except ImportError:
        pass
    try:
        import tflite_runtime  # type: ignore[import-not-found]
        from tflite_runtime import interpreter as tr  # type: ignore[import-not-found]

        return tr.Interpreter, f"tflite-runtime {tflite_runtime.__version__}"
    except ImportError:
        raise ModelError(
            "no TFLite interpreter: `pip install ai-edge-litert` (or tflite-runtime on 32-bit Pi OS)"
        ) from None


# printed by the C++ runtime on fd 2 when allocate_tensors() applies the default delegate
BANNER = re.compile(r"^INFO: Created TensorFlow Lite (XNNPACK )?delegate for CPU\.\s*$")


@contextmanager
def quiet_banner() -> Iterator[None]:
    """Hold file descriptor 2 in a temporary file while LiteRT builds an interpreter, then write back
    every line except the delegate banner, so warnings and errors still reach stderr.

    LiteRT prints the banner from C++ with no log level to turn it off (``TF_CPP_MIN_LOG_LEVEL`` is
    ignored by ai-edge-litert), so fd 2 itself is redirected. Without a usable fd 2, nothing changes.
    """
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [
                ln
                for ln in held.read().splitlines(keepends=True)
                if not BANNER.match(ln.decode("utf-8", "replace"))
            ]
            if kept:
                os.write(2, b"".join(kept))


@RUNTIMES.register("litert")
class LiteRtRuntime(Runtime):
    name = "litert"
    format = "tflite"

    @classmethod
    def version(cls) -> str:
        from importlib.metadata import PackageNotFoundError, version

        for dist in ("ai-edge-litert", "tflite-runtime"):
            try:
                return f"{dist} {version(dist)}"
            except PackageNotFoundError:
                continue
        return "absent"

    @classmethod
    def available(cls) -> str | None:
        try:
            _interpreter_cls()
        except ModelError as e:
            return str(e)
        return None

    @classmethod
    def tensor_details(cls, path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The input and output tensor details (name, shape, shape_signature, dtype, quantization) of a
        ``.tflite`` file, read without allocating its tensors."""
        interpreter, _ = _interpreter_cls()
        try:
            it = interpreter(model_path=str(path))
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"LiteRT cannot read {path}: {str(e).splitlines()[0][:200]}") from None
        return list(it.get_input_details()), list(it.get_output_details())

    def __init__(self, path: Path, *, threads: int, batch: int) -> None:
        cls, _ = _interpreter_cls()
        try:
            with quiet_banner():
                self._build(cls, path, threads, batch)
        except ModelError:
            raise
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"LiteRT cannot load {path}: {str(e).splitlines()[0][:300]}") from None
        d = self.it.get_input_details()[0]
        self._in, self._dtype = d["index"], d["dtype"]
        self._shape = tuple(int(s) for s in d["shape"])
        self._q = d.get("quantization", (0.0, 0))
        out = self.it.get_output_details()[0]
        self._out = out["index"]
        self._out_q = out.get("quantization", (0.0, 0)) if np.dtype(out["dtype"]).kind in "iu" else None

    def _build(self, cls: Any, path: Path, threads: int, batch: int) -> None:
        """Create the interpreter, resize a dynamic batch and allocate the tensors."""
        self.it = cls(model_path=str(path), num_threads=threads)
        inp = self.it.get_input_details()
        if len(inp) != 1:
            raise ModelError(f"{path} has {len(inp)} inputs; the harness feeds one input tensor")
        shape = list(inp[0]["shape"])
        sig = list(inp[0].get("shape_signature", shape))
        if sig and sig[0] == -1 or (shape and shape[0] != batch and batch > 1):
            shape[0] = batch
            self.it.resize_tensor_input(inp[0]["index"], shape)
        self.it.allocate_tensors()

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return self._shape

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._dtype)

    @property
    def input_specs(self) -> list[InputSpec]:
        """One input; an integer (quantised) input is fed as float32, quantised by :meth:`run`."""
        dt = self.input_dtype
        return [InputSpec("input", self._shape, np.dtype(np.float32) if dt.kind in "iu" else dt)]

    def _cast(self, x: np.ndarray) -> np.ndarray:
        if self._dtype in (np.int8, np.uint8) and x.dtype.kind == "f":
            scale, zp = self._q
            info = np.iinfo(self._dtype)
            return np.clip(np.round(x / scale) + zp, info.min, info.max).astype(self._dtype)
        return x.astype(self._dtype, copy=False)

    def run(self, x: np.ndarray) -> np.ndarray:
        self.it.set_tensor(self._in, self._cast(x))
        self.it.invoke()
        y = np.array(self.it.get_tensor(self._out))
        if self._out_q is not None and self._out_q[0]:  # int8/uint8 output: give real values
            scale, zp = self._out_q
            return ((y.astype(np.float64) - zp) * scale).astype(np.float32)
        return y

    def timed_loop(self, batches: list[np.ndarray], n_calls: int) -> np.ndarray:
        feeds = [self._cast(b) for b in batches]
        set_tensor, invoke, idx = self.it.set_tensor, self.it.invoke, self._in
        nb = len(feeds)
        clock = time.perf_counter_ns
        ns = np.empty(n_calls, dtype=np.int64)
        for i in range(n_calls):
            t0 = clock()
            set_tensor(idx, feeds[i % nb])
            invoke()
            ns[i] = clock() - t0
        return ns
