"""Parameters and MACs of an ``.onnx`` or ``.tflite`` file, per operator and in total.

Conventions (those of MLPerf Tiny and of the common profilers):

* **Parameters** are the elements of every constant tensor stored in the model: ONNX initializers
  and ``Constant`` node values (in every graph, subgraphs included), TFLite tensors backed by a
  non-empty buffer (each buffer once, every subgraph). Quantisation scales are not tensors in
  TFLite and are not counted there; in ONNX they are initializers and are.
* **MACs** are the multiply-accumulates of one inference: ``Conv``/``ConvTranspose``/``Gemm``/
  ``MatMul`` (and their quantised forms) and recurrent cells in ONNX; ``CONV_2D``, ``CONV_3D``,
  ``DEPTHWISE_CONV_2D``, ``TRANSPOSE_CONV``, ``FULLY_CONNECTED``, ``BATCH_MATMUL`` in TFLite. Bias
  additions, element-wise arithmetic, activations, pooling, normalisation, reductions and data
  movement count 0. A dynamic leading (batch) dimension of a graph input is taken as 1; other
  dynamic dims can be given (``input_shapes``), and ONNX shape arithmetic and ``If`` conditions that
  follow from the shapes and from inputs given as constants are folded first (:mod:`.onnx_fold`).
* Unknown is ``None``, never 0: an operator without a rule, control flow (``If``/``Loop``/``Scan``,
  ``WHILE``/``IF``), custom operators or a shape left dynamic make the total MACs ``None``, with a
  reason naming the operator.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError

Shape = tuple[int | None, ...]


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# ONNX operators that do no multiply-accumulate under the convention above
ONNX_ZERO_MAC = _names(
    """Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization
    BitShift Cast CastLike Ceil Celu Clip Compress Concat ConcatFromSequence Constant ConstantOfShape
    Cos Cosh CumSum DepthToSpace DequantizeLinear Div Dropout DynamicQuantizeLinear Elu Equal Erf Exp
    Expand EyeLike Flatten Floor Gather GatherElements GatherND Gelu GlobalAveragePool GlobalLpPool
    GlobalMaxPool Greater GreaterOrEqual GroupNormalization HardSigmoid HardSwish Hardmax Identity
    InstanceNormalization IsInf IsNaN LRN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax
    LpNormalization LpPool MaxPool MaxRoiPool MaxUnpool Max Mean Min Mish Mod Mul Neg NonZero Not OneHot
    Or PRelu Pad Pow QuantizeLinear Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp
    ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize
    ReverseSequence Round ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice
    Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile
    TopK Transpose Trilu Unsqueeze Upsample Where Xor"""
)
ONNX_CONTROL_FLOW = frozenset({"If", "Loop", "Scan"})

# TFLite builtin operators that do no multiply-accumulate (or run state bookkeeping)
TFLITE_ZERO_MAC = _names(
    """ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_TO_SPACE_ND BROADCAST_ARGS
    BROADCAST_TO CALL_ONCE CAST CEIL CONCATENATION COS CUMSUM DEPTH_TO_SPACE DEQUANTIZE DIV ELU EQUAL
    EXP EXPAND_DIMS FILL FLOOR FLOOR_DIV FLOOR_MOD GATHER GATHER_ND GELU GREATER GREATER_EQUAL
    HARD_SWISH L2_NORMALIZATION L2_POOL_2D LEAKY_RELU LESS LESS_EQUAL LOCAL_RESPONSE_NORMALIZATION LOG
    LOGICAL_AND LOGICAL_NOT LOGICAL_OR LOGISTIC LOG_SOFTMAX MAXIMUM MAX_POOL_2D MEAN MINIMUM MIRROR_PAD
    MUL NEG NOT_EQUAL ONE_HOT PACK PAD PADV2 POW PRELU QUANTIZE RANGE READ_VARIABLE REDUCE_ANY
    REDUCE_MAX REDUCE_MIN REDUCE_PROD RELU RELU6 RELU_N1_TO_1 RELU_0_TO_1 RESHAPE RESIZE_BILINEAR
    RESIZE_NEAREST_NEIGHBOR REVERSE_V2 ROUND RSQRT SELECT SELECT_V2 SHAPE SIN SLICE SOFTMAX
    SPACE_TO_BATCH_ND SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE
    SUB SUM TANH TILE TOPK_V2 TRANSPOSE UNPACK VAR_HANDLE ZEROS_LIKE"""
)
TFLITE_CONTROL_FLOW = frozenset({"WHILE", "IF"})
DYNAMIC = "not static (dynamic input dims, or dims computed from values in the graph)"


@dataclass(frozen=True)
class OpCount:
    """One operator: the constant elements it reads first and its MACs (``None``: unknown, see ``reason``)."""

    index: int
    op: str
    name: str
    params: int
    macs: int | None
    reason: str | None = None


@dataclass(frozen=True)
class Counts:
    """Totals of a model file; ``macs`` is ``None`` when any operator's is, ``reasons`` say why."""

    params: int | None
    macs: int | None
    ops: tuple[OpCount, ...] = ()
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def reason(self) -> str | None:
        """One line: the first reasons the MACs are unknown (``None`` when they are known)."""
        if not self.reasons:
            return None
        more = f" (+{len(self.reasons) - 3} more)" if len(self.reasons) > 3 else ""
        return "; ".join(self.reasons[:3]) + more


