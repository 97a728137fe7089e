"""The blob container: layer kinds, header and table layouts, the int8 model and shared int8 arithmetic.

Everything here is used by more than one payload module (:mod:`.dense`, :mod:`.factored`), by the
packer (:mod:`.codec`) and by the reference interpreter. The byte format is documented in
``boards/firmware/src/blob.h``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from ...errors import ModelError
from ...ir.quant import quantize_multiplier

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


# int8 arithmetic shared by the exporters and the reference interpreter


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


def pad4(b: bytes) -> bytes:
    """``b`` padded with zero bytes to a multiple of 4 (every array in a payload starts aligned)."""
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
