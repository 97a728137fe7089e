"""``frugalbench bench MODEL``: benchmark any .onnx/.tflite file (like benchmark_model / onnxruntime_perf_test)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from ..ir.counts import count_onnx, count_tflite, load_onnx
from ..runtimes import RUNTIMES
from ..stats import median_ci, percentiles, rel_half_width
from ..sysinfo import host_summary


@dataclass
class BenchResult:
    model: str
    runtime: str
    runtime_version: str
    threads: int
    batch: int
    model_bytes: int
    params: int | None
    macs: int | None
    macs_unknown: str | None  # why ``macs`` is None (the operator and the reason), else None
    inputs: list[dict[str, Any]]
    latency_ms: dict[str, float]
    latency_ci_rel: float
    throughput_ips: float
    n_inferences: int
    host: dict[str, Any]


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise ModelError(f"model file {path} not found")
    data = path.read_bytes()[:8]
    if path.suffix == ".tflite" and data[4:8] != b"TFL3":
        raise ModelError(f"{path} is not a TFLite flatbuffer (no TFL3 identifier): corrupt or truncated?")
    if path.stat().st_size == 0:
        raise ModelError(f"{path} is empty")


def parse_overrides(items: list[str] | None, *, what: str) -> dict[str, str]:
    """``NAME=VALUE`` pairs from the command line."""
    out = {}
    for it in items or []:
        name, sep, val = it.partition("=")
        if not sep or not name:
            raise ModelError(f"--{what} expects NAME=VALUE, got {it!r}")
        out[name] = val
    return out


MAX_FEED_BYTES = 256 * 2**20  # one random input array; 8 of them are fed in turn
MAX_DIM = 2**31 - 1


def _parse_shape(name: str, shape: tuple[int | None, ...], override: str) -> list[int]:
    """``1x512`` -> ``[1, 512]``, checked against the input's rank and its static dimensions."""
    example = "x".join(str(x or "N") for x in shape) or "1x512"
    try:
        dims = [int(d) for d in override.lower().split("x")]
    except ValueError:
        raise ModelError(f"--shape {name}={override!r}: expected dimensions like {example}") from None
    if any(not 1 <= d <= MAX_DIM for d in dims):
        raise ModelError(f"--shape {name}={override}: every dimension must be in [1, {MAX_DIM}] (e.g. {example})")
    if shape and len(dims) != len(shape):
        raise ModelError(
            f"--shape {name}={override}: {len(dims)} dimension(s), but input {name!r} has {len(shape)} "
            f"(e.g. {example})"
        )
    for i, (d, want) in enumerate(zip(dims, shape, strict=False)):
        if want is not None and want > 1 and d != want:
            raise ModelError(f"--shape {name}={override}: dimension {i} of input {name!r} is fixed at {want}")
    return dims


def _dims(name: str, shape: tuple[int | None, ...], batch: int, override: str | None) -> list[int]:
    if override is not None:
        return _parse_shape(name, shape, override)
    dims = []
    for i, d in enumerate(shape):
        if d is None or (i == 0 and d <= 1):
            if i != 0:
                raise ModelError(
                    f"input {name!r} has a dynamic dimension {i} (shape {list(shape)}); "
                    f"give it with --shape {name}=" + "x".join(str(x or "N") for x in shape)
                )
            dims.append(batch)
        else:
            dims.append(d)
    return dims


def _make_input(
    name: str,
    shape: tuple[int | None, ...],
    dtype: Any,
    batch: int,
    rng: np.random.Generator,
    shape_override: str | None,
    value: str | None,
) -> np.ndarray:
    dims = _dims(name, shape, batch, shape_override)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = np.dtype(object)
    if dt.kind not in "biuf":
        raise ModelError(f"input {name!r} has dtype {dt}; bench feeds numeric and boolean inputs only")
    n_bytes = math.prod(dims) * dt.itemsize
    if n_bytes > MAX_FEED_BYTES:
        raise ModelError(
            f"input {name!r} of shape {dims} {dt} would take {n_bytes / 2**20:.0f} MiB per call "
            f"(limit {MAX_FEED_BYTES // 2**20} MiB); give a smaller --batch or --shape {name}=..."
        )
    if value is not None:
        try:
            v = float(value) if dt.kind == "f" else int(value)
            if dt.kind == "f" and not math.isfinite(v):
                raise ValueError(value)
            return np.full(dims, v, dtype=dt)
        except (ValueError, OverflowError):
            raise ModelError(f"--value {name}={value}: not a finite {dt} number") from None
    if dt.kind == "f":
        return rng.standard_normal(dims).astype(dt)
    if dt.kind == "b":
        return rng.integers(0, 2, size=dims).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(max(info.min, -128), min(info.max, 127) + 1, size=dims).astype(dt)


def _stored_dtypes(rt: Any, specs: list[Any]) -> dict[str, str]:
    """Each input's dtype as stored in the model file (an int8 TFLite input is fed as float32)."""
    out = {n: np.dtype(dt).name for n, _, dt in specs}
    if len(specs) == 1:
        out[specs[0][0]] = np.dtype(rt.input_dtype).name
    return out


