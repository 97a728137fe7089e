"""Monarch and butterfly layers in the MCU blob (export, packing, bit-exact NumPy forward).

Both keep their intermediate activations in **int16 with a power-of-two scale** (one rounding shift
per factor, chosen on calibration data so the largest accumulator fits), so only the layer output is
requantised per channel to int8. Weights are int8: Monarch factor 1 symmetric per tensor (its outputs
share one scale), factor 2 per output channel; butterfly twiddles symmetric per level.

Parametrisations read from :mod:`harness.ir.layers.monarch` and :mod:`harness.ir.layers.butterfly`.
A Monarch whose block sizes are not multiples of 4 is written as a dense layer (same function, no
speed-up), which :func:`harness.mcu.blob.codec.quantize_network` reports in ``notes``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ir.quant import QParams, quantize_bias
from .container import (
    ACC_LIMIT,
    BUTTERFLY,
    MONARCH,
    BlobError,
    QLayer,
    dense_block_order,
    dense_from_block_order,
    pad4,
    requant_params,
    requantize,
)
from .dense import linear_qlayer

I16 = 32767


def round_shift(acc: np.ndarray, sh: int) -> np.ndarray:
    """``(acc + 2^(sh-1)) >> sh`` (floor shift), as fb_sat16 before saturation."""
    acc = np.asarray(acc, dtype=np.int64)
    return (acc + (1 << (sh - 1))) >> sh if sh else acc


def sat16(acc: np.ndarray, sh: int) -> np.ndarray:
    return np.clip(round_shift(acc, sh), -32768, I16)


def shift_for(amax: float) -> int:
    """Smallest shift that brings ``amax`` into int16."""
    sh = 0
    while sh < 31 and (int(amax) + (1 << (sh - 1) if sh else 0)) >> sh > I16:
        sh += 1
    return sh


def _sym_per_tensor(w: np.ndarray) -> tuple[np.ndarray, float]:
    m = float(np.abs(w).max())
    scale = m / 127.0 if m > 0 else 1.0
    return np.clip(np.round(w / scale), -127, 127).astype(np.int8), scale


def _quant_input(x: np.ndarray, qin: QParams) -> np.ndarray:
    return qin.quantize(x) if len(x) else np.zeros((0, x.shape[1]), np.int8)


# ---------------------------------------------------------------------------------------------
# Monarch
# ---------------------------------------------------------------------------------------------


def _monarch_dims(q: QLayer) -> tuple[int, int, int, int]:
    k, qq = q.aux & 0xFFFF, q.aux >> 16
    return k, q.in_dim // k, qq, q.out_dim // qq


def monarch_stage1(q: QLayer, x: np.ndarray) -> np.ndarray:
    """int64 accumulators of factor 1, ``(B, k, q)``."""
    k, p, qq, _ = _monarch_dims(q)
    xb = x.astype(np.int64).reshape(-1, k, p)
    acc = np.einsum("bip,iqp->biq", xb, q.params["w1"].astype(np.int64))
    return acc + q.params["bias1"].astype(np.int64).reshape(k, qq)


def monarch_forward(q: QLayer, x: np.ndarray) -> np.ndarray:
    """Bit-exact model of fb_monarch_s8."""
    k, _, qq, s = _monarch_dims(q)
    h = sat16(monarch_stage1(q, x), int(q.params["sh1"][0])).transpose(0, 2, 1)  # (B, q, k)
    acc = np.einsum("bjk,jsk->bjs", h, q.params["w2"].astype(np.int64)) + q.params["bias"].astype(
        np.int64
    ).reshape(qq, s)
    return requantize(acc.reshape(-1, qq * s), q.params["mult"], q.params["shift"], q.zp_out, q.act)


def export_monarch(layer: Any, qin: QParams, qout: QParams, x_in: np.ndarray, storage: str) -> list[QLayer]:
    w1f, w2f = layer.w1.astype(np.float64), layer.w2.astype(np.float64)
    k, p, qq = w1f.shape
    s = w2f.shape[2]
    if any(v % 4 for v in (k, p, qq, s)):
        ql = linear_qlayer(
            layer.to_dense().T, layer.b, layer.act, qin, qout, storage="dense", where="monarch"
        )
        ql.note = f"monarch {k}x{p}->{qq}x{s} written as dense: block sizes must be multiples of 4"
        return [ql]
    s_in, zp_in = float(qin.scale), int(qin.zero_point)
    s_out, zp_out = float(qout.scale), int(qout.zero_point)
    w1q, s_w1 = _sym_per_tensor(w1f)
    w1r = np.ascontiguousarray(w1q.transpose(0, 2, 1))  # (k, q, p): block i, row j
    bias1 = (-zp_in * w1r.astype(np.int64).sum(axis=2)).reshape(-1)
    ql = QLayer(MONARCH, k * p, qq * s, 1 if layer.act == "relu" else 0, zp_in, zp_out, {}, k | (qq << 16))
    ql.params.update(w1=w1r, bias1=bias1.astype(np.int32))
    xq = _quant_input(np.asarray(x_in, np.float32), qin)
    if len(xq):
        amax = float(np.abs(monarch_stage1(ql, xq)).max())
    else:
        amax = float(np.abs(bias1).max() + 128 * np.abs(w1r.astype(np.int64)).sum(axis=2).max())
    sh1 = shift_for(amax)
    s_h = s_in * s_w1 * (1 << sh1)
    w2rows = w2f.transpose(0, 2, 1).reshape(qq * s, k)  # row j*s+t reads h[j, :]
    # per tensor (as the TFLite export of Monarch): one requantisation for all outputs, which the
    # firmware hoists out of the row loop
    w2q, s_w2 = _sym_per_tensor(w2rows)
    w2_scale = np.full(qq * s, s_w2)
    bias2 = quantize_bias(layer.b, s_h, w2_scale)
    worst = np.abs(bias2.astype(np.int64)) + I16 * np.abs(w2q.astype(np.int64)).sum(axis=1)
    if (worst > ACC_LIMIT).any():
        raise BlobError("monarch: the int32 accumulator of factor 2 could overflow (k too large)")
    mult, shift = requant_params(s_h * w2_scale / s_out)
    ql.params.update(
        bias=bias2, mult=mult, shift=shift, sh1=np.array([sh1], np.int32), w2=w2q.reshape(qq, s, k).copy()
    )
    return [ql]


def write_monarch(q: QLayer) -> bytes:
    k, p, qq, s = _monarch_dims(q)
    w1 = b"".join(dense_block_order(q.params["w1"][i]).tobytes() for i in range(k))
    w2 = b"".join(dense_block_order(q.params["w2"][j]).tobytes() for j in range(qq))
    return q.params["bias1"].astype("<i4").tobytes() + q.params["sh1"].astype("<i4").tobytes() + w1 + pad4(w2)


def read_monarch(q: QLayer, mv: memoryview) -> None:
    k, p, qq, s = _monarch_dims(q)
    q.params["bias1"] = np.frombuffer(mv, "<i4", k * qq, 0).astype(np.int32)
    q.params["sh1"] = np.frombuffer(mv, "<i4", 1, 4 * k * qq).astype(np.int32)
    o = 4 * k * qq + 4
    w1 = np.frombuffer(mv, np.int8, k * qq * p, o)
    q.params["w1"] = np.stack(
        [dense_from_block_order(w1[i * qq * p : (i + 1) * qq * p], qq, p) for i in range(k)]
    )
    o += k * qq * p
    w2 = np.frombuffer(mv, np.int8, qq * s * k, o)
    q.params["w2"] = np.stack(
        [dense_from_block_order(w2[j * s * k : (j + 1) * s * k], s, k) for j in range(qq)]
    )


# ---------------------------------------------------------------------------------------------
# Butterfly
# ---------------------------------------------------------------------------------------------


def butterfly_level(h: np.ndarray, tw_l: np.ndarray, s: int) -> np.ndarray:
    """int64 accumulators of one level: ``tw_l`` is ``(n/2, 2, 2)`` int (out, in) per pair."""
    n = h.shape[1]
    v = h.reshape(-1, n // (2 * s), 2, s)
    x0, x1 = v[:, :, 0, :], v[:, :, 1, :]
    t = tw_l.astype(np.int64).reshape(n // (2 * s), s, 2, 2)
    y0 = t[:, :, 0, 0] * x0 + t[:, :, 0, 1] * x1
    y1 = t[:, :, 1, 0] * x0 + t[:, :, 1, 1] * x1
    return np.stack([y0, y1], axis=2).reshape(-1, n)


def butterfly_forward(q: QLayer, x: np.ndarray) -> np.ndarray:
    """Bit-exact model of fb_butterfly_s8."""
    h = x.astype(np.int64) - q.zp_in
    L = q.aux
    for lvl in range(L - 1):
        h = sat16(butterfly_level(h, q.params["tw"][lvl], 1 << lvl), int(q.params["sh"][lvl]))
    acc = butterfly_level(h, q.params["tw"][L - 1], 1 << (L - 1)) + q.params["bias"].astype(np.int64)
    return requantize(acc, q.params["mult"], q.params["shift"], q.zp_out, q.act)


def export_butterfly(layer: Any, qin: QParams, qout: QParams, x_in: np.ndarray, storage: str) -> list[QLayer]:
    n, L = layer.n, layer.levels
    s_in, zp_in = float(qin.scale), int(qin.zero_point)
    s_out, zp_out = float(qout.scale), int(qout.zero_point)
    tws, scales = zip(*(_sym_per_tensor(layer.tw[lvl].astype(np.float64)) for lvl in range(L)), strict=True)
    twq = np.stack(tws)  # (L, n/2, 2, 2) int8
    xq = _quant_input(np.asarray(x_in, np.float32), qin)
    h = xq.astype(np.int64) - zp_in if len(xq) else None
    hmax = 255.0
    scale = s_in
    shifts = []
    for lvl in range(L - 1):
        if h is not None:
            acc = butterfly_level(h, twq[lvl], 1 << lvl)
            amax = float(np.abs(acc).max())
        else:
            amax = 2 * 127 * hmax
        sh = shift_for(amax)
        shifts.append(sh)
        if h is not None:
            h = sat16(acc, sh)
        hmax = min(float(I16), amax / (1 << sh) + 1)
        scale *= scales[lvl] * (1 << sh)
    shifts.append(0)
    acc_scale = scale * scales[L - 1]
    bias = np.round(np.asarray(layer.b, np.float64) / acc_scale)
    if (np.abs(bias) + 2 * 127 * I16 > ACC_LIMIT).any():
        raise BlobError("butterfly: bias too large for the int32 accumulator; recalibrate")
    mult, shift = requant_params(np.full(n, acc_scale / s_out))
    ql = QLayer(BUTTERFLY, n, n, 1 if layer.act == "relu" else 0, zp_in, zp_out, {}, L)
    ql.params.update(
        bias=bias.astype(np.int32), mult=mult, shift=shift, sh=np.array(shifts, np.int32), tw=twq
    )
    return [ql]


def write_butterfly(q: QLayer) -> bytes:
    tw = q.params["tw"].transpose(0, 1, 3, 2)  # per pair bytes t00, t10, t01, t11
    return q.params["sh"].astype("<i4").tobytes() + np.ascontiguousarray(tw, dtype=np.int8).tobytes()


def read_butterfly(q: QLayer, mv: memoryview) -> None:
    L, n = q.aux, q.in_dim
    q.params["sh"] = np.frombuffer(mv, "<i4", L, 0).astype(np.int32)
    tw = np.frombuffer(mv, np.int8, L * n * 2, 4 * L).reshape(L, n // 2, 2, 2)
    q.params["tw"] = tw.transpose(0, 1, 3, 2).copy()
