"""Write and read the frugalbench MCU model blob (format documented in boards/firmware/src/blob.h).

The exporter turns a float :class:`harness.ir.network.Network` plus calibration data into int8 layers
with TFLite arithmetic (:mod:`harness.ir.quant`), chooses dense, CSR or 4x4 block-sparse storage for
each dense layer by estimated cost, and packs everything into one little-endian, CRC-protected blob.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import ModelError
from ...ir.network import Network
from ...ir.quant import QParams, calibrate, quantize_dense, quantize_multiplier

MAGIC = b"FBM1"
VERSION = 1
HEADER = struct.Struct("<4sHHIIHHIIIfifi16s")
LAYER = struct.Struct("<BBHIIIIiiI")
assert HEADER.size == 64 and LAYER.size == 32

DENSE, CSR, BSR4, MONARCH, BUTTERFLY, SOFTMAX, ARGMAX = 1, 2, 3, 4, 5, 6, 7
KIND_NAMES = {
    DENSE: "dense",
    CSR: "csr",
    BSR4: "bsr4",
    MONARCH: "monarch",
    BUTTERFLY: "butterfly",
    SOFTMAX: "softmax",
    ARGMAX: "argmax",
}
HEADS = {"softmax": SOFTMAX, "argmax": ARGMAX}
ACC_LIMIT = 2**31 - 1


class BlobError(ModelError):
    """A blob is corrupt, or a network cannot be written as a blob (says which layer and why)."""


@dataclass
class QLayer:
    """One int8 layer of a blob.

    ``params`` holds the arrays of its kind: ``bias``/``mult``/``shift`` (int32, per output) and
    ``w`` (int8 ``(out, in)``, dense), ``rowptr``/``col``/``val`` (CSR), ``bptr``/``bcol``/``blocks``
    (BSR4: ``(nb, 4, 4)`` int8 blocks).
    """

    kind: int
    in_dim: int
    out_dim: int
    act: int = 0  # 1 = fused ReLU
    zp_in: int = 0
    zp_out: int = 0
    params: dict[str, np.ndarray] = field(default_factory=dict)
    aux: int = 0
    note: str = ""  # set when the exporter had to change the layer's form (not stored in the blob)

    @property
    def name(self) -> str:
        return KIND_NAMES.get(self.kind, f"kind{self.kind}")


@dataclass
class QModel:
    """An int8 model as stored in a blob."""

    layers: list[QLayer]
    in_scale: float
    in_zp: int
    out_scale: float
    out_zp: int
    model_id: str = "fbnet01"

    @property
    def notes(self) -> list[str]:
        return [q.note for q in self.layers if q.note]

    @property
    def in_dim(self) -> int:
        return self.layers[0].in_dim

    @property
    def out_dim(self) -> int:
        return self.layers[-1].out_dim

    @property
    def max_dim(self) -> int:
        def inner(q: QLayer) -> int:
            return (q.aux & 0xFFFF) * (q.aux >> 16) if q.kind == MONARCH else 0

        return max(max(q.in_dim, q.out_dim, inner(q)) for q in self.layers)

    @property
    def head(self) -> str | None:
        last = self.layers[-1].kind
        return KIND_NAMES[last] if last in (SOFTMAX, ARGMAX) else None

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float inputs ``(B, in_dim)`` to the int8 bytes the DUT receives."""
        q = np.round(np.asarray(x, dtype=np.float64) / self.in_scale) + self.in_zp
        return np.clip(q, -128, 127).astype(np.int8)

    def dequantize_output(self, q: np.ndarray) -> np.ndarray:
        return ((q.astype(np.float64) - self.out_zp) * self.out_scale).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# int8 arithmetic helpers shared by the exporter and the reference interpreter
# ---------------------------------------------------------------------------------------------


