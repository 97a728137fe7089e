"""Any full-integer ``.tflite`` CNN → a :class:`~.graph.QGraph` with the file's own quantisation.

Every scale and zero point is the file's; the requantisation multipliers and shifts are computed as
LiteRT's ``Prepare`` computes them (:mod:`harness.ir.quant`), so :func:`harness.mcu.graph_ref.run_graph`
and the firmware reproduce LiteRT's reference kernels bit for bit.

Operators: ``CONV_2D``, ``DEPTHWISE_CONV_2D`` (depth multiplier 1), ``FULLY_CONNECTED``,
``AVERAGE_POOL_2D``, ``MAX_POOL_2D``, ``ADD`` (two computed tensors of one shape), ``MEAN`` over H and
W, ``RESHAPE``/``SQUEEZE``, fused ``NONE``/``RELU``/``RELU6``; standalone int8 ``RELU``/``RELU6`` and
int8→int8 ``QUANTIZE`` (requantisations: a 1×1 depthwise convolution with unit weights computes them
with the same integers); ``QUANTIZE`` of a float input, ``DEQUANTIZE`` of the output, and a final
``SOFTMAX`` (dropped: the MCU returns the int8 scores before it, in the same class order; said in
:attr:`QGraph.notes`). Anything else raises :class:`~.container.BlobError` naming the operator, its
position and output tensor, and what is supported.
"""

from __future__ import annotations

import numpy as np

from ...ir.importers.tflite_file import TfliteFile, TfliteOp
from ...ir.quant import (
    QParams,
    activation_range_int8,
    conv_multipliers,
    quantize_multiplier_tflite,
)
from .container import BlobError
from .graph import QGraph, QOp, QTensor

SUPPORTED_OPS = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D (depth multiplier 1)",
    "FULLY_CONNECTED",
    "AVERAGE_POOL_2D",
    "MAX_POOL_2D",
    "ADD",
    "MEAN (over H and W)",
    "RESHAPE",
    "SQUEEZE",
    "RELU",
    "RELU6",
    "SOFTMAX (last)",
    "QUANTIZE",
    "DEQUANTIZE (last)",
)
SOFTMAX_DROPPED = "the file's SOFTMAX head"


def softmax_dropped(g: QGraph) -> bool:
    """Whether the importer dropped a final SOFTMAX (the outputs are the scores before it)."""
    return any(n.startswith(SOFTMAX_DROPPED) for n in g.notes)


_HANDLED = frozenset(
    {
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "FULLY_CONNECTED",
        "AVERAGE_POOL_2D",
        "MAX_POOL_2D",
        "ADD",
        "MEAN",
        "RESHAPE",
        "SQUEEZE",
        "RELU",
        "RELU6",
        "SOFTMAX",
        "QUANTIZE",
        "DEQUANTIZE",
    }
)
_FUSED = {0: None, 1: "relu", 3: "relu6"}  # ActivationFunctionType NONE, RELU, RELU6
_FUSED_NAMES = {2: "RELU_N1_TO_1", 4: "TANH", 5: "SIGN_BIT", 6: "SIGMOID"}


def _f32(v: float) -> float:
    """A scale as the file stores it (float32), widened to double as LiteRT's ``Prepare`` reads it."""
    return float(np.float32(v))


