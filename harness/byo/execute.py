"""The outputs of a model file as given (ONNX Runtime or LiteRT on the CPU), the reference a converted
network must reproduce."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..runtimes.litert import LiteRtRuntime


def run_onnx(model: bytes, x: np.ndarray) -> np.ndarray:
    """The first output of a prepared (one input, one output) ONNX model on every row of ``x``."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 4  # the whole-batch try may fail on a fixed batch size: no error log for it
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    try:
        return np.asarray(sess.run(None, {name: x})[0])
    except Exception:  # noqa: BLE001  fixed batch (e.g. bound state inputs): row by row
        return np.concatenate([sess.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])


def run_tflite(model: bytes, x: np.ndarray) -> np.ndarray:
    """The first output of a ``.tflite`` model on every row of ``x`` (LiteRT, one row per call)."""
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "m.tflite"
        p.write_bytes(model)
        rt = LiteRtRuntime(p, threads=1, batch=1)
        return np.concatenate([rt.run(x[i : i + 1]) for i in range(len(x))])


def run_file(fmt: str, model: bytes, x: np.ndarray) -> np.ndarray:
    """:func:`run_onnx` or :func:`run_tflite` by format (``"onnx"`` or ``"tflite"``)."""
    return run_onnx(model, x) if fmt == "onnx" else run_tflite(model, x)
