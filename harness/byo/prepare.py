"""Make a model file ready to measure: ONNX graph rewrites, then conversion to the trainable IR.

:func:`prepare_onnx` keeps the scored output alone, turns constant inputs into initializers and puts
a ``Cast`` in front of a non-float input (targets feed float32 holding the values ``dtype``
produced). :func:`try_convert` converts the prepared file to the IR
(:mod:`harness.ir.importers.onnx_import`, :mod:`harness.ir.importers.tflite_import`) and keeps the
result only when the metric on the eval set is unchanged by the conversion.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import onnx

from .. import metrics
from ..ir.data import Dataset
from ..ir.importers.onnx_import import (
    Imported,
    NotConvertible,
    needed_nodes,
    node_inputs,
    onnx_to_network,
)
from ..ir.importers.tflite_import import tflite_to_network
from .execute import run_file
from .inspect import ONNX_DTYPE, ModelInfo, TensorInfo, data_input, scored_output
from .spec import InputSpec

CLASSIFICATION = ("accuracy", "top_k", "auc", "macro_f1")


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
    keep = needed_nodes(g, [output])
    used = {x for n in keep for x in node_inputs(n)} | {output}
    del g.node[:]
    g.node.extend(keep)
    inits = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(inits)


def try_convert(
    fmt: str, prepared: bytes, out_name: str, ds: Dataset, metric: str, params: dict[str, Any]
) -> tuple[Imported | None, str]:
    """The imported IR network if conversion works and keeps the metric, else ``(None, reason)``."""
    try:
        imp = onnx_to_network(prepared, out_name) if fmt == "onnx" else tflite_to_network(prepared)
    except NotConvertible as e:
        return None, str(e)
    ref = run_file(fmt, prepared, ds.x_eval)
    got = imp.net.forward(imp.rows(ds.x_eval))  # the IR takes flattened (maybe reordered) input rows
    a = metrics.score(metric, ref, ds.y_eval, params)
    b = metrics.score(metric, got, ds.y_eval, params)
    tol = 1.0 / len(ds.y_eval) + 1e-9 if metric in CLASSIFICATION else 1e-4 * max(1.0, abs(a))
    if abs(a - b) > tol:
        return None, f"the converted network's {metric} ({b:.6g}) differs from the file's ({a:.6g})"
    return imp, ""


def flat_rows(ds: Dataset, imp: Imported) -> Dataset:
    """``ds`` with every sample as the converted network's input row (:meth:`Imported.rows`).

    A user's CNN may take ``(B, C, H, W)`` or ``(B, H, W, C)`` samples; its IR network takes them
    flattened, and in NHWC order (``imp.input_order``) when the file's input is channels first with
    more than one channel. The converted network replaces the file, so every variant reads these rows.
    """
    x_train = None if ds.x_train is None else imp.rows(ds.x_train)
    return dataclasses.replace(ds, x_eval=imp.rows(ds.x_eval), x_calib=imp.rows(ds.x_calib), x_train=x_train)