def _total(params: int | None, ops: list[OpCount], extra: Iterable[str] = ()) -> Counts:
    found = [o.reason for o in ops if o.macs is None and o.reason]
    # control flow and operators without a rule first: they stay unknown whatever the input shapes
    reasons = [*extra, *sorted(found, key=lambda r: DYNAMIC in r)]
    macs = None if reasons else sum(o.macs or 0 for o in ops)
    return Counts(params, macs, tuple(ops), tuple(reasons))


def _static(shape: Shape | None) -> bool:
    return shape is not None and all(d is not None for d in shape)


def _fmt(shape: Shape | None) -> str:
    if shape is None:
        return "unknown"
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _elements(shape: Sequence[int]) -> int:
    return int(prod(int(d) for d in shape))


# ---------------------------------------------------------------- ONNX


def _onnx_graphs(graph: Any) -> Iterator[Any]:
    """``graph`` and every subgraph (``If`` branches, ``Loop``/``Scan`` bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.g.ByteSize():
                yield from _onnx_graphs(attr.g)
            for g in attr.graphs:
                yield from _onnx_graphs(g)


def _constant_shape(node: Any) -> tuple[int, ...] | None:
    """Shape of a ``Constant`` node's value (``None`` for a value we do not recognise)."""
    for a in node.attribute:
        if a.name == "value":
            return tuple(int(d) for d in a.t.dims)
        if a.name == "sparse_value":
            return tuple(int(d) for d in a.sparse_tensor.dims)
        if a.name in ("value_float", "value_int", "value_string"):
            return ()
        if a.name in ("value_floats", "value_ints", "value_strings"):
            return (len(a.floats) or len(a.ints) or len(a.strings),)
    return None


def _onnx_constants(model: Any) -> dict[str, tuple[int, ...]]:
    """Name → shape of every initializer and ``Constant`` value in every graph of ``model``."""
    out: dict[str, tuple[int, ...]] = {}
    for g in _onnx_graphs(model.graph):
        for init in g.initializer:
            out.setdefault(init.name, tuple(int(d) for d in init.dims))
        for node in g.node:
            if node.op_type == "Constant" and node.output:
                shape = _constant_shape(node)
                if shape is not None:
                    out.setdefault(node.output[0], shape)
    return out


def _value_shape(vi: Any) -> Shape | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in t.shape.dim)


def _fix_inputs(model: Any, inits: set[str], given: Mapping[str, Sequence[int]]) -> None:
    """Give the graph inputs concrete dims: ``given`` ones, else a dynamic leading dim of 1."""
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = vi.type.tensor_type.shape.dim
        if vi.name in given:
            new = list(given[vi.name])
            del dims[:]
            for d in new:
                dims.add().dim_value = int(d)
        elif len(dims) and not (dims[0].HasField("dim_value") and dims[0].dim_value > 0):
            dims[0].dim_value = 1


