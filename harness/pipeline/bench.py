"""``frugalbench bench MODEL``: benchmark any .onnx/.tflite file (like benchmark_model / onnxruntime_perf_test)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
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


def onnx_cost(path: Path) -> tuple[int | None, int | None]:
    """Parameters (initializer elements) and MACs of MatMul/Gemm/Conv with static shapes; None if unknown."""
    import onnx
    from onnx import numpy_helper, shape_inference

    try:
        m = onnx.load(str(path))
    except Exception as e:  # protobuf DecodeError and friends
        raise ModelError(
            f"{path} is not a readable ONNX model ({type(e).__name__}: {e}); corrupt or truncated?"
        ) from None
    inits = {i.name: i for i in m.graph.initializer}
    params = int(sum(np.prod(i.dims) if i.dims else 1 for i in inits.values()))
    try:
        m = shape_inference.infer_shapes(m)
    except Exception:
        return params, None
    shapes: dict[str, list[int | None]] = {}
    for vi in [*m.graph.value_info, *m.graph.input, *m.graph.output]:
        dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = dims
    for name, init in inits.items():
        shapes[name] = list(init.dims)
    macs, known = 0, True
    for node in m.graph.node:
        if node.op_type in ("MatMul", "Gemm"):
            a, b = shapes.get(node.input[0]), shapes.get(node.input[1])
            if not a or not b or None in b:
                known = False
                continue
            transb = any(at.name == "transB" and at.i for at in node.attribute)
            k, n = (b[-1], b[-2]) if transb else (b[-2], b[-1])
            rows = int(np.prod([d or 1 for d in a[1:-1]])) if len(a) > 2 else 1
            macs += rows * int(k or 0) * int(n or 0)
        elif node.op_type == "Conv" and node.input[1] in inits:
            w = list(inits[node.input[1]].dims)
            out = shapes.get(node.output[0])
            if not out or None in out[2:]:
                known = False
                continue
            macs += int(np.prod([d or 0 for d in out[1:]]) * np.prod(w[1:]))
        elif node.op_type in ("If", "Loop", "Scan"):
            known = False
    _ = numpy_helper
    return params, (macs if known else None)


def tflite_params(path: Path) -> int | None:
    from ai_edge_litert import schema_py_generated as tfl

    buf = path.read_bytes()
    try:
        m = tfl.ModelT.InitFromPackedBuf(buf, 0)
    except Exception as e:
        raise ModelError(f"{path} is not a readable TFLite model ({e}); corrupt or truncated?") from None
    total = 0
    for sg in m.subgraphs or []:
        for t in sg.tensors or []:
            b = m.buffers[t.buffer] if t.buffer < len(m.buffers) else None
            if b is not None and b.data is not None and len(b.data) and t.shape is not None:
                total += int(np.prod(t.shape)) if len(t.shape) else 1
    return total


def parse_overrides(items: list[str] | None, *, what: str) -> dict[str, str]:
    """``NAME=VALUE`` pairs from the command line."""
    out = {}
    for it in items or []:
        name, sep, val = it.partition("=")
        if not sep or not name:
            raise ModelError(f"--{what} expects NAME=VALUE, got {it!r}")
        out[name] = val
    return out


def _dims(name: str, shape: tuple[int | None, ...], batch: int, override: str | None) -> list[int]:
    if override is not None:
        try:
            return [int(d) for d in override.lower().split("x")] if override else []
        except ValueError:
            raise ModelError(f"--shape {name}={override}: expected dimensions like 1x512") from None
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
    dt = np.dtype(dtype)
    if value is not None:
        try:
            return np.full(dims, float(value) if dt.kind == "f" else int(value), dtype=dt)
        except ValueError:
            raise ModelError(f"--value {name}={value}: not a number") from None
    if dt.kind == "f":
        return rng.standard_normal(dims).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(max(info.min, -128), min(info.max, 127) + 1, size=dims).astype(dt)


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
    if cls.format == "onnx":
        params, macs = onnx_cost(path)
    else:
        params, macs = tflite_params(path), None
    rt = cls(path, threads=threads, batch=batch)
    rng = np.random.default_rng(seed)
    specs = rt.input_specs  # names, shapes and the dtypes the runtime takes
    unknown = sorted((set(shapes) | set(values)) - {n for n, _, _ in specs})
    if unknown:
        raise ModelError(f"no input named {unknown}; the model's inputs are {[n for n, _, _ in specs]}")
    feeds = [
        {n: _make_input(n, shp, dt, batch, rng, shapes.get(n), values.get(n)) for n, shp, dt in specs}
        for _ in range(8)
    ]
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
        params=params,
        macs=macs,
        inputs=[{"name": n, "shape": list(a.shape), "dtype": str(a.dtype)} for n, a in feeds[0].items()],
        latency_ms={k: v * 1e3 for k, v in pct.items()},
        latency_ci_rel=rel_half_width(med, lo, hi),
        throughput_ips=float(np.median(thr)),
        n_inferences=int(sum(len(n) for n in all_ns) * batch),
        host=host_summary(),
    )
