"""Write and read the frugalbench MCU model blob (format documented in boards/firmware/src/blob.h).

The exporter turns a float :class:`harness.ir.network.Network` plus calibration data into int8 layers
with TFLite arithmetic (:mod:`harness.ir.quant`), chooses dense, CSR or 4x4 block-sparse storage for
each dense layer by estimated cost, and packs everything into one little-endian, CRC-protected blob.
A user's full-integer ``.tflite`` MLP is carried over with its own quantisation
(:func:`tflite_int8_model`).

This module sits on top of the blob package: the container (:mod:`.container`) and the payload
modules (:mod:`.dense`, :mod:`.factored`) know nothing of each other's tables; the tables below name
every IR layer kind the MCU runs and every payload kind a blob holds.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from ...ir.importers.tflite_file import TfliteFile
from ...ir.network import Network
from ...ir.quant import QParams, calibrate
from . import dense, factored
from .container import (
    ARGMAX,
    BSR4,
    BUTTERFLY,
    CSR,
    DENSE,
    HEADER,
    HEADS,
    LAYER,
    MAGIC,
    MONARCH,
    SOFTMAX,
    VERSION,
    BlobError,
    QLayer,
    QModel,
    pad4,
)
from .graph import QGraph
from .graph_codec import VERSION2, read_graph_blob, write_graph_blob
from .pointwise import monarch_back, monarch_standins, sparsify_pointwise
from .tflite_graph import softmax_dropped, tflite_graph

LayerExporter = Callable[[Any, QParams, QParams, np.ndarray, str], list[QLayer]]

# IR layer kind -> int8 blob layers (a new kind is one function in a payload module plus one entry).
EXPORTERS: dict[str, LayerExporter] = {
    "dense": dense.export_dense,
    "monarch": factored.export_monarch,
    "butterfly": factored.export_butterfly,
}

# Blob layer kind -> writer/reader of the payload part after the bias/mult/shift arrays.
PAYLOAD_WRITERS: dict[int, Callable[[QLayer], bytes]] = {
    DENSE: dense.write_dense,
    CSR: dense.write_csr,
    BSR4: dense.write_bsr4,
    MONARCH: factored.write_monarch,
    BUTTERFLY: factored.write_butterfly,
}
PAYLOAD_READERS: dict[int, Callable[[QLayer, memoryview], None]] = {
    DENSE: dense.read_dense,
    CSR: dense.read_csr,
    BSR4: dense.read_bsr4,
    MONARCH: factored.read_monarch,
    BUTTERFLY: factored.read_butterfly,
}


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


def _layer_payload(q: QLayer) -> bytes:
    p = q.params
    if q.kind in (SOFTMAX, ARGMAX):
        return b""
    writer = PAYLOAD_WRITERS.get(q.kind)
    if writer is None:
        raise BlobError(f"no writer for layer kind {q.kind}")
    rq = (
        p["bias"].astype("<i4").tobytes()
        + p["mult"].astype("<i4").tobytes()
        + p["shift"].astype("<i4").tobytes()
    )
    return rq + writer(q)


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
        data = pad4(_layer_payload(q))
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
    reader = PAYLOAD_READERS.get(q.kind)
    if reader is None:
        raise BlobError(f"unknown layer kind {q.kind} in blob")
    out = q.out_dim
    p = q.params
    p["bias"] = np.frombuffer(mv, "<i4", out, 0).astype(np.int32)
    p["mult"] = np.frombuffer(mv, "<i4", out, 4 * out).astype(np.int32)
    p["shift"] = np.frombuffer(mv, "<i4", out, 8 * out).astype(np.int32)
    reader(q, mv[12 * out :])


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


def tflite_int8_model(raw: bytes, *, model_id: str = "fbnet01") -> QModel:
    """The int8 model of a full-integer ``.tflite`` MLP, keeping the file's own quantisation.

    What carries over: an optional ``QUANTIZE`` of a float input, int8 ``FULLY_CONNECTED`` ops
    (symmetric int8 weights, per-channel or per-tensor, int32 bias, no or ``RELU`` fused activation),
    ``RESHAPE`` to 2-D, and at the end an optional ``SOFTMAX`` (dropped: the MCU returns the last
    layer's scores, whose order is the same; refused for 2 classes, whose positive-class score would
    change) and ``DEQUANTIZE``. Anything else raises :class:`BlobError` naming the operator.
    A convolutional ``.tflite`` is read by :func:`.tflite_graph.tflite_graph` instead.
    """
    try:
        f = TfliteFile(raw)
    except ValueError as e:
        raise BlobError(str(e)) from None

    def qparams(i: int) -> QParams:
        q = f.quantization(i)
        if q is None:
            raise BlobError(f"tensor {f.name(i)!r} has no quantisation parameters (not a full-integer model)")
        return QParams(np.float64(q[0][0]), int(q[1][0]))

    def const(i: int, dtype: str) -> np.ndarray:
        if not f.is_const(i):
            raise BlobError(f"tensor {f.name(i)!r} is computed, not a constant")
        return f.const(i, dtype)

    if len(f.inputs) != 1:
        raise BlobError(f"the .tflite has {len(f.inputs)} inputs; the MCU runtime takes one")
    cur = f.inputs[0]
    q_in = qparams(cur) if f.type_name(cur) == "INT8" else None
    layers: list[QLayer] = []
    notes: list[str] = []
    q_out: QParams | None = None
    for op in f.ops:
        name, ins = op.name, op.inputs
        if not ins or ins[0] != cur:
            raise BlobError(f"operator {name} does not continue a single chain from the input")
        out = op.outputs[0]
        last = op.index == len(f.ops) - 1
        if name == "QUANTIZE" and not layers and q_in is None:
            q_in = qparams(out)
        elif name == "FULLY_CONNECTED" and q_in is not None:
            if f.type_name(ins[1]) != "INT8" or f.type_name(out) != "INT8":
                raise BlobError("FULLY_CONNECTED is not int8 (a dynamic-range or float .tflite)")
            w = const(ins[1], "int8")
            wq = f.quantization(ins[1])
            assert wq is not None
            if np.any(wq[1] != 0):
                raise BlobError("FULLY_CONNECTED weights with a non-zero zero point")
            b = (
                const(ins[2], "<i4").reshape(-1)
                if len(ins) > 2 and ins[2] >= 0
                else np.zeros(len(w), np.int32)
            )
            fused = int(getattr(op.options, "fusedActivationFunction", 0) or 0)
            if fused not in (0, 1):  # ActivationFunctionType NONE, RELU
                raise BlobError(f"FULLY_CONNECTED with fused activation {fused} (the MCU fuses ReLU only)")
            act = "relu" if fused == 1 else None
            q_layer_in = q_in if not layers else q_out
            assert q_layer_in is not None
            q_out = qparams(out)
            layers.append(
                dense.int8_linear_qlayer(
                    w, b, wq[0], act, q_layer_in, q_out, where=f"FULLY_CONNECTED {op.index}"
                )
            )
        elif name == "RESHAPE" and len(f.shape(out)) == 2:
            pass
        elif name == "SOFTMAX" and layers and (last or op.index == len(f.ops) - 2):
            if layers[-1].out_dim == 2:
                raise BlobError(
                    "a 2-class SOFTMAX head (its positive-class score cannot be kept in int8 logits)"
                )
            notes.append("the file's SOFTMAX head is dropped on the MCU (same class order)")
        elif name == "DEQUANTIZE" and last and layers:
            pass
        else:
            raise BlobError(f"operator {name}")
        cur = out
    if not layers or q_in is None or q_out is None:
        raise BlobError("no int8 FULLY_CONNECTED chain from the input")
    if notes:
        layers[-1].note = "; ".join(notes)
    return QModel(
        layers, float(q_in.scale), int(q_in.zero_point), float(q_out.scale), int(q_out.zero_point), model_id
    )


# Convolutional networks: an int8 operator graph (blob format version 2)

MLP_TFLITE_OPS = frozenset({"QUANTIZE", "FULLY_CONNECTED", "RESHAPE", "SOFTMAX", "DEQUANTIZE"})


def tflite_is_mlp(raw: bytes) -> bool:
    """Whether a ``.tflite`` is a chain of the ops :func:`tflite_int8_model` carries over (a dense
    blob); anything else goes through the graph importer (:func:`.tflite_graph.tflite_graph`)."""
    try:
        return all(op.name in MLP_TFLITE_OPS for op in TfliteFile(raw).ops)
    except ValueError as e:
        raise BlobError(str(e)) from None


# IR layer kinds of convolutional networks: a network with any of them runs as an operator graph
GRAPH_KINDS = frozenset(
    {
        "conv2d",
        "conv1d",
        "depthwise_conv2d",
        "pointwise",
        "maxpool2d",
        "avgpool2d",
        "global_avg_pool",
        "residual",
    }
)


def needs_graph(net: Network) -> bool:
    """Whether ``net`` is convolutional (a layer of :data:`GRAPH_KINDS`): it then runs as an int8
    operator graph (:func:`network_graph`, blob version 2) instead of a dense blob."""
    return any(layer.kind in GRAPH_KINDS for layer in net.layers)


def network_graph(net: Network, x_calib: np.ndarray, *, model_id: str = "fbnet01") -> QGraph:
    """The int8 operator graph of a (convolutional) network: exported as a full-integer ``.tflite``
    by our exporter (BatchNorm folded, activations calibrated on ``x_calib``), then imported with
    that file's quantisation, so the MCU computes what LiteRT's reference kernels compute on it."""
    from ...ir.export.prepare import quantisable
    from ...ir.export.tflite_export import network_to_tflite_int8

    x = np.asarray(x_calib, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise BlobError(f"calibration rows of shape {list(x.shape)}; give (N, {net.in_dim}) float rows")
    form, act_q = quantisable(net, x)
    export, replaced = monarch_standins(form)  # Monarch pointwise layers: dense stand-ins, then back
    try:
        raw = network_to_tflite_int8(export, act_q)
    except (ValueError, NotImplementedError) as e:
        raise BlobError(f"the int8 TFLite exporter refused the network: {e}") from None
    g = tflite_graph(raw, model_id=model_id)
    monarch_back(g, form, replaced, x)
    return g


def variant_graph(variant: Any, x_calib: np.ndarray | None) -> QGraph | None:
    """The int8 operator graph of a stored convolutional :class:`harness.ir.model.Variant` (a user's
    int8 ``.tflite`` CNN keeps its own quantisation; a network is exported calibrated on ``x_calib``);
    ``None`` for a variant that runs as a dense blob (an MLP, or a stored ``blob`` file)."""
    if variant.path("blob") is not None:
        return None
    model_id = str(variant.meta.get("task", "fbnet01"))[:16]
    own = variant.path("tflite")
    if variant.meta.get("int8_file") and own is not None:
        raw = own.read_bytes()
        if tflite_is_mlp(raw):
            return None
        g = tflite_graph(raw, model_id=model_id)
        if softmax_dropped(g) and g.out_tensor.size == 2:  # as tflite_int8_model: a score would change
            raise BlobError(
                "a 2-class SOFTMAX head (its positive-class score cannot be kept in int8 logits): the MCU "
                "returns the scores before it, whose last column does not order samples as the probability"
            )
        return g
    net = variant.net()
    if net is None or not needs_graph(net):
        return None
    if x_calib is None:
        raise BlobError(
            f"variant {variant.name!r}: no calibration rows to quantise it for the MCU; give the task's "
            "dataset an x_train (or x_eval) array"
        )
    return network_graph(net, x_calib, model_id=model_id)


def graph_blob(g: QGraph) -> bytes:
    """Blob version 2 bytes of an int8 operator graph: pruned 1x1 convolutions made sparse
    (:func:`.pointwise.sparsify_pointwise`, in place), memory-planned (:func:`harness.mcu.plan.plan`
    writes every tensor's arena offset) and packed (:func:`.graph_codec.write_graph_blob`)."""
    from ..plan import plan

    sparsify_pointwise(g)  # pruned 1x1 convolutions: the same integers from a sparse kernel
    plan(g)
    return write_graph_blob(g)


def blob_version(data: bytes) -> int:
    """The format version a blob's header states (1: dense layers, 2: operator graph)."""
    if len(data) < HEADER.size:
        raise BlobError(f"blob has {len(data)} bytes, shorter than its {HEADER.size}-byte header")
    magic, version = struct.unpack_from("<4sH", data)
    if magic != MAGIC:
        raise BlobError(f"not a frugalbench blob (magic {magic!r}, expected {MAGIC!r})")
    return int(version)


def read_any_blob(data: bytes) -> QModel | QGraph:
    """Parse and validate a blob of either version: a :class:`QModel` (1) or a :class:`QGraph` (2)."""
    return read_graph_blob(data) if blob_version(data) == VERSION2 else read_blob(data)


def variant_blob(variant: Any, x_calib: np.ndarray | None) -> bytes:
    """Blob bytes for a stored :class:`harness.ir.model.Variant`: its ``blob`` file if present; a
    convolutional network or int8 ``.tflite`` CNN as an operator graph (version 2, :func:`variant_graph`);
    else a dense blob exported from ``variant.net()`` calibrated on ``x_calib`` (the runner may store
    the result)."""
    path = variant.path("blob")
    if path is not None:
        data = path.read_bytes()
        read_any_blob(data)
        return data
    g = variant_graph(variant, x_calib)
    if g is not None:
        return graph_blob(g)
    model_id = str(variant.meta.get("task", "fbnet01"))[:16]
    own = variant.path("tflite")
    if variant.meta.get("int8_file") and own is not None:  # a user's int8 file: its own quantisation
        return write_blob(tflite_int8_model(own.read_bytes(), model_id=model_id))
    net = variant.net()
    if net is not None and x_calib is None:
        raise BlobError(
            f"variant {variant.name!r}: no calibration rows to quantise it for the MCU; give the task's "
            "dataset an x_train (or x_eval) array"
        )
    if net is None:
        raise BlobError(
            f"variant {variant.name!r}: the MCU runs only models frugalbench converts from the model file, "
            "and this one did not convert; measure it on a CPU target"
        )
    return export_blob(net, x_calib, model_id=model_id)
