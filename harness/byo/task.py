"""Bring your own model and data: a user's ``.onnx``/``.tflite`` file and dataset file as a task.

A task with ``model`` and ``data`` (see :class:`harness.suite.Task`) goes through here instead of a
recipe. Everything is checked before any measurement: the arrays exist and are finite, the labels
fit the metric and the model's outputs, and each sample's shape (after the task's ``input``
preprocessing) matches the model's input. The ``input`` table (all keys optional)::

    [tasks.input]
    scale = 0.0039215686        # x' = x * scale + offset (scalars, or one value per last-axis channel)
    offset = 0.0
    dtype = "uint8"             # round and clip to this type after scaling (what the device feeds)
    layout = "NHWC->NCHW"       # transpose the arrays (letters name the axes, N first)
    reshape = [64]              # per-sample reshape, applied after the layout transpose
    output = "probabilities"    # the model output to score (default: the first float output)
    constants = { sr = 16000, state = 0.0 }   # fixed values for the model's other inputs (ONNX)
    convert = true              # try to convert the ONNX graph to the trainable IR
    label_column = "target"     # CSV only: the label column (default: the last one)
    n_classes = 10              # override the class count read from the model's output width

Dataset files: ``.npz`` with ``x_eval``/``y_eval`` (required) and ``x_train``/``y_train``
(optional); a folder (or one ``x_eval.npy`` inside it) holding ``x_eval.npy``/``y_eval.npy`` and
optionally ``x_train.npy``/``y_train.npy``; or a ``.csv`` with a header row, numeric columns, the
label column and an optional ``split`` column (``train``/``eval``; without it every row is eval).

ONNX models are *prepared* before use: the scored output becomes the only output, constant inputs
become initializers, and a non-float input gets a ``Cast`` in front (targets feed float32 holding
the values ``dtype`` produced). When the model converts to the IR (:mod:`harness.ir.importers.onnx_import`,
:mod:`harness.ir.importers.tflite_import`) and the metric on the eval set is unchanged by the conversion, the
base model is that network, so every technique (fine-tuned ones included) applies and ONNX,
``.tflite`` and MCU files are exported from it. Otherwise the (prepared) file is used as is and only
post-training techniques apply; the reason (usually the blocking operator) is logged and kept in
``Dataset.meta["ir"]``.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import __version__, metrics
from ..errors import ConfigError, DatasetError, ModelError
from ..ir.data import Dataset
from ..ir.model import Model, content_key

log = logging.getLogger(__name__)

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
CLASSIFICATION = ("accuracy", "top_k", "auc", "macro_f1")
ARRAYS = ("x_eval", "y_eval", "x_train", "y_train")


class InputSpec(BaseModel):
    """The task's ``input`` table: layout and preprocessing of the user's data."""

    model_config = ConfigDict(extra="forbid")
    scale: float | list[float] = 1.0
    offset: float | list[float] = 0.0
    dtype: Literal["float32", "float16", "int8", "uint8", "int16", "int32", "int64"] | None = None
    layout: str | None = Field(None, pattern=r"^[A-Za-z]+->[A-Za-z]+$")
    reshape: list[int] | None = None
    output: str | None = None
    constants: dict[str, float | int | list[Any]] = Field(default_factory=dict)
    convert: bool = True
    label_column: str | int | None = None
    n_classes: int | None = Field(None, ge=2)


@dataclass(frozen=True)
class TensorInfo:
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
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def parse_input(task_name: str, table: dict[str, Any]) -> InputSpec:
    try:
        return InputSpec(**table)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(
            f"task {task_name!r}: input.{key}: {err['msg']} (see harness/byo/task.py for the keys)"
        ) from None


# --- models ---
def _onnx_tensor(v: onnx.ValueInfoProto) -> TensorInfo:
    tt = v.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim)
    return TensorInfo(v.name, dims, ONNX_DTYPE.get(tt.elem_type, f"onnx-type-{tt.elem_type}"))


def inspect_model(path: Path) -> ModelInfo:
    """Inputs, outputs, dtypes and opset of an ``.onnx`` or ``.tflite`` file."""
    path = Path(path)
    suffix = path.suffix.lower()
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
        from ..runtimes.litert import _interpreter_cls

        cls, _ = _interpreter_cls()
        try:
            it = cls(model_path=str(path))
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"LiteRT cannot read {path}: {str(e).splitlines()[0][:200]}") from None

        def info(d: dict[str, Any]) -> TensorInfo:
            sig = list(d.get("shape_signature", d["shape"]))
            return TensorInfo(
                d["name"], tuple(None if s < 0 else int(s) for s in sig), np.dtype(d["dtype"]).name
            )

        ins = [info(d) for d in it.get_input_details()]
        return ModelInfo(
            path,
            "tflite",
            ins,
            [info(d) for d in it.get_output_details()],
            None,
            any(i.dtype in INT_DTYPES for i in ins),
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


def _constant(t: TensorInfo, value: float | int | list[Any]) -> np.ndarray:
    dt = np.dtype(t.dtype)
    arr = np.asarray(value, dtype=dt)
    if arr.ndim == 0 and len(t.shape) > 0:  # a scalar fills the declared shape (dynamic dims = 1)
        arr = np.full(tuple(d or 1 for d in t.shape), arr, dtype=dt)
    return arr


def prepare_onnx(raw: bytes, info: ModelInfo, spec: InputSpec) -> bytes:
    """The scored output alone, constant inputs as initializers, a Cast in front of a non-float input."""
    m = onnx.load_from_string(raw)
    ops: dict[str, int] = {}
    for o in m.opset_import:  # one entry per domain (skl2onnx may repeat ""; ORT's quantiser refuses that)
        dom = "" if o.domain == "ai.onnx" else o.domain
        ops[dom] = max(ops.get(dom, 0), o.version)
    ops.setdefault("", 13)  # graphs of ai.onnx.ml operators only: our Cast and the quantiser need it
    del m.opset_import[:]
    m.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in ops.items())
    g = m.graph
    out = scored_output(info, spec)
    inp = data_input(info, spec)
    keep = [o for o in g.output if o.name == out.name]
    del g.output[:]
    g.output.extend(keep)
    by_name = {t.name: t for t in info.inputs}
    for name, value in spec.constants.items():
        g.initializer.append(onnx.numpy_helper.from_array(_constant(by_name[name], value), name))
        kept = [i for i in g.input if i.name != name]
        del g.input[:]
        g.input.extend(kept)
    if inp.dtype != "float32":
        elem = next(k for k, v in ONNX_DTYPE.items() if v == inp.dtype)
        new = f"{inp.name}__float"
        for n in g.node:
            for i, x in enumerate(n.input):
                if x == inp.name:
                    n.input[i] = new
        g.node.insert(
            0, onnx.helper.make_node("Cast", [inp.name], [new], to=elem, name="frugalbench_cast_input")
        )
        vi = next(i for i in g.input if i.name == inp.name)
        vi.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    _drop_dead(g, out.name)
    return m.SerializeToString()


def _drop_dead(g: onnx.GraphProto, output: str) -> None:
    """Remove the nodes and initializers that only fed the removed outputs (subgraph-aware)."""
    from ..ir.importers.onnx_import import needed_nodes, node_inputs

    keep = needed_nodes(g, [output])
    used = {x for n in keep for x in node_inputs(n)} | {output}
    del g.node[:]
    g.node.extend(keep)
    inits = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(inits)


# --- data ---
def _npz(path: Path) -> dict[str, np.ndarray]:
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read the .npz ({e}); write it with numpy.savez") from None
    return {k: np.asarray(z[k]) for k in z.files if k in ARRAYS}


def _npy_folder(path: Path) -> dict[str, np.ndarray]:
    folder = path if path.is_dir() else path.parent
    out = {}
    for k in ARRAYS:
        f = folder / f"{k}.npy"
        if f.exists():
            try:
                out[k] = np.load(f, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise DatasetError(f"{f}: cannot read ({e}); write it with numpy.save") from None
    return out


def _csv(path: Path, spec: InputSpec) -> dict[str, np.ndarray]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise DatasetError(f"{path}: needs a header row and at least one data row")
    header, body = rows[0], rows[1:]
    lc = spec.label_column if spec.label_column is not None else len(header) - 1
    li = lc if isinstance(lc, int) else (header.index(lc) if lc in header else -1)
    if not 0 <= li < len(header):
        raise DatasetError(f"{path}: no label column {lc!r}; columns: {header}")
    si = header.index("split") if "split" in header else None
    feats = [i for i in range(len(header)) if i not in (li, si)]
    try:
        x = np.array([[float(r[i]) if r[i].strip() else np.nan for i in feats] for r in body], np.float64)
        y = np.array([float(r[li]) for r in body], np.float64)
    except (ValueError, IndexError) as e:
        raise DatasetError(f"{path}: every feature and label must be a number ({e})") from None
    if si is None:
        return {"x_eval": x, "y_eval": y}
    split = np.array([r[si].strip().lower() for r in body])
    bad = sorted(set(split) - {"train", "eval"})
    if bad:
        raise DatasetError(f"{path}: column 'split' holds {bad}; use 'train' or 'eval'")
    if not (split == "eval").any():
        raise DatasetError(f"{path}: no row has split = eval; mark the rows to evaluate on with 'eval'")
    out = {"x_eval": x[split == "eval"], "y_eval": y[split == "eval"]}
    if (split == "train").any():
        out |= {"x_train": x[split == "train"], "y_train": y[split == "train"]}
    return out


def load_arrays(path: Path, spec: InputSpec) -> dict[str, np.ndarray]:
    """Raw arrays from an .npz, a folder of .npy files, or a CSV; refuses missing or non-numeric ones."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        arrays = _npz(path)
    elif path.is_dir() or path.suffix.lower() == ".npy":
        arrays = _npy_folder(path)
    elif path.suffix.lower() == ".csv":
        arrays = _csv(path, spec)
    else:
        raise DatasetError(f"{path}: unknown dataset format; give an .npz, a folder of .npy files, or a .csv")
    missing = [k for k in ("x_eval", "y_eval") if k not in arrays]
    if missing:
        where = (
            f" ({', '.join(k + '.npy' for k in missing)} beside it)"
            if path.is_dir() or path.suffix.lower() == ".npy"
            else ""
        )
        raise DatasetError(
            f"{path}: missing {' and '.join(missing)}{where} (found: {sorted(arrays) or 'nothing'})"
        )
    if ("x_train" in arrays) != ("y_train" in arrays):
        have = "x_train" if "x_train" in arrays else "y_train"
        raise DatasetError(f"{path}: has {have} without its pair; give both x_train and y_train, or neither")
    for k, a in arrays.items():
        if a.dtype.kind not in "biuf" or a.size == 0:
            raise DatasetError(
                f"{path}: {k} must be a non-empty numeric array (got dtype {a.dtype}, size {a.size})"
            )
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            n = int((~np.isfinite(a)).sum())
            raise DatasetError(
                f"{path}: {k} holds {n} NaN/inf values; clean or impute them before benchmarking"
            )
    for x, y in (("x_eval", "y_eval"), ("x_train", "y_train")):
        if x in arrays and len(arrays[x]) != len(arrays[y]):
            raise DatasetError(f"{path}: {x} has {len(arrays[x])} rows but {y} has {len(arrays[y])}")
    return arrays


