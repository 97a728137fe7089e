"""The user's dataset file, in one of three formats, as raw named arrays.

* ``.npz`` with ``x_eval``/``y_eval`` (required) and ``x_train``/``y_train`` (optional);
* a folder (or one ``x_eval.npy`` inside it) holding ``x_eval.npy``/``y_eval.npy`` and optionally
  ``x_train.npy``/``y_train.npy``;
* a ``.csv`` with a header row, numeric columns, the label column (``input.label_column``, default
  the last) and an optional ``split`` column (``train``/``eval``; without it every row is eval).

:func:`load_arrays` refuses missing, unpaired, empty, non-numeric or non-finite arrays.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .spec import InputSpec

ARRAYS = ("x_eval", "y_eval", "x_train", "y_train")


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
