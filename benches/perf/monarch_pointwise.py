"""Monarch on pointwise (1x1) convolutions: speed-up over the dense pointwise conv as a fraction of the MAC ratio.

For C = 64, 128, 256 channels on a 16x16 NHWC feature map (batch 1 by default), one layer of each kind is
built with the project's layers and timed single-threaded, side by side in one run:

* ``numpy``: the IR forward pass (``layer.forward``) of a :class:`~harness.ir.layers.Conv2D` 1x1 and of a
  :class:`~harness.ir.layers.Pointwise` around a :class:`~harness.ir.layers.Monarch` (``nblocks`` =
  ``sqrt(C)`` rounded to a divisor);
* ``ort``: ONNX Runtime on the project's ONNX export of the same layers (the dense baseline is the
  faster of the 1x1 ``Conv`` export and a ``Pointwise(Dense)`` ``MatMul`` export; Monarch in every ONNX form).

For each Monarch row the script prints the measured speed-up over the dense baseline of the same runtime,
the MAC ratio (dense MACs / Monarch MACs) and their quotient (1.0 = every saved MAC turned into time).
Timings are medians; nothing here asserts a speed.

Output: a table, then ``key=value`` lines ``monarch_pointwise_quotient_c<C>_<runtime>=<value>`` (the
best ONNX form for ``ort``).

Usage: ``python benches/perf/monarch_pointwise.py [--channels 64,128,256] [--hw 16] [--batch 1] [--seconds 0.3]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads BLAS: single-threaded like ORT below
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

from harness.ir.export.onnx_export import network_to_onnx_bytes  # noqa: E402
from harness.ir.layers import Conv2D, Dense, Layer, Monarch, Pointwise, Reshape  # noqa: E402
from harness.ir.layers.monarch import ONNX_FORMS, default_nblocks  # noqa: E402
from harness.ir.network import Network  # noqa: E402


def median_us(fn: Callable[[], object], seconds: float) -> float:
    """Median wall time of ``fn`` in µs over about ``seconds`` (at least 5 runs, after 2 warm-ups)."""
    fn()
    fn()
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e6)


def ort_us(net: Network, x: np.ndarray, seconds: float) -> float:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(network_to_onnx_bytes(net), so, providers=["CPUExecutionProvider"])
    feed = {"input": x}
    return median_us(lambda: sess.run(None, feed), seconds)


def layers_for(c: int, hw: int, rng: np.random.Generator) -> dict[str, Layer]:
    shape = (hw, hw, c)
    w = (rng.standard_normal((c, c)) / np.sqrt(c)).astype(np.float32)
    b = np.zeros(c, np.float32)
    nb = default_nblocks(c, c)
    assert nb is not None
    return {
        "dense-conv": Conv2D(w[None, None], b, shape),
        "dense-matmul": Pointwise(Dense(w, b), shape),
        "monarch": Pointwise(Monarch.from_dense(w, b, None, nb, nb), shape),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", default="64,128,256")
    ap.add_argument("--hw", type=int, default=16, help="feature map height and width")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=0.3, help="timing budget per configuration")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"onnxruntime {ort.__version__}; 1 thread; {args.hw}x{args.hw} map, batch {args.batch}; median µs")
    print(f"{'runtime':<8}{'C':>5}  {'layer':<18}{'µs':>10}{'speed-up':>10}{'MAC ratio':>10}{'quotient':>10}")
    results: list[str] = []
    for c in [int(v) for v in args.channels.split(",")]:
        layers = layers_for(c, args.hw, rng)
        dense_macs = layers["dense-conv"].macs()
        mac_ratio = dense_macs / layers["monarch"].macs()
        x = rng.standard_normal((args.batch, args.hw * args.hw * c)).astype(np.float32)
        nets = {k: Network([Reshape((x.shape[1],), (args.hw, args.hw, c)), v]) for k, v in layers.items()}
        # numpy: the IR forward pass
        np_us = {k: median_us(lambda n=n, x=x: n.forward(x), args.seconds) for k, n in nets.items()}  # type: ignore[misc]
        # ONNX Runtime: every Monarch ONNX form
        ort_times = {k: ort_us(nets[k], x, args.seconds) for k in ("dense-conv", "dense-matmul")}
        mon = layers["monarch"]
        assert isinstance(mon, Pointwise) and isinstance(mon.inner, Monarch)
        for form in ONNX_FORMS:
            mon.inner.form = form
            ort_times[f"monarch/{form}"] = ort_us(nets["monarch"], x, args.seconds)
        for runtime, times in (("numpy", np_us), ("ort", ort_times)):
            base = min(times["dense-conv"], times["dense-matmul"])
            best_q = 0.0
            for name, us in times.items():
                speedup = base / us
                is_monarch = name.startswith("monarch")
                q = speedup / mac_ratio if is_monarch else None
                if q is not None:
                    best_q = max(best_q, q)
                print(
                    f"{runtime:<8}{c:>5}  {name:<18}{us:>10.1f}{speedup:>10.2f}"
                    f"{mac_ratio if is_monarch else 1.0:>10.1f}{q if q is not None else float('nan'):>10.3f}",
                    flush=True,
                )
            results.append(f"monarch_pointwise_quotient_c{c}_{runtime}={best_q:.3f}")
    for line in results:
        print(line)


if __name__ == "__main__":
    main()