def _check_numbers(*, threads: int, batch: int, window_s: float, windows: int, warmup_s: float) -> None:
    """Option bounds for the Python API (the CLI checks the same with its own limits first)."""
    if threads < 1 or batch < 1 or windows < 1:
        raise ModelError(f"threads, batch and windows must be >= 1 (got {threads}, {batch}, {windows})")
    for name, v in (("window_s", window_s), ("warmup_s", warmup_s)):
        if not math.isfinite(v) or v < 0 or (name == "window_s" and v == 0):
            raise ModelError(f"{name} = {v}: give a finite number of seconds > 0")


def _onnx_dtypes(proto: Any) -> dict[str, Any]:
    """Each graph input's element type as numpy sees it (bool, uint16, string... fed as declared)."""
    from onnx import helper

    out: dict[str, Any] = {}
    for v in proto.graph.input:
        try:
            out[v.name] = helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)
        except (KeyError, ValueError, TypeError):
            out[v.name] = np.dtype(object)  # an element type numpy has no dtype for
    return out


def _runtime_for(path: Path) -> str:
    """The registered runtime that loads files with ``path``'s extension."""
    names = [n for n in RUNTIMES.names() if f".{RUNTIMES.get(n).format}" == path.suffix]
    if not names:
        raise ModelError(
            f"{path}: unknown extension {path.suffix!r}; give --runtime {'|'.join(RUNTIMES.names())}"
        )
    return names[0]


def bench_model(
    path: Path,
    *,
    runtime: str | None = None,
    threads: int = 1,
    batch: int = 1,
    window_s: float = 1.0,
    windows: int = 5,
    warmup_s: float = 0.5,
    seed: int = 0,
    shapes: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> BenchResult:
    """Benchmark a model file with random inputs of its declared shape (constants via ``values``)."""
    path = Path(path)
    _check_file(path)
    shapes, values = shapes or {}, values or {}
    if runtime is None:
        runtime = _runtime_for(path)
    cls = RUNTIMES.get(runtime)
    if path.suffix != f".{cls.format}" and path.suffix in (".onnx", ".tflite"):
        raise ModelError(f"runtime {runtime} loads .{cls.format} files, not {path.suffix}")
    _check_numbers(threads=threads, batch=batch, window_s=window_s, windows=windows, warmup_s=warmup_s)
    proto = load_onnx(path) if cls.format == "onnx" else None  # a clear error for a corrupt file
    if proto is not None and not set(_onnx_dtypes(proto)) - {i.name for i in proto.graph.initializer}:
        raise ModelError(f"{path} has no inputs; bench feeds a model at least one input")
    rt = cls(path, threads=threads, batch=batch)
    rng = np.random.default_rng(seed)
    specs = rt.input_specs  # names, shapes and the dtypes the runtime takes
    if not specs:
        raise ModelError(f"{path} has no inputs; bench feeds a model at least one input")
    unknown = sorted((set(shapes) | set(values)) - {n for n, _, _ in specs})
    if unknown:
        raise ModelError(f"no input named {unknown}; the model's inputs are {[n for n, _, _ in specs]}")
    declared = _onnx_dtypes(proto) if proto is not None else {}
    specs = [s._replace(dtype=np.dtype(declared.get(s.name, s.dtype))) for s in specs]
    feeds = [
        {n: _make_input(n, shp, dt, batch, rng, shapes.get(n), values.get(n)) for n, shp, dt in specs}
        for _ in range(8)
    ]
    # counted for one inference of the shapes and constant values fed (a dynamic batch counts as 1)
    given = {n: _dims(n, shp, 1, shapes[n]) for n, shp, _ in specs if n in shapes}
    consts = {n: feeds[0][n] for n in values}
    counts = count_onnx(proto, given, consts) if proto is not None else count_tflite(path.read_bytes())
    stored = _stored_dtypes(rt, specs)
    loop = lambda k: rt.timed_feeds(feeds, k)  # noqa: E731
    probe = loop(10)
    per_call = max(float(np.median(probe)) * 1e-9, 1e-7)
    loop(max(1, int(warmup_s / per_call)))
    all_ns, meds, thr = [], [], []
    for _ in range(windows):
        ns = loop(max(10, int(window_s / per_call)))
        all_ns.append(ns)
        meds.append(float(np.median(ns)) / batch)
        thr.append(len(ns) * batch / (ns.sum() * 1e-9))
    lat = np.concatenate(all_ns) * 1e-9 / batch
    pct = percentiles(lat)
    med, lo, hi = median_ci(np.array(meds), seed=seed)
    return BenchResult(
        model=str(path),
        runtime=runtime,
        runtime_version=cls.version(),
        threads=threads,
        batch=batch,
        model_bytes=path.stat().st_size,
        params=counts.params,
        macs=counts.macs,
        macs_unknown=counts.reason,
        inputs=[
            {"name": n, "shape": list(a.shape), "dtype": stored[n], "fed_dtype": str(a.dtype)}
            for n, a in feeds[0].items()
        ],
        latency_ms={k: v * 1e3 for k, v in pct.items()},
        latency_ci_rel=rel_half_width(med, lo, hi),
        throughput_ips=float(np.median(thr)),
        n_inferences=int(sum(len(n) for n in all_ns) * batch),
        host=host_summary(),
    )
