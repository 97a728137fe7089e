"""Write and read blob version 2: a planned :class:`~.graph.QGraph` as the firmware runs it.

The byte layout is documented in ``boards/firmware/src/blob.h`` (next to version 1); the firmware's
loader (``runtime_graph.c``) checks the same rules this writer follows. Tensor offsets come from the
memory planner (:func:`harness.mcu.plan.plan`), which must run first. The writer reorders weights
into the kernels' int16 layouts and folds the input zero point into the bias; the reader undoes both,
so ``read_graph_blob(write_graph_blob(g))`` gives back ``g``'s integers.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from .container import HEADER, MAGIC, MONARCH, BlobError, QLayer
from .factored import read_monarch, write_monarch
from .graph import QGraph, QOp, QTensor

VERSION2 = 2
GRAPH_HEADER_SIZE = 96
GRAPH = struct.Struct("<IIHHHHI12x")
TENSOR = struct.Struct("<HHHBBIIfi")
OP = struct.Struct("<BBHHHHHhhBBBBBBHIIII")
assert GRAPH.size == 32 and TENSOR.size == 24 and OP.size == 40

KIND_CODES = {
    "conv2d": 1,
    "dwconv2d": 2,
    "dense": 3,
    "maxpool": 4,
    "avgpool": 5,
    "mean": 6,
    "add": 7,
    "reshape": 8,
    "pwconv_csr": 9,
    "pwconv_monarch": 10,
}
KIND_NAMES = {v: k for k, v in KIND_CODES.items()}
OPF_FAST = 1  # every channel: shift <= -1 and |acc| < 2**30 (the firmware may use SMMULR)
OPF_SINGLE = 2  # single-rounding requantisation (attrs["rounding"] = 1)
ADD_KEYS = ("left_shift", "mult_a", "shift_a", "mult_b", "shift_b", "mult_out", "shift_out")
WEIGHTED = ("conv2d", "dwconv2d", "dense")
WINDOW_ATTRS = ("stride_h", "stride_w", "pad_top", "pad_left")
POINTWISE = ("pwconv_csr", "pwconv_monarch")
PW_TILE = 4  # pixels per tile of the sparse pointwise kernel (FB_PW_TILE in kernels_pw.c)
DW_BAND = 4  # output rows of a depthwise convolution per zero-point padded band (FB_DW_BAND)


def ceil4(n: int) -> int:
    return (n + 3) // 4 * 4


def _where(i: int, op: QOp) -> str:
    return f"op {i} ({op.kind}{', ' + op.where if op.where else ''})"


def kernel_size(op: QOp) -> tuple[int, int]:
    """(KH, KW) of a windowed op (from the weights of a convolution, from attrs for pooling)."""
    if op.kind == "conv2d":
        return int(op.params["w"].shape[1]), int(op.params["w"].shape[2])
    if op.kind == "dwconv2d":
        return int(op.params["w"].shape[0]), int(op.params["w"].shape[1])
    if op.kind in ("maxpool", "avgpool"):
        return int(op.attrs["kh"]), int(op.attrs["kw"])
    return 1, 1


def patch_len(g: QGraph, op: QOp) -> int:
    """k4: the im2col patch length of a convolution or dense op, rounded up to 4 (0 for others)."""
    if op.kind == "dense":
        return ceil4(g.tensors[op.inputs[0]].size)
    if op.kind == "conv2d":
        kh, kw = kernel_size(op)
        return ceil4(kh * kw * g.tensors[op.inputs[0]].shape[-1])
    return 0


def op_scratch_bytes(g: QGraph, op: QOp) -> int:
    """Scratch bytes the firmware uses for ``op`` (``scratch_need`` in runtime_graph.c)."""
    if op.kind in ("conv2d", "dense"):
        return 3 * patch_len(g, op)
    if op.kind == "dwconv2d":
        kh, kw = kernel_size(op)
        oh, ow = g.tensors[op.output].shape[:2]
        c = g.tensors[op.inputs[0]].shape[-1]
        rows = (min(oh, DW_BAND) - 1) * int(op.attrs.get("stride_h", 1)) + kh
        wp = (ow - 1) * int(op.attrs.get("stride_w", 1)) + kw
        return rows * wp * ceil4(c)  # padded input rows read by a band of up to DW_BAND output rows
    if op.kind == "pwconv_csr":  # int16 channel-major tile of PW_TILE pixels
        return 2 * PW_TILE * ceil4(g.tensors[op.inputs[0]].shape[-1])
    if op.kind == "pwconv_monarch":  # widened input and int16 intermediate of one pixel
        k, q, _ = op.params["w1"].shape
        return 2 * g.tensors[op.inputs[0]].shape[-1] + 2 * k * q + 16  # + the kernel's overrun margin
    return 0


def _hwc(t: QTensor, tid: int) -> tuple[int, int, int, int]:
    if len(t.shape) == 3:
        return (*(int(v) for v in t.shape), 3)  # type: ignore[return-value]
    if len(t.shape) == 2:
        return 1, int(t.shape[0]), int(t.shape[1]), 2
    if len(t.shape) == 1:
        return 1, 1, int(t.shape[0]), 1
    raise BlobError(
        f"tensor {tid} ({t.name}) has shape {list(t.shape)}; blob version 2 holds (H, W, C), (W, C) or (N,) tensors"
    )


def _wrap32(v: np.ndarray) -> np.ndarray:
    """int64 values to int32 with two's-complement wrap-around (the firmware's int32 arithmetic)."""
    return np.asarray(v, dtype=np.int64).astype(np.uint64).astype(np.uint32).view(np.int32)


def _conv_matrix(op: QOp) -> np.ndarray:
    """Weights as (Cout, K) int8 in patch order (kh, kw, cin)."""
    w = np.asarray(op.params["w"], dtype=np.int8)
    return w.reshape(w.shape[0], -1)


def _requant_arrays(op: QOp, n: int, n4: int, bias: np.ndarray, fast: bool) -> bytes:
    """``bias[n4]`` then ``(mult, shift)[n4]`` (``(mult, -shift - 1)`` for an :data:`OPF_FAST` op)."""
    mult, shift = _mult_shift(op, n)
    if fast:
        shift = -shift - 1
    pairs = np.zeros((n4, 2), np.int64)
    pairs[:n, 0], pairs[:n, 1] = mult, shift
    b = np.pad(np.asarray(bias, dtype=np.int64), (0, n4 - n))
    return b.astype(np.int32).tobytes() + pairs.astype(np.int32).tobytes()


def _mult_shift(op: QOp, n: int) -> tuple[np.ndarray, np.ndarray]:
    mult = np.asarray(op.params["mult"], dtype=np.int64).reshape(-1)
    shift = np.asarray(op.params["shift"], dtype=np.int64).reshape(-1)
    if mult.size == 1:
        mult, shift = np.repeat(mult, n), np.repeat(shift, n)
    if mult.size != n or shift.size != n:
        raise BlobError(f"{n} output channels but {mult.size} multipliers and {shift.size} shifts")
    return mult, shift


def _weighted_params(g: QGraph, op: QOp) -> tuple[bytes, int, int]:
    """Payload, k4 and flags of a conv2d / dense / dwconv2d op."""
    zp = g.tensors[op.inputs[0]].zero_point
    bias = np.asarray(op.params["bias"], dtype=np.int64).reshape(-1)
    if op.kind == "dwconv2d":
        w = np.asarray(op.params["w"], dtype=np.int8)
        taps = w.shape[0] * w.shape[1]
        wm = w.reshape(taps, w.shape[2]).astype(np.int64)
        n = w.shape[2]
        folded = bias - zp * wm.sum(axis=0)
        n4 = ceil4(n)
        wp = np.zeros((taps, n4), np.int64)
        wp[:, :n] = wm
        # per group of 4 channels and tap: c, c+2, c+1, c+3 (SXTB16 halves)
        order = wp.reshape(taps, n4 // 4, 4)[:, :, [0, 2, 1, 3]].transpose(1, 0, 2)
        k4, per_ch = 0, np.abs(wm).sum(axis=0)
    else:
        wm = _conv_matrix(op).astype(np.int64)
        if op.kind == "dense" and wm.shape[1] != g.tensors[op.inputs[0]].size:
            raise BlobError(
                f"dense weights of {wm.shape[1]} inputs on a tensor of {g.tensors[op.inputs[0]].size}"
            )
        n, k = wm.shape
        folded = bias - zp * wm.sum(axis=1)
        n4, k4 = ceil4(n), ceil4(k)
        wp = np.zeros((n4, k4), np.int64)
        wp[:n, :k] = wm
        # (row block, row, group, e, p) -> (row block, group, p, row, e): column 4g + 2e + p
        order = wp.reshape(n4 // 4, 4, k4 // 4, 2, 2).transpose(0, 2, 4, 1, 3)
        per_ch = np.abs(wm).sum(axis=1)
    folded32 = _wrap32(folded)
    if bias.size != n:
        raise BlobError(f"{n} output channels but {bias.size} biases")
    _, shift = _mult_shift(op, n)
    flags = 0
    if int(op.attrs.get("rounding", 0)) == 1:
        flags |= OPF_SINGLE
    elif (shift <= -1).all() and (np.abs(folded32.astype(np.int64)) + 128 * per_ch < 1 << 30).all():
        flags |= OPF_FAST
    payload = _requant_arrays(op, n, n4, folded32, bool(flags & OPF_FAST)) + order.astype(np.int16).tobytes()
    return payload, k4, flags


def _csr_params(g: QGraph, op: QOp) -> tuple[bytes, int, int]:
    """Payload, nnz (in the k4 field) and flags of a ``pwconv_csr`` op: requantisation arrays as for
    ``conv2d``, then u32 rowptr[Cout + 1], u32 entries[nnz] = column | int16 value << 16."""
    w = np.asarray(op.params["w"], dtype=np.int8)
    if w.ndim != 4 or w.shape[1:3] != (1, 1):
        raise BlobError(f"pwconv_csr weights must be (Cout, 1, 1, Cin), not {list(w.shape)}")
    wm = w.reshape(w.shape[0], -1).astype(np.int64)
    n, cin = wm.shape
    if cin != g.tensors[op.inputs[0]].shape[-1] or cin > 0xFFFF:
        raise BlobError(f"pwconv_csr weights of {cin} input channels on {g.tensors[op.inputs[0]].shape}")
    bias = np.asarray(op.params["bias"], dtype=np.int64).reshape(-1)
    if bias.size != n:
        raise BlobError(f"{n} output channels but {bias.size} biases")
    folded32 = _wrap32(bias - g.tensors[op.inputs[0]].zero_point * wm.sum(axis=1))
    _, shift = _mult_shift(op, n)
    flags = 0
    if int(op.attrs.get("rounding", 0)) == 1:
        flags |= OPF_SINGLE
    elif (shift <= -1).all() and (
        np.abs(folded32.astype(np.int64)) + 128 * np.abs(wm).sum(axis=1) < 1 << 30
    ).all():
        flags |= OPF_FAST
    rows, cols = np.nonzero(wm)
    rowptr = np.zeros(n + 1, np.uint32)
    rowptr[1:] = np.cumsum(np.bincount(rows, minlength=n))
    ent = (cols.astype(np.uint32) & 0xFFFF) | (
        wm[rows, cols].astype(np.int16).view(np.uint16).astype(np.uint32) << 16
    )
    rq = _requant_arrays(op, n, ceil4(n), folded32, bool(flags & OPF_FAST))
    return rq + rowptr.astype("<u4").tobytes() + ent.astype("<u4").tobytes(), int(len(rows)), flags


def _monarch_qlayer(g: QGraph, op: QOp) -> QLayer:
    k, q, p = op.params["w1"].shape
    s = op.params["w2"].shape[1]
    if any(v % 4 for v in (k, p, q, s)) or op.params["w2"].shape != (q, s, k):
        raise BlobError(f"pwconv_monarch blocks {k}x({q}x{p}) -> {q}x({s}x{k}) must be multiples of 4")
    if k * p != g.tensors[op.inputs[0]].shape[-1] or q * s != g.tensors[op.output].shape[-1]:
        raise BlobError(f"pwconv_monarch of {k * p} -> {q * s} channels between tensors of other widths")
    zp_in, zp_out = g.tensors[op.inputs[0]].zero_point, g.tensors[op.output].zero_point
    return QLayer(MONARCH, k * p, q * s, 0, zp_in, zp_out, dict(op.params), k | (q << 16))


def _monarch_params(g: QGraph, op: QOp) -> tuple[bytes, int, int]:
    """Payload (i32 bias, mult, shift [Cout], then the MLP blob's Monarch parameters) and k | q << 16."""
    ql = _monarch_qlayer(g, op)
    if op.act_min not in (-128, max(-128, ql.zp_out)):
        raise BlobError(
            f"pwconv_monarch clamps below at -128 or at its zero point (ReLU), not at {op.act_min}"
        )
    n = ql.out_dim
    mult, shift = _mult_shift(op, n)
    head = b"".join(
        np.asarray(a, np.int64).reshape(-1).astype("<i4").tobytes() for a in (op.params["bias"], mult, shift)
    )
    if len(head) != 12 * n:
        raise BlobError(f"{n} output channels but {np.asarray(op.params['bias']).size} biases")
    return head + write_monarch(ql), int(ql.aux), 0


def _scalar(op: QOp, key: str) -> int:
    v = np.asarray(op.params[key]).reshape(-1)
    if v.size != 1:
        raise BlobError(f"parameter {key} of a {op.kind} op must be one value, not {v.size}")
    return int(v[0])


def _op_params(g: QGraph, i: int, op: QOp) -> tuple[bytes, int, int]:
    if op.kind in WEIGHTED:
        return _weighted_params(g, op)
    if op.kind == "pwconv_csr":
        return _csr_params(g, op)
    if op.kind == "pwconv_monarch":
        return _monarch_params(g, op)
    if op.kind == "mean":
        return struct.pack("<ii", _scalar(op, "mult"), _scalar(op, "shift")), 0, 0
    if op.kind == "add":
        return struct.pack("<7i", *(_scalar(op, k) for k in ADD_KEYS)), 0, 0
    return b"", 0, 0


def _geometry(op: QOp) -> tuple[int, int, int, int, int, int]:
    kh, kw = kernel_size(op)
    if op.kind in ("conv2d", "dwconv2d", "maxpool", "avgpool"):
        dil = (int(op.attrs.get("dilation_h", 1)), int(op.attrs.get("dilation_w", 1)))
        if dil != (1, 1):
            raise BlobError(f"dilation {dil} is not supported by the MCU kernels")
        sh, sw, pt, pl = (int(op.attrs.get(k, d)) for k, d in zip(WINDOW_ATTRS, (1, 1, 0, 0), strict=True))
        return kh, kw, sh, sw, pt, pl
    return 1, 1, 1, 1, 0, 0


def arena_bytes(g: QGraph) -> int:
    """Arena size the planned offsets need (multiple of 4)."""
    return ceil4(max(t.offset + t.size for t in g.tensors))


def write_graph_blob(g: QGraph) -> bytes:
    """Pack a planned graph (every ``QTensor.offset`` set by :func:`harness.mcu.plan.plan`)."""
    for tid, t in enumerate(g.tensors):
        if t.offset < 0 or t.offset % 4:
            raise BlobError(
                f"tensor {tid} ({t.name}) has no 4-byte aligned arena offset ({t.offset}): "
                "plan the graph first with harness.mcu.plan.plan(g)"
            )
    nt, no = len(g.tensors), len(g.ops)
    if not no:
        raise BlobError("a graph without operators cannot be written as a blob")
    if nt > 256:
        raise BlobError(f"{nt} tensors; the firmware holds at most 256 (FB_GRAPH_MAX_TENSORS)")
    tables = GRAPH_HEADER_SIZE + TENSOR.size * nt + OP.size * no
    tensor_rows = b""
    for tid, t in enumerate(g.tensors):
        h, w, c, rank = _hwc(t, tid)
        if max(h, w, c) > 0xFFFF or not -128 <= t.zero_point <= 127:
            raise BlobError(
                f"tensor {tid} ({t.name}): shape {list(t.shape)} or zero point {t.zero_point} out of range"
            )
        tensor_rows += TENSOR.pack(h, w, c, rank, 0, t.offset, t.size, t.scale, t.zero_point)
    op_rows, params = b"", b""
    scratch = 0
    for i, op in enumerate(g.ops):
        if op.kind not in KIND_CODES:
            raise BlobError(f"{_where(i, op)}: the MCU runtime has no {op.kind!r} operator")
        try:
            payload, k4, flags = _op_params(g, i, op)
            kh, kw, sh, sw, pt, pl = _geometry(op)
        except (KeyError, ValueError, BlobError) as e:
            raise BlobError(f"{_where(i, op)}: {e}") from None
        if max(kh, kw, sh, sw, pt, pl) > 255:
            raise BlobError(f"{_where(i, op)}: kernel, stride or padding above 255")
        in1 = op.inputs[1] if len(op.inputs) > 1 else 0
        op_rows += OP.pack(
            KIND_CODES[op.kind], len(op.inputs), flags, op.inputs[0], in1, op.output, 0, op.act_min, op.act_max,
            kh, kw, sh, sw, pt, pl, 0, tables + len(params), len(payload), k4, 0,
        )  # fmt: skip
        params += payload + b"\0" * (-len(payload) % 4)
        scratch = max(scratch, op_scratch_bytes(g, op))
    ti, to = g.in_tensor, g.out_tensor
    graph = GRAPH.pack(arena_bytes(g), ceil4(scratch), nt, g.input, g.output, 0, tables)
    body = graph + tensor_rows + op_rows + params
    total = HEADER.size + len(body)
    mid = g.model_id.encode()[:16]
    max_dim = max(t.size for t in g.tensors)
    head = HEADER.pack(MAGIC, VERSION2, GRAPH_HEADER_SIZE, total, 0, no, 0, ti.size, to.size, max_dim,
                       ti.scale, ti.zero_point, to.scale, to.zero_point, mid)  # fmt: skip
    data = bytearray(head + body)
    struct.pack_into("<I", data, 12, zlib.crc32(bytes(data[16:])))
    return bytes(data)


def _unpack_weighted(
    kind: str, raw: bytes, n: int, k4: int, kh: int, kw: int, c_in: int, zp: int, fast: bool
) -> dict[str, np.ndarray]:
    n4 = ceil4(n)
    a = np.frombuffer(raw, dtype=np.int32)
    bias_f, pairs = a[:n4][:n], a[n4 : 3 * n4].reshape(n4, 2)[:n]
    mult, shift = pairs[:, 0].copy(), (-pairs[:, 1] - 1 if fast else pairs[:, 1]).astype(np.int32)
    w16 = np.frombuffer(raw[12 * n4 :], dtype=np.int16).astype(np.int64)
    w: np.ndarray
    if kind == "dwconv2d":
        taps = kh * kw
        g = w16.reshape(n4 // 4, taps, 4)[:, :, [0, 2, 1, 3]].transpose(1, 0, 2).reshape(taps, n4)[:, :n]
        w = g.reshape(kh, kw, n)
        sums = g.sum(axis=0)
    else:
        m = w16.reshape(n4 // 4, k4 // 4, 2, 4, 2).transpose(0, 3, 1, 4, 2).reshape(n4, k4)
        k = kh * kw * c_in
        m = m[:n, :k]
        w = m.reshape(n, kh, kw, c_in) if kind == "conv2d" else m
        sums = m.sum(axis=1)
    bias = _wrap32(bias_f.astype(np.int64) + zp * sums)
    return {"w": w.astype(np.int8), "bias": bias, "mult": mult, "shift": shift}


def _unpack_csr(raw: bytes, n: int, t_in: QTensor, nnz: int, fast: bool) -> dict[str, np.ndarray]:
    n4, cin = ceil4(n), int(t_in.shape[-1])
    a = np.frombuffer(raw, dtype=np.int32)
    bias_f, pairs = a[:n4][:n], a[n4 : 3 * n4].reshape(n4, 2)[:n]
    mult, shift = pairs[:, 0].copy(), (-pairs[:, 1] - 1 if fast else pairs[:, 1]).astype(np.int32)
    rowptr = np.frombuffer(raw, "<u4", n + 1, 12 * n4).astype(np.int64)
    ent = np.frombuffer(raw, "<u4", nnz, 12 * n4 + 4 * (n + 1))
    w = np.zeros((n, cin), np.int64)
    rows = np.repeat(np.arange(n), np.diff(rowptr))
    w[rows, ent & 0xFFFF] = (ent >> 16).astype(np.uint16).view(np.int16)
    bias = _wrap32(bias_f.astype(np.int64) + t_in.zero_point * w.sum(axis=1))
    return {"w": w.reshape(n, 1, 1, cin).astype(np.int8), "bias": bias, "mult": mult, "shift": shift}


def _unpack_monarch(raw: bytes, t_in: QTensor, t_out: QTensor, aux: int) -> dict[str, np.ndarray]:
    n = int(t_out.shape[-1])
    ql = QLayer(MONARCH, int(t_in.shape[-1]), n, 0, t_in.zero_point, t_out.zero_point, {}, aux)
    read_monarch(ql, memoryview(raw)[12 * n :])
    a = np.frombuffer(raw, "<i4", 3 * n).reshape(3, n).astype(np.int32)
    return {**ql.params, "bias": a[0].copy(), "mult": a[1].copy(), "shift": a[2].copy()}


def read_graph_blob(data: bytes) -> QGraph:
    """Parse a version 2 blob back into a :class:`QGraph` (offsets set; ``where`` names are not stored)."""
    if len(data) < GRAPH_HEADER_SIZE:
        raise BlobError(
            f"blob of {len(data)} bytes is shorter than the version 2 header ({GRAPH_HEADER_SIZE})"
        )
    (magic, version, hsize, total, crc, no, _flags, _in_dim, _out_dim, _mx, _is, _iz, _os, _oz, mid) = (
        HEADER.unpack_from(data, 0)
    )
    if magic != MAGIC or version != VERSION2 or hsize != GRAPH_HEADER_SIZE:
        raise BlobError(f"not a version 2 blob (magic {magic!r}, version {version}, header {hsize})")
    if total > len(data) or zlib.crc32(data[16:total]) != crc:
        raise BlobError("blob CRC mismatch or truncated blob")
    _arena, _scratch, nt, gin, gout, _r, _po = GRAPH.unpack_from(data, HEADER.size)
    tensors = []
    for tid in range(nt):
        h, w, c, rank, _, off, size, scale, zp = TENSOR.unpack_from(
            data, GRAPH_HEADER_SIZE + TENSOR.size * tid
        )
        shape = (h, w, c) if rank == 3 else (w, c) if rank == 2 else (c,)
        tensors.append(QTensor(f"t{tid}", shape, float(scale), int(zp), int(off)))
    ops = []
    base = GRAPH_HEADER_SIZE + TENSOR.size * nt
    for i in range(no):
        (kind, n_in, flags, in0, in1, out, _, lo, hi, kh, kw, sh, sw, pt, pl, _, off, size, k4, _) = (
            OP.unpack_from(data, base + OP.size * i)
        )
        name = KIND_NAMES.get(kind)
        if name is None:
            raise BlobError(f"op {i}: unknown kind {kind}")
        raw = data[off : off + size]
        inputs = [in0, in1][:n_in]
        attrs: dict[str, int] = {}
        params: dict[str, np.ndarray] = {}
        if name in ("conv2d", "dwconv2d", "maxpool", "avgpool"):
            attrs = dict(zip(WINDOW_ATTRS, (sh, sw, pt, pl), strict=True))
        if name in ("maxpool", "avgpool"):
            attrs = {"kh": kh, "kw": kw, **attrs}
        if name in WEIGHTED:
            t_in = tensors[in0]
            c_in = t_in.shape[-1] if name == "conv2d" else t_in.size
            n = tensors[out].shape[-1] if name != "dense" else tensors[out].size
            params = _unpack_weighted(name, raw, n, k4, kh, kw, c_in, t_in.zero_point, bool(flags & OPF_FAST))
            if flags & OPF_SINGLE:
                attrs["rounding"] = 1
        elif name == "pwconv_csr":
            params = _unpack_csr(raw, tensors[out].shape[-1], tensors[in0], k4, bool(flags & OPF_FAST))
            if flags & OPF_SINGLE:
                attrs["rounding"] = 1
        elif name == "pwconv_monarch":
            params = _unpack_monarch(raw, tensors[in0], tensors[out], k4)
        elif name == "mean":
            m, s = struct.unpack("<ii", raw)
            params = {"mult": np.array([m], np.int32), "shift": np.array([s], np.int32)}
        elif name == "add":
            params = {
                k: np.array([v], np.int32) for k, v in zip(ADD_KEYS, struct.unpack("<7i", raw), strict=True)
            }
        ops.append(QOp(name, inputs, out, params, attrs, lo, hi))
    return QGraph(tensors, ops, gin, gout, model_id=mid.rstrip(b"\0").decode(errors="replace"))