class _Importer:
    def __init__(self, f: TfliteFile, model_id: str) -> None:
        self.f = f
        self.tensors: list[QTensor] = []
        self.ids: dict[int, int] = {}  # file tensor index -> QTensor index
        self.q: dict[int, QParams] = {}  # QTensor index -> its parameters
        self.ops: list[QOp] = []
        self.notes: list[str] = []
        self.model_id = model_id
        self.output: int | None = None  # file tensor that ends the graph (before SOFTMAX/DEQUANTIZE)

    # errors and tensors -------------------------------------------------------------------------

    def where(self, op: TfliteOp) -> str:
        out = f" ({self.f.name(op.outputs[0])})" if op.outputs else ""
        return f"{op.name} #{op.index}{out}"

    def refuse(self, op: TfliteOp, why: str) -> BlobError:
        return BlobError(
            f"the MCU cannot run operator {self.where(op)}: {why}. The MCU runs int8 "
            f"{', '.join(SUPPORTED_OPS)}; measure this model on a CPU target"
        )

    def sample_shape(self, i: int, op: TfliteOp | None = None) -> tuple[int, ...]:
        shape = self.f.shape(i)
        if len(shape) < 2 or shape[0] != 1:
            what = f"tensor {self.f.name(i)!r} of shape {list(shape)}"
            if op is None:
                raise BlobError(f"the MCU runs one sample at a time; {what} has no batch axis of 1")
            raise self.refuse(op, f"{what} has no batch axis of 1")
        return shape[1:]

    def int8_q(self, i: int, op: TfliteOp | None) -> QParams:
        kind = self.f.type_name(i)
        qp = self.f.quantization(i)
        if kind != "INT8" or qp is None or len(qp[0]) != 1:
            what = f"tensor {self.f.name(i)!r} is {kind}" + ("" if qp is None else " (not per-tensor int8)")
            msg = f"{what}; the MCU runs full-integer int8 models (quantise the model fully to int8)"
            if op is None:
                raise BlobError(msg)
            raise self.refuse(op, msg)
        return QParams(np.float64(qp[0][0]), int(qp[1][0]))

    def act_in(self, op: TfliteOp, k: int = 0) -> int:
        """The QTensor id of computed input ``k`` of ``op``."""
        i = op.inputs[k]
        if i < 0 or i not in self.ids:
            if i >= 0 and self.f.type_name(i) != "INT8":
                raise self.refuse(
                    op,
                    f"input {self.f.name(i)!r} is {self.f.type_name(i)}; the MCU runs full-integer int8 models",
                )
            if i >= 0 and self.f.is_const(i):
                raise self.refuse(
                    op, f"input {self.f.name(i)!r} is a constant where the MCU needs activations"
                )
            raise self.refuse(op, "its input is not computed from the model input by supported operators")
        return self.ids[i]

    def new(self, i: int, op: TfliteOp | None, shape: tuple[int, ...] | None = None) -> int:
        """A QTensor for file tensor ``i`` (an op's int8 output) with the file's parameters."""
        q = self.int8_q(i, op)
        if shape is None:
            shape = self.sample_shape(i, op)
            if len(shape) == 2:  # (L, C), e.g. between the RESHAPEs of a Conv1D: one row of an image
                shape = (1, *shape)
            if len(shape) > 3:
                what = f"tensor {self.f.name(i)!r} of per-sample shape {list(shape)}"
                if op is None:
                    raise BlobError(f"{what}: the MCU holds (H, W, C) or (N,) tensors")
                raise self.refuse(op, f"{what} (the MCU holds (H, W, C) or (N,) tensors)")
        t = QTensor(
            self.f.name(i),
            shape,
            _f32(q.scale),
            int(q.zero_point),
        )
        self.tensors.append(t)
        self.ids[i] = len(self.tensors) - 1
        self.q[len(self.tensors) - 1] = q
        return len(self.tensors) - 1

    def alias(self, i: int, tid: int) -> None:
        self.ids[i] = tid

    def const(self, op: TfliteOp, k: int, what: str) -> np.ndarray:
        i = op.inputs[k] if k < len(op.inputs) else -1
        if i < 0 or not self.f.is_const(i):
            raise self.refuse(op, f"its {what} is not a constant")
        kind = self.f.type_name(i)
        dtypes = {"INT8": np.int8, "INT32": np.int32, "INT64": np.int64}
        if kind not in dtypes:
            raise self.refuse(op, f"its {what} {self.f.name(i)!r} is {kind}, not int8/int32")
        return self.f.const(i, np.dtype(dtypes[kind]).newbyteorder("<"))

    def fused(self, op: TfliteOp, q_out: QParams) -> tuple[int, int]:
        code = int(getattr(op.options, "fusedActivationFunction", 0) or 0)
        if code not in _FUSED:
            raise self.refuse(op, f"fused activation {_FUSED_NAMES.get(code, code)} (NONE, RELU, RELU6 run)")
        return activation_range_int8(q_out, _FUSED[code])

    def emit(self, op: TfliteOp, kind: str, ins: list[int], out: int, **kw: object) -> None:
        self.ops.append(QOp(kind, ins, out, where=self.where(op), **kw))  # type: ignore[arg-type]

    # operators ----------------------------------------------------------------------------------

    def weights(self, op: TfliteOp, axis: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """int8 weights, their per-channel scales (length ``n``) and the int32 bias of a conv/FC op."""
        w = self.const(op, 1, "weight tensor")
        wi = op.inputs[1]
        qp = self.f.quantization(wi)
        if w.dtype != np.int8 or qp is None:
            raise self.refuse(
                op, f"weights {self.f.name(wi)!r} are not int8 (a float or dynamic-range model)"
            )
        scale, zp, dim = qp
        if np.any(zp != 0):
            raise self.refuse(
                op, "int8 weights with a non-zero zero point (the int8 spec makes them symmetric)"
            )
        if len(scale) not in (1, n) or (len(scale) > 1 and dim != axis):
            raise self.refuse(op, f"{len(scale)} weight scales along axis {dim} for {n} output channels")
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            b = self.const(op, 2, "bias").reshape(-1)
            if b.dtype != np.int32 or len(b) != n:
                raise self.refuse(op, f"bias of {b.dtype} ({len(b)} values) instead of {n} int32")
        else:
            b = np.zeros(n, np.int32)
        return w, np.broadcast_to(scale, (n,)).astype(np.float64), b.astype(np.int32)

    def padding(self, op: TfliteOp, h: int, w: int, k: tuple[int, int], oh: int, ow: int) -> dict[str, int]:
        o = op.options
        sh, sw = int(o.strideH), int(o.strideW)
        if int(getattr(o, "dilationHFactor", 1) or 1) != 1 or int(getattr(o, "dilationWFactor", 1) or 1) != 1:
            raise self.refuse(op, "dilation other than 1")
        same = o.padding == self.f.s.Padding.SAME
        want = (-(-h // sh), -(-w // sw)) if same else ((h - k[0]) // sh + 1, (w - k[1]) // sw + 1)
        if (oh, ow) != want:
            raise self.refuse(op, f"output {oh}x{ow} where its padding and strides give {want[0]}x{want[1]}")
        pt = max((oh - 1) * sh + k[0] - h, 0) // 2 if same else 0
        pl = max((ow - 1) * sw + k[1] - w, 0) // 2 if same else 0
        return {"stride_h": sh, "stride_w": sw, "pad_top": pt, "pad_left": pl}

    def spatial_in(self, op: TfliteOp) -> tuple[int, QTensor, QParams]:
        x = self.act_in(op)
        t = self.tensors[x]
        if len(t.shape) != 3:
            raise self.refuse(op, f"input of per-sample shape {list(t.shape)}, not (H, W, C)")
        return x, t, self.q[x]

    def conv(self, op: TfliteOp, depthwise: bool) -> None:
        x, t, q_in = self.spatial_in(op)
        h, w_, c = t.shape
        out = op.outputs[0]
        oh, ow, co = self.sample_shape(out, op)
        w, s_w, b = self.weights(op, 3 if depthwise else 0, co)
        if depthwise:
            if w.shape[0] != 1 or w.shape[3] != co:
                raise self.refuse(op, f"weights of shape {list(w.shape)}")
            if co != c:
                raise self.refuse(op, f"depth multiplier {co // c} (the MCU runs depth multiplier 1)")
            k = (w.shape[1], w.shape[2])
        else:
            if w.shape[0] != co or w.shape[3] != c:
                raise self.refuse(op, f"weights of shape {list(w.shape)} for {c} → {co} channels")
            k = (w.shape[1], w.shape[2])
        attrs = self.padding(op, h, w_, k, oh, ow)
        y = self.new(out, op)
        q_out = self.q[y]
        lo, hi = self.fused(op, q_out)
        mult, shift = conv_multipliers(float(q_in.scale), s_w, float(q_out.scale))
        params = {"w": w[0] if depthwise else w, "bias": b, "mult": mult, "shift": shift}
        self.emit(
            op,
            "dwconv2d" if depthwise else "conv2d",
            [x],
            y,
            params=params,
            attrs=attrs,
            act_min=lo,
            act_max=hi,
        )

    def dense(self, op: TfliteOp) -> None:
        x = self.act_in(op)
        n_in = self.tensors[x].size
        out = op.outputs[0]
        if getattr(op.options, "weightsFormat", 0):
            raise self.refuse(op, "shuffled weights (weights_format other than DEFAULT)")
        w = self.const(op, 1, "weight tensor")
        if w.ndim != 2 or w.shape[1] != n_in:
            raise self.refuse(op, f"weights of shape {list(w.shape)} for {n_in} inputs per sample")
        n = w.shape[0]
        y_shape = self.sample_shape(out, op)
        if int(np.prod(y_shape)) != n:
            raise self.refuse(op, f"output of per-sample shape {list(y_shape)} for {n} units")
        w, s_w, b = self.weights(op, 0, n)
        y = self.new(out, op, (n,))
        q_in, q_out = self.q[x], self.q[y]
        # LiteRT's int8 FULLY_CONNECTED requantises with single rounding (its int64 accumulator path),
        # per-tensor and per-channel alike, with the Q31 multiplier of double(s_in) * double(s_w) /
        # double(s_out) (measured bit-exact on BUILTIN_REF; tests/test_mcu_graph_import.py)
        mult, shift = conv_multipliers(float(q_in.scale), s_w, float(q_out.scale))
        lo, hi = self.fused(op, q_out)
        params = {"w": w, "bias": b, "mult": mult, "shift": shift}
        self.emit(op, "dense", [x], y, params=params, attrs={"rounding": 1}, act_min=lo, act_max=hi)

    def pool(self, op: TfliteOp, kind: str) -> None:
        x, t, q_in = self.spatial_in(op)
        out = op.outputs[0]
        oh, ow, c = self.sample_shape(out, op)
        o = op.options
        k = (int(o.filterHeight), int(o.filterWidth))
        attrs = {"kh": k[0], "kw": k[1], **self.padding(op, t.shape[0], t.shape[1], k, oh, ow)}
        y = self.new(out, op)
        q_out = self.q[y]
        if _f32(q_out.scale) != _f32(q_in.scale) or int(q_out.zero_point) != int(q_in.zero_point):
            raise self.refuse(op, "output parameters differ from the input's (the int8 spec ties them)")
        lo, hi = self.fused(op, q_out)
        self.emit(op, kind, [x], y, attrs=attrs, act_min=lo, act_max=hi)

    def add(self, op: TfliteOp) -> None:
        if len(op.inputs) != 2:
            raise self.refuse(op, f"{len(op.inputs)} inputs")
        a, b = self.act_in(op, 0), self.act_in(op, 1)
        if self.tensors[a].shape != self.tensors[b].shape:
            raise self.refuse(
                op,
                f"broadcasting {list(self.tensors[a].shape)} + {list(self.tensors[b].shape)} (equal shapes run)",
            )
        y = self.new(op.outputs[0], op, self.tensors[a].shape)
        qa, qb, qo = self.q[a], self.q[b], self.q[y]
        # LiteRT's int8 ADD Prepare (left shift 20, inputs scaled to twice the larger input scale)
        sa, sb, so = _f32(qa.scale), _f32(qb.scale), _f32(qo.scale)
        twice = 2 * max(sa, sb)
        left = 20
        ma, sha = quantize_multiplier_tflite(np.array([sa / twice]))
        mb, shb = quantize_multiplier_tflite(np.array([sb / twice]))
        mo, sho = quantize_multiplier_tflite(np.array([twice / ((1 << left) * so)]))
        params = {
            "left_shift": np.array([left], np.int32),
            "mult_a": ma,
            "shift_a": sha,
            "mult_b": mb,
            "shift_b": shb,
            "mult_out": mo,
            "shift_out": sho,
        }
        lo, hi = self.fused(op, qo)
        self.emit(op, "add", [a, b], y, params=params, act_min=lo, act_max=hi)

    def mean(self, op: TfliteOp) -> None:
        x, t, q_in = self.spatial_in(op)
        axes = self.const(op, 1, "axes").reshape(-1)
        rank = len(self.f.shape(op.inputs[0]))
        if rank != 4 or sorted({int(a) % rank for a in axes}) != [1, 2] or len(axes) != 2:
            raise self.refuse(op, f"axes {axes.tolist()} (the MCU averages over H and W: axes 1, 2)")
        h, w_, c = t.shape
        y_shape = self.sample_shape(op.outputs[0], op)
        if int(np.prod(y_shape)) != c:
            raise self.refuse(op, f"output of per-sample shape {list(y_shape)} for {c} channels")
        y = self.new(op.outputs[0], op)
        q_out = self.q[y]
        n = int(h * w_)
        # reference_ops::QuantizedMeanOrSum (both keep_dims forms): the multiplier of s_in / s_out,
        # with 1 / (H*W) folded in by an integer division of the multiplier shifted left
        (m,), (s,) = quantize_multiplier_tflite(np.array([_f32(q_in.scale) / _f32(q_out.scale)]))
        up = min(n.bit_length() - 1, 32, 31 + int(s))
        mult = np.array([(int(m) << up) // n], np.int32)
        shift = np.array([int(s) - up], np.int32)
        params = {"mult": mult, "shift": shift}
        self.emit(op, "mean", [x], y, params=params)

    def requant(self, op: TfliteOp, act: str | None) -> None:
        """Standalone RELU/RELU6 or int8→int8 QUANTIZE: ``clamp(MBQM(x - zp_in, M, s) + zp_out)``,
        computed as a 1×1 depthwise convolution with unit weights and no bias."""
        x = self.act_in(op)
        t = self.tensors[x]
        y = self.new(op.outputs[0], op, t.shape)
        q_in, q_out = self.q[x], self.q[y]
        if op.name == "QUANTIZE":  # Requantize: double(s_in) / double(s_out)
            real = _f32(q_in.scale) / _f32(q_out.scale)
        else:  # ReluPrepare: s_in / s_out in float32
            real = float(np.float32(q_in.scale) / np.float32(q_out.scale))
        if len(t.shape) != 3:
            raise self.refuse(
                op, f"a requantisation of a tensor of shape {list(t.shape)} (fuse it into the op before)"
            )
        c = t.shape[-1]
        m1, s1 = quantize_multiplier_tflite(np.array([real]))
        params = {
            "w": np.ones((1, 1, c), np.int8),
            "bias": np.zeros(c, np.int32),
            "mult": np.repeat(m1, c),
            "shift": np.repeat(s1, c),
        }
        lo, hi = activation_range_int8(q_out, act)
        attrs = {"stride_h": 1, "stride_w": 1, "pad_top": 0, "pad_left": 0}
        self.emit(op, "dwconv2d", [x], y, params=params, attrs=attrs, act_min=lo, act_max=hi)

    def reshape(self, op: TfliteOp) -> None:
        x = self.act_in(op)
        out = op.outputs[0]
        shape = self.sample_shape(out, op)
        if int(np.prod(shape)) != self.tensors[x].size:
            raise self.refuse(op, f"reshape of {self.tensors[x].size} values to {list(shape)}")
        q_in, q_out = self.q[x], self.int8_q(out, op)
        if _f32(q_in.scale) != _f32(q_out.scale) or int(q_in.zero_point) != int(q_out.zero_point):
            raise self.refuse(op, "output parameters differ from the input's")
        y = self.new(out, op)
        self.emit(op, "reshape", [x], y)

    # the walk -----------------------------------------------------------------------------------

    def run(self) -> QGraph:
        f = self.f
        if len(f.inputs) != 1:
            raise BlobError(f"the .tflite has {len(f.inputs)} inputs; the MCU runtime takes one")
        if len(f.outputs) != 1:
            raise BlobError(f"the .tflite has {len(f.outputs)} outputs; the MCU runtime returns one")
        src = f.inputs[0]
        float_in = f.type_name(src) == "FLOAT32"
        g_in = -1 if float_in else self.new(src, None)
        last = len(f.ops) - 1
        for op in f.ops:
            name = op.name
            if name not in _HANDLED:
                raise self.refuse(op, "unsupported operator")
            if not op.outputs:
                raise self.refuse(op, "it has no output")
            if self.output is not None and name not in ("DEQUANTIZE",):
                raise self.refuse(op, "it follows the SOFTMAX head")
            if name == "QUANTIZE" and float_in and op.inputs[0] == src and g_in < 0:
                g_in = self.new(op.outputs[0], op)
            elif name == "QUANTIZE":
                if f.type_name(op.inputs[0]) != "INT8":
                    raise self.refuse(
                        op, f"quantisation of a {f.type_name(op.inputs[0])} tensor inside the graph"
                    )
                self.requant(op, None)
            elif name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                self.conv(op, name == "DEPTHWISE_CONV_2D")
            elif name == "FULLY_CONNECTED":
                self.dense(op)
            elif name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
                self.pool(op, "avgpool" if name == "AVERAGE_POOL_2D" else "maxpool")
            elif name == "ADD":
                self.add(op)
            elif name == "MEAN":
                self.mean(op)
            elif name in ("RESHAPE", "SQUEEZE"):
                self.reshape(op)
            elif name in ("RELU", "RELU6"):
                self.requant(op, name.lower())
            elif name == "SOFTMAX" and op.index >= last - 1:
                x = self.act_in(op)
                self.output = op.inputs[0]
                self.alias(op.outputs[0], x)
                self.notes.append(
                    f"{SOFTMAX_DROPPED} ({self.where(op)}) is dropped on the MCU: it returns the int8 "
                    "scores before it (same class order)"
                )
            elif name == "DEQUANTIZE" and op.index == last:
                self.alias(op.outputs[0], self.act_in(op))
                if self.output is None:
                    self.output = op.inputs[0]
            else:
                raise self.refuse(op, "only at the end of the model")
        out = f.outputs[0]
        if out not in self.ids:
            raise BlobError(f"the output {f.name(out)!r} is not computed by supported operators")
        if not self.ops:
            raise BlobError("the .tflite computes nothing the MCU runs (no int8 operator)")
        if g_in < 0:
            raise BlobError("the float input is never quantised to int8 (not a full-integer model)")
        return QGraph(self.tensors, self.ops, g_in, self.ids[out], self.model_id, self.notes)


def tflite_graph(raw: bytes, *, model_id: str = "fbnet01") -> QGraph:
    """The int8 operator graph of a full-integer ``.tflite`` CNN (or MLP), keeping its quantisation.

    Raises :class:`BlobError` naming the operator (``"MEAN #12 (tensor name)"``) and the reason for
    anything the MCU runtime cannot run.
    """
    try:
        f = TfliteFile(raw)
    except ValueError as e:
        raise BlobError(str(e)) from None
    return _Importer(f, model_id[:16]).run()
