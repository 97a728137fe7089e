"""Dense vs Monarch vs butterfly (and low-rank at the Monarch budget), side by side in one run.

For n = 256, 1024, 4096 and batch 1 and 64, one square layer of each kind is exported with the
project's exporters and timed single-threaded in ONNX Runtime (every Monarch ONNX form) and in
LiteRT (XNNPACK on, fp32 and int8). For each structured layer the script prints the measured
speed-up over the dense layer in the same runtime and batch, the FLOP (MAC) ratio, and their
quotient (1.0 = the runtime turns every saved FLOP into time).

Output: a table, then ``key=value`` lines. The last line is
``monarch_speedup_over_flop_ratio_n1024=<value>``: the quotient for Monarch at n=1024, batch 1,
fp32, in the faster of the two runtimes (the per-runtime values are printed just above it).

Usage: ``python benches/perf/monarch.py [--sizes 256,1024] [--seconds 0.3]``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import onnxruntime as ort
from ai_edge_litert.interpreter import Interpreter

from harness.ir.export.onnx_export import network_to_onnx_bytes
from harness.ir.export.tflite_export import network_to_tflite, network_to_tflite_int8
from harness.ir.layers import Butterfly, Dense, Layer, LowRank, Monarch
from harness.ir.layers.butterfly import random_butterfly
from harness.ir.layers.monarch import ONNX_FORMS
from harness.ir.network import Network
from harness.ir.quant import calibrate
from harness.ir.train import calibrate_inner


def _median_us(fn, seconds: float) -> float:  # type: ignore[no-untyped-def]
    fn()
    fn()
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e6)


def ort_us(blob: bytes, x: np.ndarray, seconds: float) -> float:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"])
    feed = {"input": x}
    return _median_us(lambda: sess.run(None, feed), seconds)


def litert_us(blob: bytes, x: np.ndarray, seconds: float) -> float:
    it = Interpreter(model_content=blob, num_threads=1)
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], list(x.shape))
    it.allocate_tensors()
    it.set_tensor(inp["index"], x)
    return _median_us(it.invoke, seconds)


def layers_for(n: int, rng: np.random.Generator) -> dict[str, Layer]:
    b = int(round(np.sqrt(n)))
    r = (2 * n * b) // (2 * n)  # low-rank with the Monarch weight budget: r = sqrt(n)
    return {
        "dense": Dense(rng.standard_normal((n, n)).astype(np.float32) / np.sqrt(n), np.zeros(n)),
        "monarch": Monarch(
            rng.standard_normal((b, b, b)) / np.sqrt(b),
            rng.standard_normal((b, b, b)) / np.sqrt(b),
            np.zeros(n),
        ),
        "butterfly": Butterfly(random_butterfly(n, rng), np.zeros(n)),
        "butterfly-mf": Butterfly(random_butterfly(n, rng), np.zeros(n), form="monarch"),
        "lowrank": LowRank(
            rng.standard_normal((n, r)) / np.sqrt(n), rng.standard_normal((r, n)) / np.sqrt(r), np.zeros(n)
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="256,1024,4096")
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--seconds", type=float, default=0.3, help="timing budget per configuration")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    batches = [int(s) for s in args.batches.split(",")]
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    print(
        f"onnxruntime {ort.__version__}; 1 thread; median µs; speed-up vs dense in the same runtime and batch"
    )
    print(
        f"{'runtime':<14}{'n':>6}{'batch':>6}  {'layer':<18}{'µs':>10}{'speed-up':>10}{'FLOP ratio':>11}{'quotient':>10}"
    )
    for n in sizes:
        layers = layers_for(n, rng)
        nets = {k: Network([v]) for k, v in layers.items()}
        calib = rng.standard_normal((64, n)).astype(np.float32)
        for net in nets.values():
            calibrate_inner(net, calib)
        files: dict[tuple[str, str], bytes] = {}
        for kind, net in nets.items():
            if kind == "monarch":
                for form in ONNX_FORMS:
                    net.layers[0].form = form  # type: ignore[attr-defined]
                    files[("ort", f"monarch/{form}")] = network_to_onnx_bytes(net)
                net.layers[0].form = "matmul"  # type: ignore[attr-defined]
            else:
                files[("ort", kind)] = network_to_onnx_bytes(net)
            files[("litert", kind)] = network_to_tflite(net)
            if kind in ("dense", "monarch", "lowrank", "butterfly-mf"):
                files[("litert-int8", kind)] = network_to_tflite_int8(net, calibrate(net, calib))
        for batch in batches:
            x = rng.standard_normal((batch, n)).astype(np.float32)
            for runtime in ("ort", "litert", "litert-int8"):
                timer = ort_us if runtime == "ort" else litert_us
                dense_us = timer(files[(runtime, "dense")], x, args.seconds)
                for (rt, name), blob in files.items():
                    if rt != runtime:
                        continue
                    us = dense_us if name == "dense" else timer(blob, x, args.seconds)
                    kind = name.split("/")[0]  # FLOP ratio of what the graph computes
                    speedup = dense_us / us
                    flop_ratio = layers["dense"].macs() / layers[kind].macs()
                    row = dict(
                        runtime=runtime,
                        n=n,
                        batch=batch,
                        layer=name,
                        us=us,
                        speedup=speedup,
                        flop_ratio=flop_ratio,
                        quotient=speedup / flop_ratio,
                    )
                    rows.append(row)
                    print(
                        f"{runtime:<14}{n:>6}{batch:>6}  {name:<18}{us:>10.1f}{speedup:>10.2f}"
                        f"{flop_ratio:>11.1f}{speedup / flop_ratio:>10.3f}",
                        flush=True,
                    )

    def best(runtime: str, n: int, batch: int, prefix: str) -> float | None:
        vals = [
            float(r["quotient"])
            for r in rows
            if r["runtime"] == runtime
            and r["n"] == n
            and r["batch"] == batch
            and (r["layer"] == prefix or str(r["layer"]).startswith(prefix + "/"))
        ]
        return max(vals) if vals else None

    for n in sizes:
        for batch in batches:
            for runtime in ("ort", "litert", "litert-int8"):
                for kind in ("monarch", "butterfly", "butterfly-mf", "lowrank"):
                    q = best(runtime, n, batch, kind)
                    if q is not None:
                        key = f"{kind}_speedup_over_flop_ratio_n{n}_b{batch}_{runtime}".replace("-", "_")
                        print(f"{key}={q:.3f}")
    final = [
        q for q in (best("ort", 1024, 1, "monarch"), best("litert", 1024, 1, "monarch")) if q is not None
    ]
    if final:
        print(f"monarch_speedup_over_flop_ratio_n1024={max(final):.3f}")


if __name__ == "__main__":
    main()