def _perm(layout: str) -> list[int]:
    src, dst = (s.upper() for s in layout.split("->"))
    if sorted(src) != sorted(dst) or len(set(src)) != len(src):
        raise ConfigError(f"input.layout {layout!r}: both sides must name the same distinct axes")
    return [src.index(c) for c in dst]


def preprocess(x: np.ndarray, spec: InputSpec, dtype: str) -> np.ndarray:
    """Layout, reshape, ``x * scale + offset``, rounding/clipping to ``dtype``; returns float32."""
    x = np.asarray(x)
    if spec.layout:
        p = _perm(spec.layout)
        if len(p) != x.ndim:
            raise DatasetError(
                f"input.layout {spec.layout!r} names {len(p)} axes but the data has {x.ndim} ({x.shape})"
            )
        x = x.transpose(p)
    if spec.reshape:
        try:
            x = x.reshape(len(x), *spec.reshape)
        except ValueError:
            raise DatasetError(
                f"input.reshape {spec.reshape}: samples of shape {x.shape[1:]} cannot be reshaped to it"
            ) from None
    x = x.astype(np.float64) * np.asarray(spec.scale, np.float64) + np.asarray(spec.offset, np.float64)
    if dtype in INT_DTYPES:
        info = np.iinfo(dtype)
        x = np.clip(np.round(x), info.min, info.max)
    elif dtype == "float16":
        x = x.astype(np.float16)
    return np.ascontiguousarray(x, dtype=np.float32)


