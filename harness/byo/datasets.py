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
import re
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from ..errors import DatasetError
from .spec import InputSpec

ARRAYS = ("x_eval", "y_eval", "x_train", "y_train")
MAX_ARRAY_BYTES = 8 * 2**30  # one array in memory; a larger declared shape is refused before allocation
# a CSV is parsed in Python: bounded before anything is held in memory (an .npz takes larger data)
MAX_CSV_BYTES = 2**30  # the file
MAX_CSV_LINE = 2**20  # characters in one line
MAX_CSV_COLUMNS = 10_000
MAX_CSV_VALUES = 100_000_000  # rows × columns, counted before the arrays are allocated
# errors a damaged file raises while numpy reads it (a truncated zip, a bad CRC, a lying header)
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def _declared(f: IO[bytes]) -> tuple[tuple[int, ...], np.dtype] | None:
    """Shape and dtype from a ``.npy`` header, without reading the data (None if not a .npy stream)."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    except _READ_ERRORS:
        return None
    return tuple(shape), dtype


def _check_declared(
    where: str, key: str, declared: tuple[tuple[int, ...], np.dtype] | None, size: int
) -> None:
    """Refuse an array whose header cannot be read, declares object data, or more bytes than the file holds."""
    if declared is None:
        raise DatasetError(
            f"{where}: {key} is not a numpy array (bad header); write it with numpy.save/savez"
        )
    shape, dtype = declared
    if dtype.hasobject:
        raise DatasetError(f"{where}: {key} holds Python objects (dtype object); save a numeric array")
    n_bytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if n_bytes > MAX_ARRAY_BYTES:
        raise DatasetError(
            f"{where}: {key} declares shape {shape} {dtype} ({n_bytes / 2**30:.1f} GiB; "
            f"limit {MAX_ARRAY_BYTES // 2**30} GiB); subsample it"
        )
    if n_bytes > size:
        raise DatasetError(f"{where}: {key} declares {n_bytes} bytes but holds {size}: the file is truncated")


def _npz(path: Path) -> dict[str, np.ndarray]:
    fix = "write it again with numpy.savez"
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                key = info.filename.removesuffix(".npy")
                if key in ARRAYS:
                    with zf.open(info) as f:
                        _check_declared(str(path), key, _declared(f), info.file_size)
        z = np.load(path, allow_pickle=False)
        return {k: np.asarray(z[k]) for k in z.files if k in ARRAYS}
    except DatasetError:
        raise
    except _READ_ERRORS as e:
        why = "empty file" if path.stat().st_size == 0 else type(e).__name__
        raise DatasetError(f"{path}: not a readable .npz ({why}: corrupt or truncated?); {fix}") from None


def _npy_folder(path: Path) -> dict[str, np.ndarray]:
    folder = path if path.is_dir() else path.parent
    out = {}
    for k in ARRAYS:
        f = folder / f"{k}.npy"
        if f.exists():
            try:
                with f.open("rb") as fh:
                    declared = _declared(fh)
                    header = fh.tell()
                _check_declared(str(f), k, declared, f.stat().st_size - header)
                out[k] = np.load(f, allow_pickle=False)
            except DatasetError:
                raise
            except _READ_ERRORS as e:
                raise DatasetError(
                    f"{f}: not a readable .npy ({type(e).__name__}); write it with numpy.save"
                ) from None
    return out


def _shown(header: list[str]) -> str:
    """The column names, if they look like column names; never a line of some other file."""
    if len(header) <= 64 and all(re.fullmatch(r"[\w .()%-]{1,40}", h) for h in header):
        return f"columns: {header}"
    return f"{len(header)} column(s) in the header row"


def _number(text: str, row: int, col: int, path: Path) -> float:
    try:
        return float(text) if text.strip() else np.nan
    except ValueError:
        raise DatasetError(
            f"{path}: row {row}, column {col + 1} is not a number; every feature and label must be numeric"
        ) from None


def _lines(f: IO[str], path: Path) -> Iterator[str]:
    """The lines of ``f``, each read with a bound (a file of one endless line is refused, not loaded)."""
    n = 0
    while line := f.readline(MAX_CSV_LINE + 1):
        n += 1
        if len(line) > MAX_CSV_LINE:
            raise DatasetError(
                f"{path}: line {n} is longer than {MAX_CSV_LINE} characters (limit); is this a CSV with one row "
                "per line? Save large data as .npz (numpy.savez)"
            )
        yield line


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(row number, fields)`` of the CSV, header first (row 1), read lazily; errors name the file."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            yield from enumerate(csv.reader(_lines(f, path)), start=1)
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text (byte {e.start}); save the CSV as UTF-8") from None
    except csv.Error as e:
        raise DatasetError(f"{path}: not a readable CSV ({type(e).__name__}); check its quoting") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None


def _csv_size(path: Path) -> None:
    """Refuse a CSV file larger than :data:`MAX_CSV_BYTES` before reading it."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    if size > MAX_CSV_BYTES:
        raise DatasetError(
            f"{path}: {size / 2**30:.1f} GiB is larger than the CSV limit ({MAX_CSV_BYTES / 2**30:g} GiB); "
            "save it as .npz (numpy.savez) or subsample it"
        )


