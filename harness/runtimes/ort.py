"""ONNX Runtime on the CPU execution provider."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .base import RUNTIMES, InputSpec, Runtime

# ONNX Runtime's input type strings -> NumPy dtypes (others: float32)
ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
}


@RUNTIMES.register("ort")
class OrtRuntime(Runtime):
    name = "ort"
    format = "onnx"

    @classmethod
    def version(cls) -> str:
        import onnxruntime

        return str(onnxruntime.__version__)

    def __init__(self, path: Path, *, threads: int, batch: int) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        try:
            self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises Fail/InvalidGraph/NotImplemented/InvalidProtobuf...
            msg = str(e).splitlines()[0][:300]
            raise ModelError(
                f"ONNX Runtime cannot load {path}: {msg}. Check that the file is a complete ONNX model "
                "and that its operators are supported by this onnxruntime version."
            ) from None
        self.inputs = [
            (i.name, tuple(d if isinstance(d, int) else None for d in i.shape), i.type)
            for i in self.sess.get_inputs()
        ]
        self.input_name, self._shape, self.input_type = self.inputs[0]
        self.output_name = self.sess.get_outputs()[0].name

    def _single(self) -> None:
        if len(self.inputs) != 1:
            raise ModelError(
                f"model has {len(self.inputs)} inputs {[i[0] for i in self.inputs]}; suites feed one input "
                "tensor. Benchmark it with `frugalbench bench MODEL --shape NAME=DIMS --value NAME=V`."
            )

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return self._shape

    @property
    def input_dtype(self) -> np.dtype:
        return self.input_specs[0].dtype

    @property
    def input_specs(self) -> list[InputSpec]:
        """Every input of the model by name (ONNX models may have several)."""
        return [InputSpec(n, shp, np.dtype(ORT_DTYPES.get(t, np.float32))) for n, shp, t in self.inputs]

    def run(self, x: np.ndarray) -> np.ndarray:
        self._single()
        return np.asarray(self.sess.run([self.output_name], {self.input_name: x})[0])

    def timed_loop(self, batches: list[np.ndarray], n_calls: int) -> np.ndarray:
        # The tight loop is the measurement: prepared feeds, bound method, no allocation but the result.
        self._single()
        return self.timed_feeds([{self.input_name: b} for b in batches], n_calls)

    def timed_feeds(self, feeds: list[dict[str, np.ndarray]], n_calls: int) -> np.ndarray:
        """Like :meth:`timed_loop` with whole feed dicts (models with several inputs)."""
        run, out = self.sess.run, [self.output_name]
        nb = len(feeds)
        clock = time.perf_counter_ns
        ns = np.empty(n_calls, dtype=np.int64)
        for i in range(n_calls):
            f = feeds[i % nb]
            t0 = clock()
            run(out, f)
            ns[i] = clock() - t0
        return ns
