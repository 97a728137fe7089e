"""NumPy interpreter of the MCU blob, bit-exact with the firmware's C kernels.

Every layer accumulates in int64 (the firmware's int32 never overflows: the exporter checks it)
and requantises with :func:`harness.mcu.blob.container.requantize`, the same single-rounding arithmetic as
``fb_requant`` in ``boards/firmware/src/kernels.h``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .blob.codec import read_blob
from .blob.container import (
    ARGMAX,
    BSR4,
    BUTTERFLY,
    CSR,
    DENSE,
    MONARCH,
    SOFTMAX,
    BlobError,
    QLayer,
    QModel,
    requantize,
)
from .blob.factored import butterfly_forward, monarch_forward

LayerRunner = Callable[[QLayer, np.ndarray], np.ndarray]
RUNNERS: dict[int, LayerRunner] = {}


def runner(kind: int) -> Callable[[LayerRunner], LayerRunner]:
    def deco(fn: LayerRunner) -> LayerRunner:
        RUNNERS[kind] = fn
        return fn

    return deco


def _finish(q: QLayer, acc: np.ndarray) -> np.ndarray:
    return requantize(acc, q.params["mult"], q.params["shift"], q.zp_out, q.act)


@runner(DENSE)
def _dense(q: QLayer, x: np.ndarray) -> np.ndarray:
    acc = x.astype(np.int64) @ q.params["w"].astype(np.int64).T + q.params["bias"].astype(np.int64)
    return _finish(q, acc)


@runner(CSR)
def _csr(q: QLayer, x: np.ndarray) -> np.ndarray:
    p = q.params
    w = np.zeros((q.out_dim, q.in_dim), np.int64)
    rows = np.repeat(np.arange(q.out_dim), np.diff(p["rowptr"]).astype(np.int64))
    w[rows, p["col"].astype(np.int64)] = p["val"]
    return _finish(q, x.astype(np.int64) @ w.T + p["bias"].astype(np.int64))


@runner(BSR4)
def _bsr4(q: QLayer, x: np.ndarray) -> np.ndarray:
    p = q.params
    w = np.zeros((q.out_dim // 4, q.in_dim // 4, 4, 4), np.int64)
    rb = np.repeat(np.arange(q.out_dim // 4), np.diff(p["bptr"]).astype(np.int64))
    w[rb, p["bcol"].astype(np.int64)] = p["blocks"]
    w2 = w.transpose(0, 2, 1, 3).reshape(q.out_dim, q.in_dim)
    return _finish(q, x.astype(np.int64) @ w2.T + p["bias"].astype(np.int64))


RUNNERS[MONARCH] = monarch_forward
RUNNERS[BUTTERFLY] = butterfly_forward


def run(model: QModel | bytes, x_q: np.ndarray) -> np.ndarray:
    """int8 outputs ``(B, out_dim)`` for int8 inputs ``(B, in_dim)`` (exactly what the DUT returns)."""
    qm = read_blob(model) if isinstance(model, bytes | bytearray) else model
    x = np.atleast_2d(np.asarray(x_q))
    if x.dtype != np.int8 or x.shape[1] != qm.in_dim:
        raise BlobError(f"reference input must be int8 of width {qm.in_dim}, got {x.dtype} {x.shape}")
    for q in qm.layers:
        if q.kind in (SOFTMAX, ARGMAX):
            continue
        fn = RUNNERS.get(q.kind)
        if fn is None:
            raise BlobError(f"the reference interpreter has no layer kind {q.name}")
        x = fn(q, x)
    return x


def predict(model: QModel | bytes, x_float: np.ndarray) -> np.ndarray:
    """Float in, dequantised float out (what the accuracy pass compares)."""
    qm = read_blob(model) if isinstance(model, bytes | bytearray) else model
    return qm.dequantize_output(run(qm, qm.quantize_input(x_float)))


def results_vector(qm: QModel, out_q: np.ndarray) -> np.ndarray:
    """The float vector the firmware prints in ``m-results-[...]`` (softmax/argmax/dequantised)."""
    v = qm.dequantize_output(np.asarray(out_q, dtype=np.int8)).astype(np.float64)
    if qm.head == "softmax":
        e = np.exp(v - v.max())
        return e / e.sum()
    if qm.head == "argmax":
        one = np.zeros_like(v)
        one[int(np.argmax(v))] = 1.0
        return one
    return v