def check_shape(x: np.ndarray, key: str, inp: TensorInfo, model: Path, data: Path) -> None:
    """Each sample's shape must match the model input without its batch dimension."""
    want = inp.shape[1:] if inp.shape else ()
    got = x.shape[1:]
    ok = len(want) == len(got) and all(w is None or w == g for w, g in zip(want, got, strict=True))
    if not ok:
        raise DatasetError(
            f"{data.name}: {key} samples have shape {fmt_shape(got)} (array {fmt_shape(x.shape)}) but "
            f"{model.name} input {inp.name!r} expects {fmt_shape(inp.shape)} (batch first, ? = any); "
            "fix the data, or set input.layout / input.reshape in the task"
        )


def n_outputs(out: TensorInfo) -> int | None:
    """Width of the scored output (None when dynamic)."""
    if len(out.shape) <= 1:
        return 1
    last = out.shape[-1]
    return None if last is None else int(np.prod([d or 1 for d in out.shape[1:]]))


def _labels(
    arrays: dict[str, np.ndarray], metric: str, width: int | None, spec: InputSpec, path: Path
) -> int | None:
    """Check labels against the metric and the output width; returns the class count (None: regression)."""
    if metric == "mae":
        for k in ("y_eval", "y_train"):
            if k in arrays:
                y = arrays[k].astype(np.float32)
                cols = int(np.prod(y.shape[1:])) if y.ndim > 1 else 1
                if width is not None and cols != width:
                    raise DatasetError(
                        f"{path.name}: {k} has {cols} target value(s) per row but the scored output has {width}"
                    )
                arrays[k] = y
        return None
    n = spec.n_classes or (2 if width == 1 else width)
    for k in ("y_eval", "y_train"):
        if k not in arrays:
            continue
        y = arrays[k]
        if y.ndim != 1:
            raise DatasetError(f"{path.name}: {k} must be one integer label per row (shape {y.shape})")
        if y.dtype.kind == "f" and not np.all(y == np.round(y)):
            raise DatasetError(
                f"{path.name}: {k} holds non-integer labels; metric {metric!r} needs class ids"
            )
        y = y.astype(np.int64)
        hi = 1 if metric == "auc" else (n - 1 if n else None)
        if y.min() < 0 or (hi is not None and y.max() > hi):
            what = "0 or 1 (AUC is for binary tasks)" if metric == "auc" else f"in [0, {hi}]"
            raise DatasetError(
                f"{path.name}: {k} labels must be {what} for a model with {width} output(s); "
                f"found the range [{y.min()}, {y.max()}]"
            )
        arrays[k] = y
    return n if metric != "auc" else 2


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(path.glob("*.npy")) if path.is_dir() else [path]
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()


