"""The ``.tflite`` graph builder (flatbuffer object API of ai-edge-litert) that layers append their ops to.

Float layers use ``fully_connected``, int8 ones ``fully_connected_int8`` (per-channel symmetric weights,
int32 biases), dynamic-range ones ``fully_connected_hybrid``; other ops go through the generic ``op``.
The option factories at the end (``conv2d_options`` …) are what the convolutional builders in
:mod:`.tflite_conv` hand to ``op``; per-channel quantisation goes through :class:`QParams` with ``axis``.
"""

from __future__ import annotations

from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as tfl

from ..quant import QParams, quantize_dense, quantize_weights

_DTYPES = {
    np.dtype(np.float32): tfl.TensorType.FLOAT32,
    np.dtype(np.int8): tfl.TensorType.INT8,
    np.dtype(np.int32): tfl.TensorType.INT32,
    np.dtype(np.int64): tfl.TensorType.INT64,
}


def _qp(q: QParams | None) -> tfl.QuantizationParametersT | None:
    if q is None:
        return None
    p = tfl.QuantizationParametersT()
    p.scale = [float(s) for s in np.atleast_1d(q.scale)]
    p.zeroPoint = [int(z) for z in np.atleast_1d(q.zero_point)]
    p.quantizedDimension = int(q.axis)
    return p


FUSED_ACTIVATIONS = {
    None: tfl.ActivationFunctionType.NONE,
    "relu": tfl.ActivationFunctionType.RELU,
    "relu6": tfl.ActivationFunctionType.RELU6,
}

PADDINGS = {"same": tfl.Padding.SAME, "valid": tfl.Padding.VALID}


def fused_activation(act: str | None) -> int:
    """The ``ActivationFunctionType`` of ``None``, ``"relu"`` or ``"relu6"``."""
    if act not in FUSED_ACTIVATIONS:
        raise ValueError(f"unknown fused activation {act!r}: use one of {list(FUSED_ACTIVATIONS)}")
    return FUSED_ACTIVATIONS[act]


def padding(pad: str) -> int:
    """The ``Padding`` of ``"same"`` or ``"valid"``."""
    if pad not in PADDINGS:
        raise ValueError(f"unknown padding {pad!r}: use 'same' or 'valid'")
    return PADDINGS[pad]


