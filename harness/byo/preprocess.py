"""From the user's arrays to what the model is fed, and the checks that they fit the model.

:func:`preprocess` applies the ``input`` table (layout, reshape, scale/offset, dtype rounding);
:func:`check_shape` compares each sample with the model input; :func:`check_labels` checks the
labels against the metric and the scored output's width.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, DatasetError
from .inspect import INT_DTYPES, TensorInfo, fmt_shape
from .spec import InputSpec


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


def check_labels(
    arrays: dict[str, np.ndarray], metric: str, width: int | None, spec: InputSpec, path: Path
) -> int | None:
    """Check labels against the metric and the output width, casting them in ``arrays`` (int64 class
    ids, float32 targets); returns the class count (None: regression)."""
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
