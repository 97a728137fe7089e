"""Reading a ``.tflite`` flatbuffer: its first subgraph's operators (by name), tensors, constants and
quantisation, through the object API that ships in ai-edge-litert.

One home for what every ``.tflite`` reader needs: the float importer (:mod:`.tflite_import`), the MCU
importers (:func:`harness.mcu.blob.codec.tflite_int8_model`, :mod:`harness.mcu.blob.tflite_graph`).
Nothing here interprets the graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def schema() -> Any:
    """The generated flatbuffer schema module (imported on use: LiteRT is heavy)."""
    from ai_edge_litert import schema_py_generated as s

    return s


@dataclass(frozen=True)
class TfliteOp:
    """One operator of the subgraph: its builtin name (``"CONV_2D"``), position, tensor indices
    (``-1`` for an omitted optional input) and builtin options object (``None`` when it has none)."""

    index: int
    name: str
    inputs: list[int]
    outputs: list[int]
    options: Any


class TfliteFile:
    """The first subgraph of a ``.tflite`` file (``raw`` bytes); raises ``ValueError`` if unreadable."""

    def __init__(self, raw: bytes) -> None:
        s = schema()
        self.s = s
        if len(raw) < 8 or raw[4:8] != b"TFL3":
            raise ValueError("not a .tflite flatbuffer (no TFL3 identifier)")
        try:
            self.model = s.ModelT.InitFromObj(s.Model.GetRootAs(raw, 0))
        except Exception as e:  # flatbuffers raises bare struct/index errors on a truncated file
            raise ValueError(f"corrupt or truncated .tflite ({type(e).__name__}: {e})") from None
        if not self.model.subgraphs:
            raise ValueError(".tflite without a subgraph")
        self.graph = self.model.subgraphs[0]
        self.tensors = self.graph.tensors or []
        names = op_names()
        self.ops: list[TfliteOp] = []
        for k, op in enumerate(self.graph.operators or []):
            oc = self.model.operatorCodes[op.opcodeIndex]
            code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
            name = names.get(code, str(code))
            if name == "CUSTOM" and oc.customCode:
                name = f"CUSTOM ({_text(oc.customCode)})"
            ins = [int(i) for i in (op.inputs if op.inputs is not None else [])]
            outs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
            self.ops.append(TfliteOp(k, name, ins, outs, op.builtinOptions))

    @property
    def inputs(self) -> list[int]:
        return [int(i) for i in (self.graph.inputs if self.graph.inputs is not None else [])]

    @property
    def outputs(self) -> list[int]:
        return [int(i) for i in (self.graph.outputs if self.graph.outputs is not None else [])]

    def name(self, i: int) -> str:
        """Tensor ``i``'s name."""
        return _text(self.tensors[i].name)

    def type_name(self, i: int) -> str:
        """Tensor ``i``'s element type (``"INT8"``, ``"FLOAT32"`` …)."""
        t = self.tensors[i].type
        return next(
            (k for k, v in vars(self.s.TensorType).items() if v == t and not k.startswith("_")), str(t)
        )

    def shape(self, i: int) -> tuple[int, ...]:
        """Tensor ``i``'s shape as stored (a dynamic batch is stored as 1)."""
        sh = self.tensors[i].shape
        return tuple(int(d) for d in sh) if sh is not None else ()

    def is_const(self, i: int) -> bool:
        b = self.tensors[i].buffer
        if not 0 < b < len(self.model.buffers):
            return False
        data = self.model.buffers[b].data
        return data is not None and len(data) > 0

    def const(self, i: int, dtype: Any) -> np.ndarray:
        """The stored values of constant tensor ``i`` (raw, not dequantised) in its shape."""
        data = self.model.buffers[self.tensors[i].buffer].data
        return np.frombuffer(bytes(np.asarray(data, np.uint8)), dtype).reshape(self.shape(i)).copy()

    def quantization(self, i: int) -> tuple[np.ndarray, np.ndarray, int] | None:
        """``(scales, zero_points, quantized_dimension)`` of tensor ``i`` (float64 / int64 arrays;
        ``None`` for an unquantised tensor)."""
        q = self.tensors[i].quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            return None
        scale = np.asarray(q.scale, np.float64)
        zp = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0] * len(scale), np.int64)
        return scale, zp, int(q.quantizedDimension)


def op_names() -> dict[int, str]:
    """Builtin operator code → name."""
    s = schema()
    return {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
