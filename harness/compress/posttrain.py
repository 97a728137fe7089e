"""Post-training techniques that work on any ONNX model (and on converted networks); never fine-tuned.

* ``prune-weights``: magnitude pruning of weight initializers (MatMul/Gemm/Conv weights of rank ≥ 2),
  per tensor, no fine-tuning. Dense runtimes multiply the zeros: the gain is in compressed size.
* ``svd-weights``: truncated SVD of constant MatMul/Gemm weights ``W ≈ U V``, keeping ``ratio`` of
  the parameters (only where that saves parameters), no fine-tuning.
* ``int8-litert``: LiteRT's own quantizer (``litert-quantizer``) on a ``.tflite`` file, calibrated on
  the task's calibration rows (``static``: int8 weights and activations; ``dynamic``: int8 weights).

When the model has the IR (a recipe, or a user's ONNX that :mod:`harness.ir.importers.onnx_import` converted),
pruning and SVD rewrite its dense layers, so ONNX, ``.tflite`` and MCU files all follow; otherwise
they rewrite the ONNX file's initializers and only ONNX targets run the variant.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import CompressionError
from ..ir.data import Dataset
from ..ir.layers import Dense
from ..ir.model import Model
from ..ir.network import Network
from .base import COMPRESSORS, Compressor

log = logging.getLogger(__name__)


def _entry(comp: Compressor, **stats: Any) -> dict[str, Any]:
    return {"technique": comp.name, "params": comp.get_params(), "fine_tuned": False, "epochs": 0, **stats}


def _weights(m: onnx.ModelProto) -> dict[str, tuple[onnx.NodeProto, int]]:
    """Initializer name → (node, input index) for the weight input of MatMul/Gemm/Conv nodes."""
    inits = {i.name for i in m.graph.initializer}
    out: dict[str, tuple[onnx.NodeProto, int]] = {}
    for n in m.graph.node:
        idx = {"MatMul": (0, 1), "Gemm": (0, 1), "Conv": (1,), "ConvTranspose": (1,)}.get(n.op_type, ())
        for i in idx:
            if i < len(n.input) and n.input[i] in inits:
                out.setdefault(n.input[i], (n, i))
    return out


def _onnx_of(model: Model, technique: str) -> onnx.ModelProto:
    raw = model.files.get("onnx")
    if raw is None:
        have = ", ".join(model.files) or "nothing"
        raise CompressionError(
            f"{technique} rewrites ONNX weights, but this model has {have}; for a .tflite model use "
            "int8-litert, or give the task an .onnx file"
        )
    return onnx.load_from_string(raw)


def magnitude_mask(w: np.ndarray, sparsity: float) -> np.ndarray:
    """Keep-mask with the ``sparsity`` fraction of smallest-magnitude entries set to False."""
    flat = np.abs(w).ravel()
    k = int(round(sparsity * flat.size))
    keep = np.ones(flat.size, dtype=bool)
    if k > 0:
        keep[np.argpartition(flat, k - 1)[:k]] = False
    return keep.reshape(w.shape)


@COMPRESSORS.register("prune-weights")
class PruneWeights(Compressor):
    """Zero the smallest-magnitude ``sparsity`` of every weight tensor with ≥ ``min_size`` entries."""

    name = "prune-weights"

    def __init__(self, *, sparsity: float = 0.5, min_size: int = 64) -> None:
        if not 0.0 < sparsity < 1.0:
            raise ValueError(f"sparsity must be in (0, 1), got {sparsity}")
        self.sparsity = sparsity
        self.min_size = min_size

    def fit(self, model: Model, data: Dataset) -> PruneWeights:
        return self

    def transform(self, model: Model) -> Model:
        if model.net is not None:
            net = Network([copy.deepcopy(layer) for layer in model.net.layers])
            done = [
                i for i, la in enumerate(net.layers) if isinstance(la, Dense) and la.w.size >= self.min_size
            ]
            for i in done:
                la = net.layers[i]
                assert isinstance(la, Dense)
                la.w *= magnitude_mask(la.w, self.sparsity)
            ws = [la.w for la in net.layers if isinstance(la, Dense) and la.w.size >= self.min_size]
            zeros = sum(int((w == 0).sum()) for w in ws)
            total = sum(int(w.size) for w in ws)
            entry = _entry(self, tensors=len(done), sparsity_achieved=zeros / max(total, 1), on="network")
            return model.with_(net=net, files={}, act_q=None, history=[*model.history, entry])
        m = _onnx_of(model, self.name)
        weights = _weights(m)
        zeros = total = 0
        pruned = []
        for init in m.graph.initializer:
            if init.name not in weights:
                continue
            w = numpy_helper.to_array(init)
            if w.size < self.min_size or w.dtype.kind != "f":
                continue
            w = w * magnitude_mask(w, self.sparsity)
            init.CopyFrom(numpy_helper.from_array(w.astype(w.dtype), init.name))
            zeros += int((w == 0).sum())
            total += w.size
            pruned.append(init.name)
        if not pruned:
            raise CompressionError(
                f"prune-weights found no float MatMul/Gemm/Conv weight with >= {self.min_size} entries to prune"
            )
        entry = _entry(self, tensors=len(pruned), sparsity_achieved=zeros / total, on="onnx")
        return model.with_(files={"onnx": m.SerializeToString()}, act_q=None, history=[*model.history, entry])


def _rank(n_in: int, n_out: int, ratio: float) -> int | None:
    """Largest rank keeping ≤ ``ratio`` of the parameters, or None when factoring saves nothing."""
    r = int(ratio * n_in * n_out / (n_in + n_out))
    return r if 1 <= r < min(n_in, n_out) else None


@COMPRESSORS.register("svd-weights")
class SvdWeights(Compressor):
    """Replace constant MatMul/Gemm weights by truncated-SVD factors with ``ratio`` of the parameters."""

    name = "svd-weights"

    def __init__(self, *, ratio: float = 0.5, min_size: int = 1024) -> None:
        if not 0.0 < ratio < 1.0:
            raise ValueError(f"ratio must be in (0, 1), got {ratio}")
        self.ratio = ratio
        self.min_size = min_size

    def fit(self, model: Model, data: Dataset) -> SvdWeights:
        self.x_calib_ = data.x_calib
        return self

    def transform(self, model: Model) -> Model:
        if model.net is not None:
            return self._on_net(model, model.net)
        m = _onnx_of(model, self.name)
        g = m.graph
        inits = {i.name: i for i in g.initializer}
        consumers: dict[str, int] = {}
        for n in g.node:
            for x in n.input:
                consumers[x] = consumers.get(x, 0) + 1
        factored, before, after = [], 0, 0
        new_nodes: list[onnx.NodeProto] = []
        for n in g.node:
            w_name = n.input[1] if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 else None
            w0 = numpy_helper.to_array(inits[w_name]) if w_name in inits else None
            gemm_t = n.op_type == "Gemm" and any(a.name == "transA" and a.i for a in n.attribute)
            if (
                w0 is None
                or w0.ndim != 2
                or w0.size < self.min_size
                or consumers.get(str(w_name), 0) != 1
                or gemm_t
            ):
                new_nodes.append(n)
                continue
            trans_b = n.op_type == "Gemm" and any(a.name == "transB" and a.i for a in n.attribute)
            w = w0.T if trans_b else w0
            r = _rank(w.shape[0], w.shape[1], self.ratio)
            if r is None:
                new_nodes.append(n)
                continue
            from ..ir.layers.lowrank import svd_factors

            u, v = svd_factors(w, r)
            un, hid = f"{w_name}__svd_u", f"{w_name}__svd_h"
            g.initializer.append(numpy_helper.from_array(u.astype(w0.dtype), un))
            inits[w_name].CopyFrom(numpy_helper.from_array((v.T if trans_b else v).astype(w0.dtype), w_name))
            new_nodes.append(
                onnx.helper.make_node("MatMul", [n.input[0], un], [hid], name=f"{w_name}__svd_matmul")
            )
            n.input[0] = hid
            new_nodes.append(n)
            factored.append(w_name)
            before += w.size
            after += u.size + v.size
        if not factored:
            raise CompressionError(
                f"svd-weights found no MatMul/Gemm weight (>= {self.min_size} entries) where rank factors "
                f"with ratio {self.ratio} would save parameters"
            )
        del g.node[:]
        g.node.extend(new_nodes)
        entry = _entry(self, tensors=len(factored), params_before=before, params_after=after, on="onnx")
        return model.with_(files={"onnx": m.SerializeToString()}, act_q=None, history=[*model.history, entry])

    def _on_net(self, model: Model, net0: Network) -> Model:
        from ..ir.layers.lowrank import LowRank
        from ..ir.train import calibrate_inner

        layers: list[Any] = []
        before = after = 0
        for la in net0.layers:
            r = _rank(la.in_dim, la.out_dim, self.ratio) if isinstance(la, Dense) else None
            if r is None or not isinstance(la, Dense) or la.w.size < self.min_size:
                layers.append(copy.deepcopy(la))
                continue
            lr = LowRank.from_dense(la.w, la.b, la.act, r)
            before, after = before + la.w.size, after + lr.u.size + lr.v.size
            layers.append(lr)
        if not after:
            raise CompressionError(
                f"svd-weights: no dense layer of {net0.describe()} has >= {self.min_size} weights where "
                f"ratio {self.ratio} saves parameters"
            )
        net = Network(layers)
        calibrate_inner(net, self.x_calib_)
        entry = _entry(self, params_before=before, params_after=after, on="network")
        return model.with_(net=net, files={}, act_q=None, history=[*model.history, entry])


def litert_quantizer_missing() -> str | None:
    """None when ``litert-quantizer`` imports, else how to install it."""
    try:
        import litert_quantizer  # noqa: F401
    except ImportError:
        return "int8-litert needs `pip install 'frugalbench[litert-quant]'` (litert-quantizer)"
    return None


@COMPRESSORS.register("int8-litert")
class Int8Litert(Compressor):
    """LiteRT's quantizer on the model's float ``.tflite`` (a user's file, or the IR's export)."""

    name = "int8-litert"
    quantizes = True

    def __init__(self, *, mode: Literal["static", "dynamic"] = "static", calib_samples: int = 256) -> None:
        self.mode = mode
        self.calib_samples = calib_samples

    def fit(self, model: Model, data: Dataset) -> Int8Litert:
        self.x_calib_ = data.x_calib[: self.calib_samples].astype(np.float32)
        return self

    def transform(self, model: Model) -> Model:
        missing = litert_quantizer_missing()
        if missing:
            raise CompressionError(missing)
        from litert_quantizer import quantizer, recipe

        raw = model.files.get("tflite")
        if raw is None and model.net is not None:
            from ..ir.export.tflite_export import network_to_tflite

            raw = network_to_tflite(model.net)
        if raw is None:
            raise CompressionError("int8-litert needs a float .tflite model (or a network to export one)")
        try:
            q = quantizer.Quantizer(
                raw, recipe.static_wi8_ai8() if self.mode == "static" else recipe.dynamic_wi8_afp32()
            )
            calib = None
            if self.mode == "static":
                sigs = _signatures(raw)
                if not sigs:
                    raise CompressionError(
                        "int8-litert static mode needs a SignatureDef in the .tflite; re-export it"
                    )
                sig, in_name = sigs[0]
                with _quiet():
                    calib = q.calibrate({sig: [{in_name: row[None]} for row in self.x_calib_]})
            with _quiet():
                out = q.quantize(calib, enable_progress_report=False)
            blob = bytes(out.quantized_model)
        except CompressionError:
            raise
        except Exception as e:  # the quantizer raises ValueError/RuntimeError/KeyError on unsupported models
            raise CompressionError(f"litert-quantizer could not quantise the model ({self.mode}): {e}") from e
        entry = _entry(self, mode=self.mode)
        return model.with_(net=None, files={"tflite": blob}, act_q=None, history=[*model.history, entry])


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the quantizer's progress bars, debug warnings and root-logger advice."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _signatures(raw: bytes) -> list[tuple[str, str]]:
    """(signature key, first input name) of each SignatureDef."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=raw)
    out = []
    for key, sig in it.get_signature_list().items():
        if sig.get("inputs"):
            out.append((key, sig["inputs"][0]))
    return out