def _attr(node: Any, name: str, default: int = 0) -> int:
    return next((int(a.i) for a in node.attribute if a.name == name), default)


def _onnx_node_macs(node: Any, shape: Any) -> tuple[int | None, str | None]:
    """MACs of one ONNX node (``shape(name)`` gives a tensor's inferred shape), or ``(None, reason)``."""
    op, label = node.op_type, f"{node.op_type} {node.name or node.output[0]!r}"
    ins = list(node.input)

    def need(*names: str) -> list[tuple[int, ...]] | str:
        got = [shape(n) for n in names]
        for n, s in zip(names, got, strict=True):
            if not _static(s):
                return f"{label}: shape of {n!r} is {_fmt(s)}, {DYNAMIC}"
        return [tuple(int(d) for d in s) for s in got]

    if op in ("Conv", "ConvInteger", "QLinearConv"):
        w_name = ins[3] if op == "QLinearConv" else ins[1]
        s = need(w_name, node.output[0])
        if isinstance(s, str):
            return None, s
        w, y = s
        return _elements(y) * _elements(w[1:]), None
    if op == "ConvTranspose":
        s = need(ins[0], ins[1])
        if isinstance(s, str):
            return None, s
        x, w = s
        return _elements(x) * _elements(w[1:]), None
    if op == "Gemm":
        s = need(ins[0], ins[1])
        if isinstance(s, str):
            return None, s
        a, b = s
        m, k = (a[1], a[0]) if _attr(node, "transA") else (a[0], a[1])
        n = b[0] if _attr(node, "transB") else b[1]
        return m * k * n, None
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        a_name, b_name = (ins[0], ins[3]) if op == "QLinearMatMul" else (ins[0], ins[1])
        s = need(a_name, node.output[0])
        if isinstance(s, str):
            return None, s
        a, y = s
        return _elements(y) * (a[-1] if a else 1), None  # every output element is a K-long dot product
    if op in ("LSTM", "GRU", "RNN"):
        s = need(ins[0], ins[1], ins[2])
        if isinstance(s, str):
            return None, s
        x, w, r = s
        steps = x[0] * x[1] if not _attr(node, "layout") else x[1] * x[0]  # (seq, batch) either way
        return steps * (_elements(w) + _elements(r)), None  # W: (dirs, gates*H, I), R: (dirs, gates*H, H)
    if op in ONNX_CONTROL_FLOW:
        return None, f"{label}: control flow (the work done depends on input values)"
    if op in ONNX_ZERO_MAC:
        return 0, None
    return None, f"{label}: no MAC rule for operator {op}"


def load_onnx(model: str | Path | bytes) -> Any:
    """The ``ModelProto`` of an ONNX file or bytes (external weights not loaded: counting needs dims only)."""
    import onnx

    try:
        if isinstance(model, bytes):
            return onnx.load_from_string(model)
        return onnx.load(str(model), load_external_data=False)
    except Exception as e:  # protobuf DecodeError and friends
        where = "the bytes" if isinstance(model, bytes) else str(model)
        raise ModelError(
            f"{where} is not a readable ONNX model ({type(e).__name__}: {e}); corrupt or truncated?"
        ) from None


