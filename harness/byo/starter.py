"""Starter suites for ``frugalbench init-task MODEL DATA``: inspect a user's model and dataset, write a suite.

It inspects the model (inputs, outputs, dtypes) and the dataset (arrays, shapes, labels), picks a
metric (binary labels: AUC; several classes: accuracy, or macro-F1 when classes are imbalanced;
real-valued targets: MAE), runs the model once on ``x_eval`` through the same checks as a suite run,
and proposes the minimum as the measured value minus a small margin. The written suite is one
``frugalbench run`` away; every guess is commented in the file.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from .. import metrics
from ..errors import ConfigError
from .datasets import load_arrays
from .execute import run_file
from .inspect import ModelInfo, TensorInfo, data_input, fmt_shape, inspect_model, n_outputs, scored_output
from .spec import InputSpec
from .task import build

log = logging.getLogger(__name__)

MARGIN = 0.01  # suggested minimum = baseline - MARGIN (classification), baseline * 1.1 (mae)


def guess_metric(y: np.ndarray, width: int | None) -> tuple[str, str]:
    """(metric, why) from the labels and the scored output's width.

    Labels shaped like the output (one row of ``width`` values per sample) are reconstruction
    targets: MAE, with a warning. When the output's width does not fit the label classes (a 640-wide
    autoencoder output against 0/1 anomaly labels, or a label past the last output), no metric scores
    the output against these labels, so a :class:`ConfigError` says what to set instead of guessing.
    """
    if y.ndim > 1 and width is not None and int(np.prod(y.shape[1:])) == width and width > 1:
        log.warning(
            "labels hold %d values per sample, as many as the model's output: scored as reconstruction "
            "targets with mae; if they are not, pass --metric",
            width,
        )
        return "mae", f"labels shaped like the {width}-wide output: reconstruction targets"
    if y.dtype.kind == "f" and not np.all(y == np.round(y)):
        return "mae", "real-valued targets"
    classes, counts = np.unique(y.astype(np.int64), return_counts=True)
    if width == 1 and len(classes) > 2:
        return "mae", f"one output and {len(classes)} distinct target values: regression"
    if width is not None and width > 2 and (len(classes) <= 2 or int(classes.max()) >= width):
        shown = ", ".join(str(c) for c in classes[:10]) + (", ..." if len(classes) > 10 else "")
        raise ConfigError(
            f"the model's scored output is {width} values wide, but the labels hold {len(classes)} "
            f"class(es) ({shown}): no metric scores this output against these labels, so init-task will "
            "not guess one. If the model is a classifier, check that y_eval holds class indices below "
            f"{width} and pass --metric; if it is an autoencoder scored on anomaly labels, export its "
            "anomaly score (e.g. the reconstruction error) as a 1-wide output and pass --metric auc; if "
            "y_eval should be the reconstruction, store it with the output's shape (then mae applies)"
        )
    if width == 1 or len(classes) <= 2 and (width or 2) <= 2:
        return "auc", "two classes (binary detection, as MLPerf Tiny's anomaly detection scores it)"
    if counts.max() > 3 * counts.min():
        return (
            "macro_f1",
            f"{len(classes)} classes, imbalanced ({counts.min()}..{counts.max()} rows per class)",
        )
    return "accuracy", f"{len(classes)} balanced classes"


def guess_reshape(sample: tuple[int, ...], inp: TensorInfo) -> list[int] | None:
    """A per-sample reshape when the data holds the right number of values in another shape."""
    want = inp.shape[1:]
    if len(want) == len(sample) and all(w is None or w == s for w, s in zip(want, sample, strict=True)):
        return None
    dims = [int(w) for w in want if w is not None]
    if len(dims) != len(want) or int(np.prod(dims)) != int(np.prod(sample)):
        return None
    return dims


def baseline(task: Any) -> tuple[float, dict[str, Any]]:
    """The task's metric of the model file on ``x_eval`` (after every check of a suite run)."""
    b = build(task)
    ds, model = b.data, b.model
    if model.net is not None:
        out = model.net.forward(ds.x_eval)
    else:
        fmt = "onnx" if "onnx" in model.files else "tflite"
        out = run_file(fmt, model.files[fmt], ds.x_eval)
    return metrics.score(task.metric, out, ds.y_eval, task.metric_params), {
        **ds.meta,
        "train": ds.x_train is not None,
    }


