"""Imported int8 CNNs: NumPy interpreter speed, and how close LiteRT's default path is to its reference.

The four convolutional architectures (digits CNN, MNIST-1D CNN, KWS DS-CNN, ResNet-8) are exported by
our int8 TFLite exporter (untrained, calibrated on 64 Gaussian rows) and imported with
:func:`harness.mcu.blob.tflite_graph.tflite_graph`. For each, on ``--rows`` uniformly random int8 inputs
(every input value, saturating activations too):

- ``graph_ref_<net>_batch<rows>_s``: wall seconds of :func:`harness.mcu.graph_ref.run_graph` for the
  batch (median of 3; the goal for the KWS DS-CNN at 100 rows is well under a second);
- ``ref_vs_numpy_lsb_<net>``: largest |difference| between LiteRT's reference kernels (BUILTIN_REF)
  and the NumPy interpreter on the output (0 = bit-exact);
- ``default_vs_ref_lsb_<net>``: the same between LiteRT's default path (the XNNPACK delegate) and its
  reference kernels: the default path rounds its requantisation differently, so it is not bit-exact.

Usage: ``python benches/perf/graph_import.py [--rows 100]``. Last line: ``kws_dscnn_graph_ref_batch<rows>_s=``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np

from harness.ir import architectures
from harness.ir.export.prepare import quantisable
from harness.ir.export.tflite_export import network_to_tflite_int8
from harness.mcu.blob.tflite_graph import tflite_graph
from harness.mcu.graph_ref import run_graph
from harness.pipeline.mcu_bench import litert_reference_int8

NETS = {
    "digits_cnn": lambda: architectures.digits_cnn(seed=0),
    "mnist1d_cnn": lambda: architectures.mnist1d_cnn(seed=0, length=64),
    "kws_dscnn": architectures.ds_cnn_kws,
    "resnet8": architectures.resnet8,
}


def _default_path(raw: bytes, name: str, x: np.ndarray) -> np.ndarray:
    """The output tensor ``name`` on LiteRT's default op resolver (XNNPACK delegate), float input ``x``."""
    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = Interpreter(model_content=raw, experimental_preserve_all_tensors=True)
    d = it.get_input_details()[0]
    it.resize_tensor_input(d["index"], list(x.shape))
    it.allocate_tensors()
    it.set_tensor(d["index"], x)
    it.invoke()
    index = {t["name"]: t["index"] for t in it.get_tensor_details()}
    return np.asarray(it.get_tensor(index[name])).reshape(len(x), -1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    last = ""
    for key, make in NETS.items():
        net = make()
        form, act_q = quantisable(net, rng.standard_normal((64, net.in_dim)).astype(np.float32))
        raw = network_to_tflite_int8(form, act_q)
        g = tflite_graph(raw)
        xq = rng.integers(-128, 128, (args.rows, g.in_tensor.size)).astype(np.int8)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            ours = run_graph(g, xq).reshape(len(xq), -1)
            times.append(time.perf_counter() - t0)
        ref = litert_reference_int8(raw, g, xq)
        t = g.in_tensor
        xf = ((xq.astype(np.float32) - np.float32(t.zero_point)) * np.float32(t.scale)).astype(np.float32)
        default = _default_path(raw, g.out_tensor.name, xf)
        print(f"graph_ref_{key}_batch{args.rows}_s={statistics.median(times):.4f}")
        print(f"ref_vs_numpy_lsb_{key}={int(np.abs(ref.astype(int) - ours.astype(int)).max())}")
        print(f"default_vs_ref_lsb_{key}={int(np.abs(default.astype(int) - ref.astype(int)).max())}")
        if key == "kws_dscnn":
            last = f"kws_dscnn_graph_ref_batch{args.rows}_s={statistics.median(times):.4f}"
    print(last)


if __name__ == "__main__":
    main()