class TfliteGraph:
    """Builder of one subgraph; tensors are indices, buffers are owned here."""

    def __init__(self) -> None:
        self.model = tfl.ModelT()
        self.model.version = 3
        self.model.description = "frugalbench"
        self.model.buffers = [tfl.BufferT()]  # buffer 0 must be empty
        self.model.operatorCodes = []
        self.sub = tfl.SubGraphT()
        self.sub.tensors, self.sub.operators = [], []
        self._codes: dict[int, int] = {}

    def tensor(
        self,
        name: str,
        shape: list[int],
        dtype: Any,
        data: np.ndarray | None = None,
        q: QParams | None = None,
    ) -> int:
        t = tfl.TensorT()
        t.name = f"{name}_{len(self.sub.tensors)}"
        t.shape = list(shape)
        if shape and shape[0] == -1:
            t.shape[0] = 1
            t.shapeSignature = list(shape)
        t.type = _DTYPES[np.dtype(dtype)]
        t.buffer = 0
        if data is not None:
            buf = tfl.BufferT()
            buf.data = np.ascontiguousarray(data, dtype=dtype).tobytes()
            self.model.buffers.append(buf)
            t.buffer = len(self.model.buffers) - 1
        t.quantization = _qp(q)
        self.sub.tensors.append(t)
        return len(self.sub.tensors) - 1

    def const(self, name: str, data: np.ndarray, q: QParams | None = None) -> int:
        data = np.asarray(data)
        return self.tensor(name, list(data.shape), data.dtype, data, q)

    def op(
        self,
        code: int,
        inputs: list[int],
        outputs: list[int],
        options_type: int = 0,
        options: Any = None,
    ) -> None:
        if code not in self._codes:
            oc = tfl.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = 1
            self.model.operatorCodes.append(oc)
            self._codes[code] = len(self.model.operatorCodes) - 1
        o = tfl.OperatorT()
        o.opcodeIndex = self._codes[code]
        o.inputs, o.outputs = list(inputs), list(outputs)
        o.builtinOptionsType = options_type
        o.builtinOptions = options
        self.sub.operators.append(o)

    def shape(self, x: int) -> list[int]:
        """Shape of tensor ``x``, with ``-1`` for a dynamic batch."""
        src = self.sub.tensors[x]
        return list(src.shapeSignature if src.shapeSignature is not None else src.shape)

    def out_like(self, x: int, n: int, dtype: Any, q: QParams | None = None) -> int:
        """A new activation tensor with the batch dim of ``x`` and ``n`` features."""
        src = self.sub.tensors[x]
        shape = list(src.shapeSignature or src.shape)[:-1] + [n]
        return self.tensor("act", shape, dtype, q=q)

    def _fc(
        self,
        x: int,
        wt: int,
        bt: int,
        n_out: int,
        dtype: Any,
        q: QParams | None,
        *,
        relu: bool,
        hybrid: bool = False,
    ) -> int:
        """Append FULLY_CONNECTED on prepared weight/bias tensors; return its output tensor."""
        opt = tfl.FullyConnectedOptionsT()
        opt.fusedActivationFunction = (
            tfl.ActivationFunctionType.RELU if relu else tfl.ActivationFunctionType.NONE
        )
        opt.asymmetricQuantizeInputs = hybrid
        y = self.out_like(x, n_out, dtype, q)
        self.op(
            tfl.BuiltinOperator.FULLY_CONNECTED,
            [x, wt, bt],
            [y],
            tfl.BuiltinOptions.FullyConnectedOptions,
            opt,
        )
        return y

    def fully_connected(self, x: int, w_out_in: np.ndarray, b: np.ndarray, *, relu: bool) -> int:
        """Float FULLY_CONNECTED; ``w`` is (out, in) as TFLite stores it."""
        wt = self.const("w", w_out_in.astype(np.float32))
        bt = self.const("b", b.astype(np.float32))
        return self._fc(x, wt, bt, w_out_in.shape[0], np.float32, None, relu=relu)

    def fully_connected_int8(
        self, x: int, w_out_in: np.ndarray, b: np.ndarray, qin: QParams, qout: QParams, *, relu: bool
    ) -> int:
        """int8 FULLY_CONNECTED with per-channel weights (quantized dimension 0)."""
        qw, wq, qb = quantize_dense(w_out_in, b, float(qin.scale))
        wt = self.const("w", qw, wq)
        bscale = float(qin.scale) * wq.scale
        bt = self.const("b", qb, QParams(bscale, np.zeros(len(bscale), dtype=np.int64), axis=0))
        return self._fc(x, wt, bt, w_out_in.shape[0], np.int8, qout, relu=relu)

    def fully_connected_hybrid(self, x: int, w_out_in: np.ndarray, b: np.ndarray, *, relu: bool) -> int:
        """Dynamic-range FULLY_CONNECTED: int8 per-channel weights, float activations quantised at run time."""
        qw, wq = quantize_weights(w_out_in)
        wt = self.const("w", qw, wq)
        bt = self.const("b", b.astype(np.float32))
        return self._fc(x, wt, bt, w_out_in.shape[0], np.float32, None, relu=relu, hybrid=True)

    def finish(self, inputs: list[int], outputs: list[int]) -> bytes:
        self.sub.inputs, self.sub.outputs = inputs, outputs
        self.sub.name = "main"
        self.model.subgraphs = [self.sub]
        sig = tfl.SignatureDefT()
        sig.signatureKey = "serving_default"
        sig.subgraphIndex = 0
        sig.inputs, sig.outputs = [], []
        for lst, idx, nm in ((sig.inputs, inputs, "input"), (sig.outputs, outputs, "output")):
            for i in idx:
                m = tfl.TensorMapT()
                m.name, m.tensorIndex = nm, i
                lst.append(m)
        self.model.signatureDefs = [sig]
        b = flatbuffers.Builder(1024)
        b.Finish(self.model.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


# Builtin options of the convolutional ops (see :mod:`.tflite_conv`)


def conv2d_options(stride: tuple[int, int], pad: str, act: str | None) -> tfl.Conv2DOptionsT:
    o = tfl.Conv2DOptionsT()
    o.padding = padding(pad)
    o.strideH, o.strideW = int(stride[0]), int(stride[1])
    o.dilationHFactor = o.dilationWFactor = 1
    o.fusedActivationFunction = fused_activation(act)
    return o


def depthwise_conv2d_options(
    stride: tuple[int, int], pad: str, act: str | None, depth_multiplier: int = 1
) -> tfl.DepthwiseConv2DOptionsT:
    o = tfl.DepthwiseConv2DOptionsT()
    o.padding = padding(pad)
    o.strideH, o.strideW = int(stride[0]), int(stride[1])
    o.depthMultiplier = int(depth_multiplier)
    o.dilationHFactor = o.dilationWFactor = 1
    o.fusedActivationFunction = fused_activation(act)
    return o


def pool2d_options(
    pool: tuple[int, int], stride: tuple[int, int], pad: str, act: str | None
) -> tfl.Pool2DOptionsT:
    o = tfl.Pool2DOptionsT()
    o.padding = padding(pad)
    o.strideH, o.strideW = int(stride[0]), int(stride[1])
    o.filterHeight, o.filterWidth = int(pool[0]), int(pool[1])
    o.fusedActivationFunction = fused_activation(act)
    return o


def add_options(act: str | None) -> tfl.AddOptionsT:
    o = tfl.AddOptionsT()
    o.fusedActivationFunction = fused_activation(act)
    return o


def reshape_options(new_shape: list[int]) -> tfl.ReshapeOptionsT:
    o = tfl.ReshapeOptionsT()
    o.newShape = [int(d) for d in new_shape]
    return o


def reducer_options(keep_dims: bool) -> tfl.ReducerOptionsT:
    o = tfl.ReducerOptionsT()
    o.keepDims = bool(keep_dims)
    return o