def _toml(v: Any) -> str:
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return repr(v)


def _variants(
    fmt: str, converted: bool, train: bool, quantized: bool
) -> list[tuple[str, str, dict[str, Any], str]]:
    v: list[tuple[str, str, dict[str, Any], str]] = [("fp32", "fp32", {}, "the model as given")]
    if quantized:  # already int8: nothing post-training left to apply
        return v
    if fmt == "onnx" or converted:
        v += [
            ("int8-static", "int8", {"mode": "static"}, "post-training, calibrated on your data"),
            ("int8-dynamic", "int8", {"mode": "dynamic"}, "post-training, int8 weights"),
            ("prune-weights-50", "prune-weights", {"sparsity": 0.5}, "post-training, not fine-tuned"),
            ("svd-weights-50", "svd-weights", {"ratio": 0.5}, "post-training, not fine-tuned"),
        ]
    if fmt == "tflite" or converted:
        v.append(("int8-litert", "int8-litert", {"mode": "static"}, "LiteRT's quantizer"))
    if converted and train:
        v += [
            ("prune-80-ft", "prune", {"sparsity": 0.8}, "fine-tuned on x_train"),
            ("lowrank-ft", "lowrank", {}, "fine-tuned on x_train"),
        ]
    return v


def render(
    name: str,
    model: Path,
    data: Path,
    out_dir: Path,
    task: Any,
    value: float | None,
    why_metric: str,
    info: ModelInfo,
    arrays: dict[str, np.ndarray],
    meta: dict[str, Any],
    problem: str,
) -> str:
    rel = lambda p: os.path.relpath(p.resolve(), out_dir.resolve())  # noqa: E731
    higher = metrics.HIGHER_IS_BETTER[task.metric]
    if value is None:
        minimum, why_min = (
            (0.5 if higher else 1.0),
            "PLACEHOLDER: init-task could not run the model (see above)",
        )
    elif higher:
        minimum = max(0.0, round(value - MARGIN, 4))
        why_min = f"the file scores {value:.4f} on x_eval (measured by init-task); minimum = that - {MARGIN}"
    else:
        minimum = round(value * 1.1, 6)
        why_min = f"the file's MAE is {value:.6g} on x_eval (measured by init-task); maximum = that + 10 %"
    converted = str(meta.get("ir", "")).startswith("converted")
    lines = [
        f"# Starter suite written by `frugalbench init-task` on {_dt.date.today()} for {model.name} and {data.name}.",
        "# Model inputs:  " + ", ".join(f"{t.name} {fmt_shape(t.shape)} {t.dtype}" for t in info.inputs),
        "# Model outputs: " + ", ".join(f"{t.name} {fmt_shape(t.shape)} {t.dtype}" for t in info.outputs),
        "# Dataset:       " + ", ".join(f"{k} {a.shape} {a.dtype}" for k, a in arrays.items()),
        f"# Metric:        {task.metric} ({why_metric}); IR: {meta.get('ir', 'unknown')}",
    ]
    if problem:
        lines.append(f"# FIX FIRST:     {problem}")
    lines += [
        "",
        "[suite]",
        f"name = {_toml(name)}",
        f"description = {_toml(f'{model.name} on {data.name}')}",
        "",
        "[run]",
        "warmup_s = 0.2",
        "window_s = 0.5",
        "min_windows = 3",
        "max_windows = 8",
        "ci_target = 0.02",
        "time_budget_s = 30",
        "",
        "[meter]",
        'kind = "auto"  # the target\'s board meter, else RAPL if readable, else a labelled estimate',
        "",
        "[[tasks]]",
        f"name = {_toml(name)}",
        f"model = {_toml(rel(model))}",
        f"data = {_toml(rel(data))}",
        f"metric = {_toml(task.metric)}",
    ]
    if task.metric_params:
        lines.append(f"metric_params = {_toml(task.metric_params)}")
    lines += [f"min_accuracy = {minimum}", f"why_min = {_toml(why_min)}"]
    if task.input:
        lines += ["", "[tasks.input]"] + [f"{k} = {_toml(v)}" for k, v in task.input.items()]
    for vname, tech, params, note in _variants(
        info.format, converted, bool(meta.get("train")), info.quantized
    ):
        lines += ["", "[[variants]]", f"name = {_toml(vname)}  # {note}", f"technique = {_toml(tech)}"]
        if params:
            lines.append(f"params = {_toml(params)}")
    runtimes = (["ort"] if info.format == "onnx" or converted else []) + (
        ["litert"] if info.format == "tflite" or converted else []
    )
    for rt in runtimes:
        lines += [
            "",
            "[[targets]]",
            f'name = "cpu-{rt}"',
            'kind = "cpu"',
            f'runtime = "{rt}"',
            "threads = 1",
            "batch = 1",
        ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Starter:
    """What :func:`write_starter` wrote: the task name, its metric and measured value, what to fix."""

    task: str
    metric: str
    value: float | None  # None: the model could not be run (see ``problem``)
    problem: str  # empty when the suite runs as written


def write_starter(
    model: Path,
    data: Path,
    output: Path,
    *,
    name: str | None = None,
    metric: str | None = None,
    force: bool = False,
) -> Starter:
    """Inspect ``model`` and ``data`` and write a starter suite to ``output``.

    The suite is written even when the model cannot be run; the reason is then at its top and in
    :attr:`Starter.problem`.
    """
    if output.exists() and not force:
        raise ConfigError(f"{output} exists; pass --force to overwrite it or -o to pick another file")
    for p in (model, data):
        if not p.exists():
            raise ConfigError(f"{p} not found")
    info = inspect_model(model)
    spec = InputSpec()
    table: dict[str, Any] = {}
    extra = [t for t in info.inputs[1:]] if len(info.inputs) > 1 else []
    if extra:  # bind every input after the first to 0; the user checks them
        table["constants"] = {t.name: 0 for t in extra}
        spec = InputSpec(constants=table["constants"])
    out = scored_output(info, spec)
    if out is not info.outputs[0]:
        table["output"] = out.name
    arrays = load_arrays(data, spec)
    inp = data_input(info, spec)
    reshape = guess_reshape(arrays["x_eval"].shape[1:], inp)
    if reshape:
        table["reshape"] = reshape
    metric_name, why = (
        (metric, "chosen on the command line") if metric else guess_metric(arrays["y_eval"], n_outputs(out))
    )
    if metric_name not in metrics.HIGHER_IS_BETTER:
        raise ConfigError(f"unknown metric {metric_name!r}; use one of {sorted(metrics.HIGHER_IS_BETTER)}")
    task = SimpleNamespace(
        name=name or model.stem,
        model=str(model),
        data=str(data),
        input=table,
        metric=metric_name,
        metric_params={"k": 3} if metric_name == "top_k" else {},
    )
    value: float | None = None
    meta: dict[str, Any] = {}
    problem = ""
    if extra:
        problem = f"input.constants binds {[t.name for t in extra]} to 0: set their real values, then re-run"
    try:
        value, meta = baseline(task)
    except Exception as e:  # noqa: BLE001  the suite is still written, with the reason at its top
        problem = (problem + "; " if problem else "") + str(e).splitlines()[0]
    text = render(task.name, model, data, output.parent, task, value, why, info, arrays, meta, problem)
    output.write_text(text, encoding="utf-8")
    return Starter(task.name, metric_name, value, problem)
