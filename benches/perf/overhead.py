"""Harness overhead: per-inference p50 that the harness reports vs a bare runtime loop, side by side.

Both measure the same model on the same inputs in this process, interleaved (harness, bare, harness,
bare, ...) so that machine noise hits both alike. Last line: ``overhead_ratio=<p50 harness / p50 bare>``
(ONNX Runtime); LiteRT's ratio is printed on the line before. Goal: ≤ 1.02.

    python benches/perf/overhead.py [--rounds 7] [--window 0.5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from harness.ir.export.onnx_export import network_to_onnx_bytes
from harness.ir.export.tflite_export import network_to_tflite
from harness.ir.model import Variant
from harness.pipeline.recipes import build_recipe
from harness.targets.artefact import ArtefactFile
from harness.targets.local import CpuConfig, CpuTarget


def bare_ort(path: Path, xs: list[np.ndarray], seconds: float) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    feeds = [{name: x} for x in xs]  # built outside the timed region, as the harness does
    n = _calls(lambda f: sess.run(None, f), feeds, seconds)
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        f = feeds[i % len(feeds)]
        t0 = time.perf_counter_ns()
        sess.run(None, f)
        out[i] = time.perf_counter_ns() - t0
    return out * 1e-9


def _calls(fn, items: list, seconds: float) -> int:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    for it in items[:20]:
        fn(it)
    return max(10, int(seconds / ((time.perf_counter() - t0) / min(20, len(items)))))


def bare_litert(path: Path, xs: list[np.ndarray], seconds: float) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    idx = it.get_input_details()[0]["index"]

    def call(x: np.ndarray) -> None:
        it.set_tensor(idx, x)
        it.invoke()

    n = _calls(call, xs, seconds)
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        x = xs[i % len(xs)]
        t0 = time.perf_counter_ns()
        it.set_tensor(idx, x)
        it.invoke()
        out[i] = time.perf_counter_ns() - t0
    return out * 1e-9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--window", type=float, default=0.5)
    args = ap.parse_args()
    net, ds = build_recipe("digits_mlp", 0, {"hidden": [64], "max_iter": 100})
    x = ds.x_eval
    xs = [np.ascontiguousarray(x[i : i + 1]) for i in range(64)]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "m.onnx").write_bytes(network_to_onnx_bytes(net))
        (d / "m.tflite").write_bytes(network_to_tflite(net))
        variant = Variant("digits", "fp32", "bench", {"onnx": d / "m.onnx", "tflite": d / "m.tflite"}, {})
        ratios = {}
        for runtime, bare in (("litert", bare_litert), ("ort", bare_ort)):
            t = CpuTarget(CpuConfig(name="cpu", kind="cpu", runtime=runtime, threads=1, batch=1))
            t.open()
            t.load(variant, ArtefactFile(t.artefact, variant.files[t.artefact.value]))
            t.set_inputs(x)
            t.window(0.3)  # warm-up both paths
            bare(variant.files["onnx" if runtime == "ort" else "tflite"], xs, 0.3)
            h_p50, b_p50 = [], []
            for _ in range(args.rounds):
                h_p50.append(float(np.median(t.window(args.window).latencies_s)))
                b_p50.append(float(np.median(bare(variant.files["onnx" if runtime == "ort" else "tflite"], xs, args.window))))
            t.close()
            h, b = float(np.median(h_p50)), float(np.median(b_p50))
            ratios[runtime] = h / b
            print(f"{runtime}: harness p50 {h * 1e6:.2f} µs, bare loop p50 {b * 1e6:.2f} µs, "
                  f"ratio {h / b:.4f} (median of {args.rounds} interleaved rounds)")
    print(f"overhead_ratio_litert={ratios['litert']:.4f}")
    print(f"overhead_ratio={ratios['ort']:.4f}")


if __name__ == "__main__":
    main()
