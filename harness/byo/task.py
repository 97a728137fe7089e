"""Bring your own model and data: a user's ``.onnx``/``.tflite`` file and dataset file as a task's base.

A task with ``model`` and ``data`` (see :class:`harness.suite.Task`) goes through :func:`build`
instead of a recipe. Everything is checked before any measurement: the arrays exist and are finite
(:mod:`.datasets`), the labels fit the metric and the model's outputs, and each sample's shape (after
the task's ``input`` preprocessing, :mod:`.spec`, :mod:`.preprocess`) matches the model's input
(:mod:`.inspect`).

ONNX models are *prepared* before use (:mod:`.prepare`). When the model converts to the IR and the
metric on the eval set is unchanged by the conversion, the base model is that network, so every
technique (fine-tuned ones included) applies and ONNX, ``.tflite`` and MCU files are exported from
it. Otherwise the (prepared) file is used as is and only post-training techniques apply; the reason
(usually the blocking operator) is logged and kept in ``Dataset.meta["ir"]``.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import ConfigError
from ..ir.data import Dataset
from ..ir.model import Model, content_key
from . import datasets, execute, prepare
from . import inspect as model_inspect
from . import preprocess as preprocessing
from . import spec as input_spec
from .inspect import DTYPES

log = logging.getLogger(__name__)

# every module whose code shapes the base: a change to any of them changes the key
_KEYED_MODULES = (input_spec, model_inspect, datasets, preprocessing, prepare, execute)


@dataclass
class ByoBase:
    """A task's base model (IR network or prepared file), its dataset and their content key."""

    key: str
    model: Model
    data: Dataset


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(path.glob("*.npy")) if path.is_dir() else [path]
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()


def _code() -> str:
    """Source of this module and of every module it builds the base with."""
    mods = [inspect.getmodule(build), *_KEYED_MODULES]
    return "".join(inspect.getsource(m) for m in mods)  # type: ignore[arg-type]


def build(task: Any) -> ByoBase:
    """Check and load a task's model and dataset (no caching: loading is cheap)."""
    spec = input_spec.parse_input(task.name, task.input)
    mpath, dpath = Path(task.model), Path(task.data)
    info = model_inspect.inspect_model(mpath)
    out = model_inspect.scored_output(info, spec)
    inp = model_inspect.data_input(info, spec)
    # ONNX: values of the input's type (a Cast is put in front); TFLite: real values (LiteRT quantises)
    dtype = spec.dtype or (inp.dtype if info.format == "onnx" and inp.dtype in DTYPES else "float32")
    arrays = datasets.load_arrays(dpath, spec)
    for k in ("x_eval", "x_train"):
        if k in arrays:
            arrays[k] = preprocessing.preprocess(arrays[k], spec, dtype)
            preprocessing.check_shape(arrays[k], k, inp, mpath, dpath)
    width = model_inspect.n_outputs(out)
    n_classes = preprocessing.check_labels(arrays, task.metric, width, spec, dpath)
    labels = len(set(arrays["y_eval"].tolist())) if n_classes is not None else None
    if task.metric != "auc" and width is not None and width > 2 and labels is not None and labels <= 2:
        log.warning(
            "task %s: metric %s reads a %d-wide output as class scores, but y_eval holds only %d class(es); "
            "if the model is not a %d-class classifier (an autoencoder?), its score means nothing: set the "
            "metric (and input.output) to what the model predicts",
            task.name,
            task.metric,
            width,
            labels,
            width,
        )
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
    if info.quantized:  # already int8: nothing to quantise, and no float network to export an MCU blob from
        meta["quantized"] = True
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
    prepared = raw if info.format == "tflite" else prepare.prepare_onnx(raw, info, spec)
    net, why = None, "input.convert = false"
    if info.quantized:  # measured as given (its own quantisation); a dequantised copy would be another model
        why = "the file is already int8: it is measured as given; give the float model to derive compressed variants"
    elif spec.convert:
        imp, why = prepare.try_convert(info.format, prepared, out.name, ds, task.metric, task.metric_params)
        net = imp.net if imp is not None else None
        if imp is not None:
            meta["ir"] = f"converted: {imp.net.describe()} (head {imp.head})"
            ds = prepare.flat_rows(ds, imp)
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
        _code(),
        __version__,
    )
    return ByoBase(key, model, ds)