def count_onnx(
    model: Any,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    values: Mapping[str, np.ndarray] | None = None,
) -> Counts:
    """Counts of an ONNX model (a path, serialized bytes or a ``ModelProto``).

    ``input_shapes`` gives the dims of graph inputs whose shapes are dynamic in the file; ``values``
    the values of inputs fed as constants (a sample rate): shape arithmetic and ``If`` conditions
    that follow from them are folded (:mod:`.onnx_fold`), so the MACs are those of that input.
    """
    import onnx
    from onnx import shape_inference

    from .onnx_fold import fold_shapes

    if isinstance(model, str | Path | bytes):
        model = load_onnx(model)
    m = onnx.ModelProto()
    m.CopyFrom(model)
    consts = _onnx_constants(m)
    params = sum(_elements(s) for s in consts.values())
    _fix_inputs(m, {i.name for i in m.graph.initializer}, input_shapes or {})
    extra: list[str] = []
    try:
        m = fold_shapes(m, values)
    except Exception:  # folding is best effort: plain shape inference then
        try:
            m = shape_inference.infer_shapes(m, data_prop=True)
        except Exception as e:  # an invalid or unsupported graph: shapes stay unknown
            extra.append(f"ONNX shape inference failed ({type(e).__name__}: {str(e).splitlines()[0][:160]})")
    shapes: dict[str, Shape | None] = {}
    for vi in [*m.graph.value_info, *m.graph.input, *m.graph.output]:
        shapes[vi.name] = _value_shape(vi)
    shapes.update(consts)
    seen: set[str] = set()
    ops = []
    for i, node in enumerate(m.graph.node):
        reads = [n for n in node.input if n in consts and n not in seen]
        if node.op_type == "Constant":
            reads = [n for n in node.output if n in consts and n not in seen]
        seen.update(reads)
        macs: int | None
        why: str | None
        if node.domain not in ("", "ai.onnx"):
            macs, why = None, f"{node.op_type} {node.name!r}: custom-domain operator ({node.domain})"
        else:
            macs, why = _onnx_node_macs(node, shapes.get)
        ops.append(OpCount(i, node.op_type, node.name, sum(_elements(consts[n]) for n in reads), macs, why))
    return _total(params, ops, extra)


# ---------------------------------------------------------------- TFLite


def _schema() -> Any:
    from ai_edge_litert import schema_py_generated as s

    return s


def _tflite_model(raw: bytes) -> Any:
    s = _schema()
    try:
        return s.ModelT.InitFromObj(s.Model.GetRootAs(raw, 0))
    except Exception as e:  # flatbuffers raises whatever a bad offset gives
        raise ModelError(
            f"not a readable TFLite model ({type(e).__name__}: {e}); corrupt or truncated?"
        ) from None


def _has_data(buf: Any) -> bool:
    return (buf.data is not None and len(buf.data) > 0) or (buf.offset > 1 and buf.size > 0)


def _tflite_shape(t: Any) -> Shape:
    """The tensor's shape, ``None`` where its signature says dynamic (a leading -1 is taken as 1)."""
    shape = [int(d) for d in (t.shape if t.shape is not None else [])]
    sig = t.shapeSignature
    if sig is None or len(sig) != len(shape):
        return tuple(shape)
    return tuple(
        1 if (i == 0 and int(s) < 0) else (None if int(s) < 0 else shape[i]) for i, s in enumerate(sig)
    )