def _csv(path: Path, spec: InputSpec) -> dict[str, np.ndarray]:
    # two passes: count and check every row's width, refuse too many values, then allocate and fill
    _csv_size(path)
    rows = _csv_rows(path)
    header = next(rows, (1, []))[1]
    if len(header) > MAX_CSV_COLUMNS:
        raise DatasetError(
            f"{path}: {len(header)} columns in the header row (limit {MAX_CSV_COLUMNS}); save it as .npz"
        )
    n_rows = 0
    for n, r in rows:
        if len(r) != len(header):
            raise DatasetError(f"{path}: row {n} has {len(r)} field(s), the header {len(header)}")
        n_rows += 1
    if n_rows < 1:
        raise DatasetError(f"{path}: needs a header row and at least one data row")
    lc = spec.label_column if spec.label_column is not None else len(header) - 1
    li = lc if isinstance(lc, int) else (header.index(lc) if lc in header else -1)
    if not 0 <= li < len(header):
        raise DatasetError(f"{path}: no label column {lc!r}; {_shown(header)}")
    si = header.index("split") if "split" in header else None
    feats = [i for i in range(len(header)) if i not in (li, si)]
    if not feats:
        raise DatasetError(f"{path}: no feature column besides the label; {_shown(header)}")
    if n_rows * len(header) > MAX_CSV_VALUES:
        raise DatasetError(
            f"{path}: {n_rows} rows × {len(header)} columns = {n_rows * len(header)} values (limit "
            f"{MAX_CSV_VALUES}); save it as .npz (numpy.savez) or subsample it"
        )
    x = np.empty((n_rows, len(feats)), np.float64)
    y = np.empty(n_rows, np.float64)
    split_l: list[str] = []
    rows = _csv_rows(path)
    next(rows)
    filled = 0
    for n, r in rows:
        if filled >= n_rows or len(r) != len(header):
            raise DatasetError(f"{path}: the file changed while it was read; try again")
        x[filled] = [_number(r[i], n, i, path) for i in feats]
        y[filled] = _number(r[li], n, li, path)
        if si is not None:
            split_l.append(r[si].strip().lower())
        filled += 1
    if filled != n_rows:
        raise DatasetError(f"{path}: the file changed while it was read; try again")
    if si is None:
        return {"x_eval": x, "y_eval": y}
    split = np.array(split_l)
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
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
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
        if a.ndim == 0 or (k.startswith("y") and a.ndim > 2):
            want = (
                "one label (or one row of targets) per sample" if k.startswith("y") else "one row per sample"
            )
            raise DatasetError(f"{path}: {k} has shape {a.shape}; give an array with {want}")
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
