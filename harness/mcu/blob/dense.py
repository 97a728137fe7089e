"""Dense, CSR and 4x4 block-sparse (BSR4) layers in the MCU blob: storage choice, export, payloads.

A dense IR layer is quantised with TFLite arithmetic and stored in whichever of the three forms the
firmware runs fastest (estimated from instruction counts). Each payload starts with the per-channel
bias/mult/shift arrays that :mod:`.codec` writes; the functions here write and read the rest.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ir.quant import QParams, quantize_dense
from .container import (
    ACC_LIMIT,
    BSR4,
    CSR,
    DENSE,
    BlobError,
    QLayer,
    dense_block_order,
    dense_from_block_order,
    pad4,
    requant_params,
)


def _fold_bias(bias_q: np.ndarray, w_q: np.ndarray, zp_in: int, where: str) -> np.ndarray:
    """bias - zp_in * rowsum(w); checks the int32 accumulator cannot overflow on the DUT."""
    w64 = w_q.astype(np.int64)
    folded = bias_q.astype(np.int64) - int(zp_in) * w64.sum(axis=1)
    worst = np.abs(folded) + 128 * np.abs(w64).sum(axis=1)
    if (worst > ACC_LIMIT).any():
        raise BlobError(
            f"{where}: the int32 accumulator could overflow; the layer is too wide or its bias too large"
        )
    return folded.astype(np.int32)


def estimate_instructions(kind: int, w_q: np.ndarray) -> float:
    """Rough instruction-count model of the firmware kernels (from icount measurements)."""
    out, inp = w_q.shape
    if kind == DENSE:
        return 1.25 * out * inp + 40.0 * out
    if kind == CSR:
        return 5.0 * int(np.count_nonzero(w_q)) + 18.0 * out
    if kind == BSR4:
        if out % 4 or inp % 4:
            return float("inf")
        blocks = w_q.reshape(out // 4, 4, inp // 4, 4).transpose(0, 2, 1, 3)
        nb = int(np.count_nonzero(np.abs(blocks).sum(axis=(2, 3))))
        return 26.0 * nb + 45.0 * out
    raise ValueError(kind)


def choose_storage(w_q: np.ndarray, mode: str = "auto") -> int:
    """``auto`` picks the cheapest of dense/CSR/BSR4 by :func:`estimate_instructions`; a forced
    ``bsr4`` applies where both dims divide by 4 (dense elsewhere)."""
    if mode == "dense":
        return DENSE
    if mode == "csr":
        return CSR
    if mode == "bsr4":
        return DENSE if w_q.shape[0] % 4 or w_q.shape[1] % 4 else BSR4
    if mode != "auto":
        raise BlobError(f"unknown sparse storage {mode!r}; use auto, dense, csr or bsr4")
    if w_q.shape[1] > 65535:
        return DENSE
    costs = {k: estimate_instructions(k, w_q) for k in (DENSE, CSR, BSR4)}
    return min(costs, key=lambda k: (costs[k], k))


def linear_qlayer(
    w_out_in: np.ndarray,
    b: np.ndarray,
    act: str | None,
    qin: QParams,
    qout: QParams,
    *,
    storage: str = "auto",
    where: str = "layer",
) -> QLayer:
    """Quantise one ``y = act(W x + b)`` (W is ``(out, in)``) as a dense/CSR/BSR4 layer."""
    w_q, wq, bias_q = quantize_dense(np.asarray(w_out_in, dtype=np.float64), b, float(qin.scale))
    return int8_linear_qlayer(w_q, bias_q, wq.scale, act, qin, qout, storage=storage, where=where)


def int8_linear_qlayer(
    w_q: np.ndarray,
    bias_q: np.ndarray,
    w_scale: np.ndarray | float,
    act: str | None,
    qin: QParams,
    qout: QParams,
    *,
    storage: str = "auto",
    where: str = "layer",
) -> QLayer:
    """An already-quantised ``y = act(W x + b)`` (int8 ``W`` ``(out, in)`` with zero point 0, int32 bias
    at scale ``s_in * w_scale``) as a dense/CSR/BSR4 layer."""
    s_in, zp_in = float(qin.scale), int(qin.zero_point)
    s_out, zp_out = float(qout.scale), int(qout.zero_point)
    mult, shift = requant_params(s_in * np.asarray(w_scale, dtype=np.float64) / s_out)
    folded = _fold_bias(bias_q, w_q, zp_in, where)
    kind = choose_storage(w_q, storage)
    out, inp = w_q.shape
    params: dict[str, np.ndarray] = {"bias": folded, "mult": mult, "shift": shift}
    aux = 0
    if kind == DENSE:
        params["w"] = w_q
    elif kind == CSR:
        rows, cols = np.nonzero(w_q)
        params["rowptr"] = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=out))]).astype(
            np.uint32
        )
        params["col"] = cols.astype(np.uint16)
        params["val"] = w_q[rows, cols].astype(np.int8)
        aux = len(cols)
    else:
        blocks = w_q.reshape(out // 4, 4, inp // 4, 4).transpose(0, 2, 1, 3)
        nzb = np.abs(blocks.astype(np.int32)).sum(axis=(2, 3)) != 0
        rb, cb = np.nonzero(nzb)
        params["bptr"] = np.concatenate([[0], np.cumsum(nzb.sum(axis=1))]).astype(np.uint32)
        params["bcol"] = cb.astype(np.uint16)
        params["blocks"] = blocks[rb, cb].astype(np.int8)
        aux = len(cb)
    return QLayer(kind, inp, out, 1 if act == "relu" else 0, zp_in, zp_out, params, aux)


def export_dense(layer: Any, qin: QParams, qout: QParams, x_in: np.ndarray, storage: str) -> list[QLayer]:
    """The IR ``dense`` layer as one dense, CSR or BSR4 blob layer (``storage`` as in :func:`choose_storage`)."""
    return [linear_qlayer(layer.w.T, layer.b, layer.act, qin, qout, storage=storage, where="dense")]


def write_dense(q: QLayer) -> bytes:
    """Weights in the kernel's block order (:func:`~.container.dense_block_order`)."""
    return pad4(dense_block_order(q.params["w"]).tobytes())


