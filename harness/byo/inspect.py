"""What a model file takes and gives: its inputs, outputs, dtypes and opset (``.onnx`` or ``.tflite``).

Also which of them a task uses: the output the metric scores and the one input the dataset feeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..errors import ConfigError, ModelError
from ..runtimes.litert import LiteRtRuntime
from .spec import InputSpec

INT_DTYPES = ("int8", "uint8", "int16", "int32", "int64")
DTYPES = ("float32", "float16", *INT_DTYPES)
ONNX_DTYPE: dict[int, str] = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.INT16: "int16",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.BOOL: "bool",
}


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output."""

    name: str
    shape: tuple[int | None, ...]  # None = dynamic dimension
    dtype: str


@dataclass(frozen=True)
class ModelInfo:
    """What ``inspect_model`` reads from a model file."""

    path: Path
    format: str  # "onnx" or "tflite"
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    opset: int | None = None
    quantized: bool = False


def fmt_shape(shape: tuple[int | None, ...]) -> str:
    """``(?, 64)`` style: ``?`` for a dynamic dimension."""
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _onnx_tensor(v: onnx.ValueInfoProto) -> TensorInfo:
    tt = v.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim)
    return TensorInfo(v.name, dims, ONNX_DTYPE.get(tt.elem_type, f"onnx-type-{tt.elem_type}"))


def _tflite_tensor(d: dict[str, Any]) -> TensorInfo:
    sig = list(d.get("shape_signature", d["shape"]))
    return TensorInfo(d["name"], tuple(None if s < 0 else int(s) for s in sig), np.dtype(d["dtype"]).name)


def tflite_quantized(raw: bytes) -> bool:
    """Whether a ``.tflite`` holds int8/uint8 tensors (a full-integer file may still take float input
    and quantise it inside, so its inputs alone do not tell)."""
    from ai_edge_litert import schema_py_generated as schema

    m = schema.Model.GetRootAs(raw, 0)
    ints = (schema.TensorType.INT8, schema.TensorType.UINT8)
    for g in range(m.SubgraphsLength()):
        sub = m.Subgraphs(g)
        if any(sub.Tensors(t).Type() in ints for t in range(sub.TensorsLength())):
            return True
    return False


def inspect_model(path: Path) -> ModelInfo:
    """Inputs, outputs, dtypes and opset of an ``.onnx`` or ``.tflite`` file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ModelError(f"model file {path} not found (or not a file)")
    if path.stat().st_size == 0:
        raise ModelError(f"{path} is empty (0 bytes); export the model again")
    info = _inspect(path, suffix)
    if not info.inputs or not info.outputs:
        raise ModelError(
            f"{path} declares {len(info.inputs)} input(s) and {len(info.outputs)} output(s); "
            "a benchmarked model needs at least one of each (a truncated or non-model file?)"
        )
    return info


def _inspect(path: Path, suffix: str) -> ModelInfo:
    if suffix == ".onnx":
        try:
            m = onnx.load(str(path), load_external_data=False)
        except Exception as e:  # protobuf raises DecodeError and friends
            raise ModelError(f"{path} is not a readable ONNX model ({e}); re-export it") from None
        inits = {i.name for i in m.graph.initializer}
        opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), None)
        quant = any(n.op_type in ("QuantizeLinear", "QLinearMatMul", "MatMulInteger") for n in m.graph.node)
        return ModelInfo(
            path,
            "onnx",
            [_onnx_tensor(i) for i in m.graph.input if i.name not in inits],
            [_onnx_tensor(o) for o in m.graph.output],
            opset,
            quant,
        )
    if suffix == ".tflite":
        ins, outs = LiteRtRuntime.tensor_details(path)
        inputs = [_tflite_tensor(d) for d in ins]
        return ModelInfo(
            path,
            "tflite",
            inputs,
            [_tflite_tensor(d) for d in outs],
            None,
            any(i.dtype in INT_DTYPES for i in inputs) or tflite_quantized(path.read_bytes()),
        )
    raise ModelError(f"{path}: unknown model format {suffix!r}; give an .onnx or .tflite file")


def scored_output(info: ModelInfo, spec: InputSpec) -> TensorInfo:
    """The output the metric reads: ``input.output`` or the first float output."""
    if spec.output is not None:
        found = next((o for o in info.outputs if o.name == spec.output), None)
        if found is None:
            raise ConfigError(
                f"{info.path.name} has no output {spec.output!r}; its outputs: {[o.name for o in info.outputs]}"
            )
        if info.format == "tflite" and found is not info.outputs[0]:
            raise ConfigError(
                f"{info.path.name}: LiteRT targets read the first output ({info.outputs[0].name!r}); "
                f"re-export the model with {spec.output!r} first"
            )
        return found
    floats = [o for o in info.outputs if o.dtype.startswith("float")]
    if info.format == "tflite" or not floats:
        return info.outputs[0]
    return floats[0]


def data_input(info: ModelInfo, spec: InputSpec) -> TensorInfo:
    """The one input the dataset feeds (the others must be bound with ``input.constants``)."""
    unknown = sorted(set(spec.constants) - {i.name for i in info.inputs})
    if unknown:
        raise ConfigError(
            f"input.constants names {unknown}, but {info.path.name}'s inputs are {[i.name for i in info.inputs]}"
        )
    free = [i for i in info.inputs if i.name not in spec.constants]
    if len(free) != 1:
        desc = ", ".join(f"{i.name} {fmt_shape(i.shape)} {i.dtype}" for i in info.inputs)
        raise ConfigError(
            f"{info.path.name} has inputs [{desc}]; the dataset feeds exactly one. Bind the others with "
            "input.constants = { NAME = VALUE } (ONNX only)"
        )
    if spec.constants and info.format == "tflite":
        raise ConfigError("input.constants works on ONNX models only; re-export the .tflite with one input")
    return free[0]


def n_outputs(out: TensorInfo) -> int | None:
    """Width of the scored output (None when dynamic)."""
    if len(out.shape) <= 1:
        return 1
    last = out.shape[-1]
    return None if last is None else int(np.prod([d or 1 for d in out.shape[1:]]))
