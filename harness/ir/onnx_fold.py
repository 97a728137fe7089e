"""Fold the small computations of an ONNX graph that only decide shapes, so shape inference sees static shapes.

Exporters compute pads, slice bounds and branch conditions from ``Shape`` of a tensor (PyTorch's
``F.pad``, silero-vad's STFT). ONNX shape inference cannot follow a value through a ``Pad`` or an
``If``; :func:`fold_shapes` evaluates such sub-expressions once the input shapes are known:

* ``Shape`` (and ``Size``) of a tensor with a static inferred shape becomes a constant;
* a node of a small value-level operator whose inputs are all small known values is evaluated
  (:class:`onnx.reference.ReferenceEvaluator`) and becomes ``Constant`` nodes;
* an ``If`` with a known condition is replaced by the nodes of the branch taken.

Known values start from ``Constant`` nodes, small initializers and the given input ``values`` (for
instance a sample rate). The result is for counting only; weights are never touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

SMALL = 4096  # elements: a value above this is data, not shape arithmetic

FOLDABLE = frozenset(
    {
        "Abs", "Add", "And", "Cast", "Ceil", "Concat", "ConstantOfShape", "Div", "Equal", "Expand",
        "Flatten", "Floor", "Gather", "Greater", "GreaterOrEqual", "Identity", "Less", "LessOrEqual",
        "Max", "Min", "Mod", "Mul", "Neg", "Not", "Or", "Range", "ReduceProd", "ReduceSum", "Reshape",
        "Slice", "Squeeze", "Sub", "Tile", "Transpose", "Unsqueeze", "Where",
    }
)  # fmt: skip


def _infer(m: Any) -> Any:
    from onnx import shape_inference

    return shape_inference.infer_shapes(m, data_prop=True)


def _static_shapes(m: Any) -> dict[str, tuple[int, ...]]:
    out = {}
    for vi in [*m.graph.value_info, *m.graph.input, *m.graph.output]:
        t = vi.type.tensor_type
        if t.HasField("shape") and all(d.HasField("dim_value") and d.dim_value > 0 for d in t.shape.dim):
            out[vi.name] = tuple(int(d.dim_value) for d in t.shape.dim)
    for init in m.graph.initializer:  # inputs bound to constants are initializers, not inputs
        out[init.name] = tuple(int(d) for d in init.dims)
    return out


def _known_values(m: Any, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    known = {k: np.asarray(v) for k, v in values.items()}
    for init in m.graph.initializer:
        if int(np.prod(init.dims)) <= SMALL:
            known[init.name] = numpy_helper.to_array(init)
    return known


def _constant(name: str, value: np.ndarray) -> Any:
    from onnx import helper, numpy_helper

    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value), name))


def _shape_of(node: Any, shape: tuple[int, ...]) -> np.ndarray:
    attrs = {a.name: int(a.i) for a in node.attribute}
    return np.array(shape[attrs.get("start", 0) : attrs.get("end", len(shape))], np.int64)


def _evaluate(node: Any, args: list[np.ndarray], opset: int) -> list[np.ndarray] | None:
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    names = [f"in{i}" for i in range(len(args))]
    n = helper.make_node(node.op_type, names, list(node.output), **{
        a.name: helper.get_attribute_value(a) for a in node.attribute
    })  # fmt: skip
    try:
        out = ReferenceEvaluator(n, opsets={"": opset}).run(None, dict(zip(names, args, strict=True)))
    except Exception:  # an operator the reference runtime refuses here: leave the node as it is
        return None
    return [np.asarray(o) for o in out]


def _inline(node: Any, branch: Any) -> list[Any]:
    """The nodes of ``branch`` (and its initializers as constants) feeding ``node``'s outputs."""
    from onnx import helper, numpy_helper

    nodes = [_constant(i.name, numpy_helper.to_array(i)) for i in branch.initializer]
    nodes += list(branch.node)
    for src, dst in zip(branch.output, node.output, strict=True):
        nodes.append(helper.make_node("Identity", [src.name], [dst]))
    return nodes


def _fold_once(m: Any, values: Mapping[str, np.ndarray], opset: int) -> bool:
    from onnx import helper, numpy_helper

    shapes = _static_shapes(m)
    known = _known_values(m, values)
    out: list[Any] = []
    changed = False
    for node in m.graph.node:
        if node.op_type == "Constant":
            a = node.attribute[0] if node.attribute else None
            if a is not None and a.name == "value" and int(np.prod(a.t.dims)) <= SMALL:
                known[node.output[0]] = numpy_helper.to_array(a.t)
            out.append(node)
            continue
        ins = [n for n in node.input if n]
        if node.op_type in ("Shape", "Size") and node.input[0] in shapes:
            shp = shapes[node.input[0]]
            val = _shape_of(node, shp) if node.op_type == "Shape" else np.array(int(np.prod(shp)), np.int64)
            out.append(_constant(node.output[0], val))
            known[node.output[0]] = val
            changed = True
            continue
        if node.op_type == "If" and node.input[0] in known:
            take = bool(np.asarray(known[node.input[0]]).reshape(-1)[0])
            branch = helper.get_attribute_value(
                next(a for a in node.attribute if a.name == ("then_branch" if take else "else_branch"))
            )
            out.extend(_inline(node, branch))
            changed = True
            continue
        if (
            node.op_type in FOLDABLE
            and node.domain in ("", "ai.onnx")
            and len(ins) == len(node.input)
            and all(n in known for n in ins)
        ):
            res = _evaluate(node, [known[n] for n in ins], opset)
            if res is not None and all(r.size <= SMALL for r in res):
                for name, r in zip(node.output, res, strict=True):
                    out.append(_constant(name, r))
                    known[name] = r
                changed = True
                continue
        out.append(node)
    if changed:
        del m.graph.node[:]
        m.graph.node.extend(out)
    return changed


def fold_shapes(model: Any, values: Mapping[str, np.ndarray] | None = None, rounds: int = 16) -> Any:
    """A copy of ``model`` (shapes of its inputs already fixed) with its shape arithmetic folded."""
    m = _infer(model)
    opset = next((int(o.version) for o in m.opset_import if o.domain in ("", "ai.onnx")), 13)
    for _ in range(rounds):
        if not _fold_once(m, values or {}, opset):
            break
        del m.graph.value_info[:]  # inferred again from the folded graph
        m = _infer(m)
    return m