def _tflite_op_macs(
    op: str, ins: Sequence[Shape | None], outs: Sequence[Shape | None], opt: Any
) -> int | str:
    """MACs of one TFLite operator from its tensors' shapes, or the reason they are unknown."""

    def need(*shapes: Shape | None) -> list[tuple[int, ...]] | str:
        for s in shapes:
            if not _static(s):
                return f"shape {_fmt(s)}, {DYNAMIC}"
        return [tuple(int(d or 0) for d in s) for s in shapes if s is not None]

    if op in ("CONV_2D", "CONV_3D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        s = need(ins[1], outs[0])
        if isinstance(s, str):
            return s
        w, y = s
        if op == "CONV_2D":  # filter (Cout, kh, kw, Cin/groups)
            per = _elements(w[1:])
        elif op == "CONV_3D":  # filter (kd, kh, kw, Cin, Cout)
            per = _elements(w[:-1])
        elif op == "DEPTHWISE_CONV_2D":  # filter (1, kh, kw, Cout): one input channel per output channel
            per = _elements(w[1:-1])
        else:  # FULLY_CONNECTED weights (units, K)
            per = w[-1]
        return _elements(y) * per
    if op == "TRANSPOSE_CONV":  # inputs (output_shape, filter (Cout, kh, kw, Cin), x)
        s = need(ins[1], ins[2])
        if isinstance(s, str):
            return s
        w, x = s
        return _elements(x) * _elements(w[:-1])
    if op == "BATCH_MATMUL":
        s = need(ins[0], outs[0])
        if isinstance(s, str):
            return s
        a, y = s
        k = a[-2] if getattr(opt, "adjX", False) else a[-1]
        return _elements(y) * k
    if op in TFLITE_CONTROL_FLOW:
        return "control flow (the work done depends on input values)"
    if op in TFLITE_ZERO_MAC:
        return 0
    return f"no MAC rule for operator {op}"


def count_tflite(model: str | Path | bytes) -> Counts:
    """Counts of a ``.tflite`` flatbuffer (path or bytes), from the shapes stored in the file.

    MACs are those of the first (main) subgraph; ``CALL_ONCE`` initialisation is not per inference.
    """
    raw = Path(model).read_bytes() if isinstance(model, str | Path) else model
    m = _tflite_model(raw)
    s = _schema()
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    buffers = m.buffers or []
    seen: dict[int, int] = {}
    for g in m.subgraphs or []:
        for t in g.tensors or []:
            if 0 < t.buffer < len(buffers) and _has_data(buffers[t.buffer]):
                seen.setdefault(t.buffer, _elements(t.shape if t.shape is not None else []))
    params = sum(seen.values())
    if not m.subgraphs:
        return Counts(params, None, (), ("the file has no subgraph",))
    g = m.subgraphs[0]
    tensors = g.tensors or []
    read: set[int] = set()
    ops = []
    for i, op in enumerate(g.operators or []):
        oc = m.operatorCodes[op.opcodeIndex]
        code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
        name = names.get(code, str(code))
        if name == "CUSTOM":
            cname = oc.customCode.decode() if isinstance(oc.customCode, bytes) else str(oc.customCode)
            name = f"CUSTOM({cname})"
        idx = [int(j) for j in (op.inputs if op.inputs is not None else [])]
        ins = [_tflite_shape(tensors[j]) if j >= 0 else None for j in idx]
        outs = [_tflite_shape(tensors[int(j)]) for j in (op.outputs if op.outputs is not None else [])]
        consts = [j for j in idx if j >= 0 and 0 < tensors[j].buffer < len(buffers)]
        consts = [
            j for j in consts if _has_data(buffers[tensors[j].buffer]) and tensors[j].buffer not in read
        ]
        read.update(tensors[j].buffer for j in consts)
        n_params = sum(seen[tensors[j].buffer] for j in consts)
        out_name = tensors[int(op.outputs[0])].name if op.outputs is not None and len(op.outputs) else b""
        label = out_name.decode() if isinstance(out_name, bytes) else str(out_name)
        res = (
            _tflite_op_macs(name, ins, outs, op.builtinOptions)
            if not name.startswith("CUSTOM")
            else "custom operator"
        )
        if isinstance(res, str):
            ops.append(OpCount(i, name, label, n_params, None, f"{name} (operator {i}, {label!r}): {res}"))
        else:
            ops.append(OpCount(i, name, label, n_params, res))
    return _total(params, ops)


def count_model(
    path: str | Path, input_shapes: Mapping[str, Sequence[int]] | None = None, *, fmt: str | None = None
) -> Counts:
    """Counts of an ``.onnx`` or ``.tflite`` file (format ``fmt``, default by extension)."""
    path = Path(path)
    fmt = fmt or path.suffix.lower().lstrip(".")
    if fmt == "onnx":
        return count_onnx(path, input_shapes)
    if fmt == "tflite":
        try:
            return count_tflite(path.read_bytes())
        except ModelError as e:
            raise ModelError(f"{path}: {e}") from None
    raise ModelError(f"{path}: unknown model format {path.suffix!r}; give an .onnx or .tflite file")


def count_files(
    files: Mapping[str, bytes], input_shapes: Mapping[str, Sequence[int]] | None = None
) -> Counts | None:
    """Counts of the first ONNX or TFLite encoding in ``files`` (format → bytes), else ``None``."""
    if "onnx" in files:
        return count_onnx(files["onnx"], input_shapes)
    if "tflite" in files:
        return count_tflite(files["tflite"])
    return None