def requant_params(real_multiplier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFLite Q31 multiplier/shift, limited to what the firmware's single-rounding path accepts.

    A multiplier below 2**-33 (shift < -32) contributes nothing and is stored as ``(0, 0)``.
    """
    mult, shift = quantize_multiplier(np.asarray(real_multiplier, dtype=np.float64))
    if (shift > 30).any():
        raise BlobError(
            f"requantisation multiplier {float(np.max(real_multiplier)):.3g} is too large (shift > 30); "
            "the output scale is far smaller than input scale x weight scale: recalibrate with more data"
        )
    tiny = shift < -32
    mult = np.where(tiny, 0, mult).astype(np.int32)
    shift = np.where(tiny, 0, shift).astype(np.int32)
    return mult, shift


def requantize(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray, zp_out: int, act: int) -> np.ndarray:
    """Bit-exact model of ``fb_requant`` in kernels.h (TFLite single rounding) on an int64 array."""
    acc = np.asarray(acc, dtype=np.int64)
    ts = 31 - shift.astype(np.int64)
    p = acc * mult.astype(np.int64) + np.left_shift(np.int64(1), ts - 1)
    r = np.right_shift(p, ts) + zp_out
    lo = max(-128, zp_out) if act == 1 else -128
    return np.clip(r, lo, 127).astype(np.int8)


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


# ---------------------------------------------------------------------------------------------
# storage choices for a quantised dense matrix
# ---------------------------------------------------------------------------------------------


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
    s_in, zp_in = float(qin.scale), int(qin.zero_point)
    s_out, zp_out = float(qout.scale), int(qout.zero_point)
    w_q, wq, bias_q = quantize_dense(np.asarray(w_out_in, dtype=np.float64), b, s_in)
    mult, shift = requant_params(s_in * wq.scale / s_out)
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


# ---------------------------------------------------------------------------------------------
# IR layer kinds -> int8 layers (one exporter per IR kind; Monarch/butterfly register their own)
# ---------------------------------------------------------------------------------------------

LayerExporter = Callable[[Any, QParams, QParams, np.ndarray, str], list[QLayer]]
EXPORTERS: dict[str, LayerExporter] = {}


def layer_exporter(kind: str) -> Callable[[LayerExporter], LayerExporter]:
    def deco(fn: LayerExporter) -> LayerExporter:
        EXPORTERS[kind] = fn
        return fn

    return deco


@layer_exporter("dense")
def _export_dense(layer: Any, qin: QParams, qout: QParams, x_in: np.ndarray, storage: str) -> list[QLayer]:
    return [linear_qlayer(layer.w.T, layer.b, layer.act, qin, qout, storage=storage, where="dense")]


def supported_kinds() -> list[str]:
    """IR layer kinds the MCU runtime can run."""
    return sorted(EXPORTERS)


def unsupported_layers(net: Network) -> list[str]:
    """``"index:kind"`` for every layer the MCU runtime lacks (empty if all are supported)."""
    return [f"{i}:{layer.kind}" for i, layer in enumerate(net.layers) if layer.kind not in EXPORTERS]


def quantize_network(
    net: Network,
    act_q: list[QParams] | None = None,
    x_calib: np.ndarray | None = None,
    *,
    head: str | None = None,
    storage: str = "auto",
    model_id: str = "fbnet01",
) -> QModel:
    """int8 model of ``net`` using ``act_q`` (or calibrating on ``x_calib``)."""
    missing = unsupported_layers(net)
    if missing:
        raise BlobError(
            f"the MCU runtime cannot run layer(s) {', '.join(missing)}; supported: {', '.join(supported_kinds())}"
        )
    if act_q is None:
        if x_calib is None:
            raise BlobError("give calibration data (x_calib) or activation parameters (act_q)")
        act_q = calibrate(net, np.asarray(x_calib, dtype=np.float32))
    if len(act_q) != len(net.layers) + 1:
        raise BlobError(f"need {len(net.layers) + 1} activation parameters, got {len(act_q)}")
    acts = net.activations(np.asarray(x_calib, dtype=np.float32)) if x_calib is not None else None
    layers: list[QLayer] = []
    for i, layer in enumerate(net.layers):
        x_in = acts[i] if acts is not None else np.zeros((0, layer.in_dim), np.float32)
        layers += EXPORTERS[layer.kind](layer, act_q[i], act_q[i + 1], x_in, storage)
    if head is not None:
        if head not in HEADS:
            raise BlobError(f"unknown output head {head!r}; use softmax, argmax or none")
        layers.append(QLayer(HEADS[head], net.out_dim, net.out_dim))
    return QModel(
        layers,
        float(act_q[0].scale),
        int(act_q[0].zero_point),
        float(act_q[-1].scale),
        int(act_q[-1].zero_point),
        model_id,
    )


# ---------------------------------------------------------------------------------------------
# packing
# ---------------------------------------------------------------------------------------------


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def dense_block_order(w: np.ndarray) -> np.ndarray:
    """int8 ``(out, in)`` to the kernel order: per 4-row block, 4x4 tiles, then the column tail;
    then the remaining rows row-major (see fb_dense_s8)."""
    out, inp = w.shape
    nrb, ng, t = out // 4, inp // 4, inp % 4
    top = w[: 4 * nrb]
    main = top[:, : 4 * ng].reshape(nrb, 4, ng, 4).transpose(0, 2, 1, 3).reshape(nrb, 16 * ng)
    tail = top[:, 4 * ng :].reshape(nrb, 4 * t)
    return np.concatenate([np.concatenate([main, tail], axis=1).ravel(), w[4 * nrb :].ravel()]).astype(
        np.int8
    )


def dense_from_block_order(flat: np.ndarray, out: int, inp: int) -> np.ndarray:
    """Inverse of :func:`dense_block_order`."""
    nrb, ng, t = out // 4, inp // 4, inp % 4
    per = 16 * ng + 4 * t
    top = flat[: nrb * per].reshape(nrb, per)
    main = top[:, : 16 * ng].reshape(nrb, ng, 4, 4).transpose(0, 2, 1, 3).reshape(4 * nrb, 4 * ng)
    tail = top[:, 16 * ng :].reshape(4 * nrb, t)
    rest = flat[nrb * per :].reshape(out - 4 * nrb, inp)
    return np.concatenate([np.concatenate([main, tail], axis=1), rest]).astype(np.int8)


def _layer_payload(q: QLayer) -> bytes:
    p = q.params
    if q.kind in (SOFTMAX, ARGMAX):
        return b""
    rq = (
        p["bias"].astype("<i4").tobytes()
        + p["mult"].astype("<i4").tobytes()
        + p["shift"].astype("<i4").tobytes()
    )
    if q.kind == DENSE:
        return rq + _pad4(dense_block_order(p["w"]).tobytes())
    if q.kind == CSR:
        return (
            rq
            + p["rowptr"].astype("<u4").tobytes()
            + _pad4(p["col"].astype("<u2").tobytes())
            + _pad4(p["val"].astype(np.int8).tobytes())
        )
    if q.kind == BSR4:
        return (
            rq
            + p["bptr"].astype("<u4").tobytes()
            + _pad4(p["bcol"].astype("<u2").tobytes())
            + p["blocks"].astype(np.int8).tobytes()
        )
    if q.kind in PAYLOAD_WRITERS:
        return rq + PAYLOAD_WRITERS[q.kind](q)
    raise BlobError(f"no writer for layer kind {q.kind}")


# Extra kinds (Monarch, butterfly) add a writer and a reader for the part after bias/mult/shift.
PAYLOAD_WRITERS: dict[int, Callable[[QLayer], bytes]] = {}
PAYLOAD_READERS: dict[int, Callable[[QLayer, memoryview], None]] = {}


FLAG_UNIFORM_RQ = 1


def _flags(q: QLayer) -> int:
    """Bit 0: one requantisation multiplier/shift for every channel (the firmware hoists it)."""
    m, sh = q.params.get("mult"), q.params.get("shift")
    if m is None or sh is None or len(m) == 0:
        return 0
    return FLAG_UNIFORM_RQ if (m == m[0]).all() and (sh == sh[0]).all() else 0


def write_blob(qm: QModel) -> bytes:
    """Pack ``qm`` into blob bytes (header CRC covers everything after byte 16)."""
    n = len(qm.layers)
    offset = HEADER.size + LAYER.size * n
    table, payloads = [], []
    for q in qm.layers:
        data = _pad4(_layer_payload(q))
        table.append(
            LAYER.pack(
                q.kind, q.act, _flags(q), q.in_dim, q.out_dim, offset, len(data), q.zp_in, q.zp_out, q.aux
            )
        )
        payloads.append(data)
        offset += len(data)
    body = b"".join(table) + b"".join(payloads)
    model_id = qm.model_id.encode("ascii")[:16]
    head_rest = HEADER.pack(
        MAGIC,
        VERSION,
        HEADER.size,
        offset,
        0,
        n,
        0,
        qm.in_dim,
        qm.out_dim,
        qm.max_dim,
        qm.in_scale,
        qm.in_zp,
        qm.out_scale,
        qm.out_zp,
        model_id,
    )[16:]
    crc = zlib.crc32(head_rest + body)
    head = struct.pack("<4sHHII", MAGIC, VERSION, HEADER.size, offset, crc)
    return head + head_rest + body


def read_blob(data: bytes) -> QModel:
    """Parse and validate blob bytes (the same checks the firmware makes)."""
    if len(data) < HEADER.size:
        raise BlobError(f"blob has {len(data)} bytes, shorter than its {HEADER.size}-byte header")
    (
        magic,
        version,
        hsize,
        total,
        crc,
        n,
        _hflags,
        in_dim,
        out_dim,
        max_dim,
        in_scale,
        in_zp,
        out_scale,
        out_zp,
        mid,
    ) = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise BlobError(f"not a frugalbench blob (magic {magic!r}, expected {MAGIC!r})")
    if version != VERSION or hsize != HEADER.size:
        raise BlobError(f"blob version {version} / header {hsize} unsupported; re-export with this harness")
    if total > len(data):
        raise BlobError(f"blob is truncated: header says {total} bytes, got {len(data)}")
    got = zlib.crc32(bytes(data[16:total]))
    if got != crc:
        raise BlobError(f"blob CRC mismatch: computed {got:08x}, header says {crc:08x}; the file is corrupt")
    mv = memoryview(bytes(data[:total]))
    layers = []
    for i in range(n):
        kind, act, _f, li, lo, off, size, zpi, zpo, aux = LAYER.unpack_from(mv, HEADER.size + LAYER.size * i)
        q = QLayer(kind, li, lo, act, zpi, zpo, {}, aux)
        _read_payload(q, mv[off : off + size])
        layers.append(q)
    qm = QModel(layers, in_scale, in_zp, out_scale, out_zp, mid.rstrip(b"\0").decode("ascii", "replace"))
    if qm.in_dim != in_dim or qm.out_dim != out_dim or qm.max_dim != max_dim:
        raise BlobError("blob header dims disagree with its layer table")
    return qm


def _read_payload(q: QLayer, mv: memoryview) -> None:
    if q.kind in (SOFTMAX, ARGMAX):
        return
    out = q.out_dim
    p = q.params
    p["bias"] = np.frombuffer(mv, "<i4", out, 0).astype(np.int32)
    p["mult"] = np.frombuffer(mv, "<i4", out, 4 * out).astype(np.int32)
    p["shift"] = np.frombuffer(mv, "<i4", out, 8 * out).astype(np.int32)
    o = 12 * out
    if q.kind == DENSE:
        p["w"] = dense_from_block_order(np.frombuffer(mv, np.int8, out * q.in_dim, o), out, q.in_dim)
    elif q.kind == CSR:
        p["rowptr"] = np.frombuffer(mv, "<u4", out + 1, o).astype(np.uint32)
        o += 4 * (out + 1)
        p["col"] = np.frombuffer(mv, "<u2", q.aux, o).astype(np.uint16)
        o += (2 * q.aux + 3) & ~3
        p["val"] = np.frombuffer(mv, np.int8, q.aux, o).copy()
    elif q.kind == BSR4:
        p["bptr"] = np.frombuffer(mv, "<u4", out // 4 + 1, o).astype(np.uint32)
        o += 4 * (out // 4 + 1)
        p["bcol"] = np.frombuffer(mv, "<u2", q.aux, o).astype(np.uint16)
        o += (2 * q.aux + 3) & ~3
        p["blocks"] = np.frombuffer(mv, np.int8, 16 * q.aux, o).reshape(q.aux, 4, 4).copy()
    elif q.kind in PAYLOAD_READERS:
        PAYLOAD_READERS[q.kind](q, mv[o:])
    else:
        raise BlobError(f"unknown layer kind {q.kind} in blob")


def export_blob(
    net: Network,
    x_calib: np.ndarray | None = None,
    *,
    act_q: list[QParams] | None = None,
    head: str | None = None,
    storage: str = "auto",
    model_id: str = "fbnet01",
) -> bytes:
    """Network + calibration -> blob bytes."""
    return write_blob(quantize_network(net, act_q, x_calib, head=head, storage=storage, model_id=model_id))


def variant_blob(variant: Any, x_calib: np.ndarray | None) -> bytes:
    """Blob bytes for a stored :class:`harness.ir.model.Variant`: its ``blob`` file if present, else
    exported from ``variant.net()`` calibrated on ``x_calib`` (the runner may store the result)."""
    path = variant.path("blob")
    if path is not None:
        data = path.read_bytes()
        read_blob(data)
        return data
    net = variant.net()
    if net is not None and x_calib is None:
        raise BlobError(
            f"variant {variant.name!r} has no blob yet: give calibration rows (x_calib) to export one"
        )
    if net is None:
        raise BlobError(
            f"variant {variant.name!r} has neither a blob nor a network IR; the MCU target needs one of them"
        )
    return export_blob(net, x_calib, model_id=str(variant.meta.get("task", "fbnet01"))[:16])


from . import factored as _factored  # noqa: E402,F401  (registers Monarch and butterfly)