# --- the base ---
def run_onnx(model: bytes, x: np.ndarray) -> np.ndarray:
    """The first output of a prepared (one input, one output) ONNX model on every row of ``x``."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 4  # the whole-batch try may fail on a fixed batch size: no error log for it
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    try:
        return np.asarray(sess.run(None, {name: x})[0])
    except Exception:  # noqa: BLE001  fixed batch (e.g. bound state inputs): row by row
        return np.concatenate([sess.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])


def run_tflite(model: bytes, x: np.ndarray) -> np.ndarray:
    """The first output of a ``.tflite`` model on every row of ``x`` (LiteRT, one row per call)."""
    import tempfile

    from ..runtimes.litert import LiteRtRuntime

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "m.tflite"
        p.write_bytes(model)
        rt = LiteRtRuntime(p, threads=1, batch=1)
        return np.concatenate([rt.run(x[i : i + 1]) for i in range(len(x))])


def _try_convert(
    fmt: str, prepared: bytes, out_name: str, ds: Dataset, metric: str, params: dict[str, Any]
) -> tuple[Any, str]:
    """The IR network if conversion works and keeps the metric, else (None, reason)."""
    from ..ir.importers.onnx_import import NotConvertible, onnx_to_network
    from ..ir.importers.tflite_import import tflite_to_network

    try:
        imp = onnx_to_network(prepared, out_name) if fmt == "onnx" else tflite_to_network(prepared)
    except NotConvertible as e:
        return None, str(e)
    ref = run_onnx(prepared, ds.x_eval) if fmt == "onnx" else run_tflite(prepared, ds.x_eval)
    got = imp.net.forward(ds.x_eval)
    a = metrics.score(metric, ref, ds.y_eval, params)
    b = metrics.score(metric, got, ds.y_eval, params)
    tol = 1.0 / len(ds.y_eval) + 1e-9 if metric in CLASSIFICATION else 1e-4 * max(1.0, abs(a))
    if abs(a - b) > tol:
        return None, f"the converted network's {metric} ({b:.6g}) differs from the file's ({a:.6g})"
    return imp, ""


@dataclass
class ByoBase:
    key: str
    model: Model
    data: Dataset


def build(task: Any) -> ByoBase:
    """Check and load a task's model and dataset (no caching: loading is cheap)."""
    spec = parse_input(task.name, task.input)
    mpath, dpath = Path(task.model), Path(task.data)
    info = inspect_model(mpath)
    out = scored_output(info, spec)
    inp = data_input(info, spec)
    # ONNX: values of the input's type (a Cast is put in front); TFLite: real values (LiteRT quantises)
    dtype = spec.dtype or (inp.dtype if info.format == "onnx" and inp.dtype in DTYPES else "float32")
    arrays = load_arrays(dpath, spec)
    for k in ("x_eval", "x_train"):
        if k in arrays:
            arrays[k] = preprocess(arrays[k], spec, dtype)
            check_shape(arrays[k], k, inp, mpath, dpath)
    width = n_outputs(out)
    n_classes = _labels(arrays, task.metric, width, spec, dpath)
    if task.metric == "top_k" and n_classes is not None and int(task.metric_params.get("k", 5)) >= n_classes:
        raise ConfigError(
            f"task {task.name!r}: top_k with k={task.metric_params.get('k', 5)} but only {n_classes} classes; "
            "lower metric_params.k"
        )
    x_calib = arrays.get("x_train", arrays["x_eval"])
    if task.metric == "mae" and "x_train" in arrays:  # harness.ir.train fits cross-entropy only
        log.warning(
            "task %s: fine-tuning a regression (mae) model is not supported yet (the trainer fits "
            "cross-entropy); x_train is used for int8 calibration only",
            task.name,
        )
        arrays.pop("x_train")
        arrays.pop("y_train")
    meta: dict[str, Any] = {
        "model_file": str(mpath),
        "data_file": str(dpath),
        "calib_from": "x_eval (no training split)" if x_calib is arrays["x_eval"] else "x_train",
        "input": inp.name,
        "output": out.name,
        "dtype": dtype,
    }
    ds = Dataset(
        task.name,
        arrays["x_eval"],
        arrays["y_eval"],
        x_calib,
        arrays.get("x_train"),
        arrays.get("y_train"),
        n_classes=n_classes,
        meta=meta,
    )
    raw = mpath.read_bytes()
    prepared = raw if info.format == "tflite" else prepare_onnx(raw, info, spec)
    net, why = None, "input.convert = false"
    if spec.convert:
        imp, why = _try_convert(info.format, prepared, out.name, ds, task.metric, task.metric_params)
        net = imp.net if imp is not None else None
        if imp is not None:
            meta["ir"] = f"converted: {imp.net.describe()} (head {imp.head})"
    if net is not None:
        model = Model(net=net)
    else:
        model = Model(files={info.format: prepared})
        meta["ir"] = f"not converted: {why}"
        log.warning("task %s: %s", task.name, why)
    key = content_key(
        "byo",
        _sha(mpath),
        _sha(dpath),
        task.input,
        task.metric,
        task.metric_params,
        inspect.getsource(inspect.getmodule(build)),  # type: ignore[arg-type]
        __version__,
    )
    return ByoBase(key, model, ds)


def load_base(task: Any, cache: Path) -> Any:
    """The :class:`harness.pipeline.variants.Base` of a task with a model file (``cache`` is unused: no build step)."""
    from ..pipeline.variants import Base

    b = build(task)
    return Base(task.name, b.key, b.model, b.data)