def read_dense(q: QLayer, mv: memoryview) -> None:
    flat = np.frombuffer(mv, np.int8, q.out_dim * q.in_dim, 0)
    q.params["w"] = dense_from_block_order(flat, q.out_dim, q.in_dim)


def write_csr(q: QLayer) -> bytes:
    """Row pointers (uint32), column indices (uint16) and values (int8), each padded to 4 bytes."""
    p = q.params
    return (
        p["rowptr"].astype("<u4").tobytes()
        + pad4(p["col"].astype("<u2").tobytes())
        + pad4(p["val"].astype(np.int8).tobytes())
    )


def read_csr(q: QLayer, mv: memoryview) -> None:
    out, p, o = q.out_dim, q.params, 0
    p["rowptr"] = np.frombuffer(mv, "<u4", out + 1, o).astype(np.uint32)
    o += 4 * (out + 1)
    p["col"] = np.frombuffer(mv, "<u2", q.aux, o).astype(np.uint16)
    o += (2 * q.aux + 3) & ~3
    p["val"] = np.frombuffer(mv, np.int8, q.aux, o).copy()


def write_bsr4(q: QLayer) -> bytes:
    """Block-row pointers (uint32), block columns (uint16, padded) and the 4x4 int8 blocks."""
    p = q.params
    return (
        p["bptr"].astype("<u4").tobytes()
        + pad4(p["bcol"].astype("<u2").tobytes())
        + p["blocks"].astype(np.int8).tobytes()
    )


def read_bsr4(q: QLayer, mv: memoryview) -> None:
    out, p, o = q.out_dim, q.params, 0
    p["bptr"] = np.frombuffer(mv, "<u4", out // 4 + 1, o).astype(np.uint32)
    o += 4 * (out // 4 + 1)
    p["bcol"] = np.frombuffer(mv, "<u2", q.aux, o).astype(np.uint16)
    o += (2 * q.aux + 3) & ~3
    p["blocks"] = np.frombuffer(mv, np.int8, 16 * q.aux, o).reshape(q.aux, 4, 4).copy()
