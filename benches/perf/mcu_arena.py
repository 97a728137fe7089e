"""Our MCU memory plan against TFLite Micro's arena, on the same int8 ``.tflite`` CNNs.

For each model (our int8 exports of MLPerf Tiny's KWS DS-CNN and of the digits CNN) the file is run
by ``tflite-micro``'s Python interpreter (the ``tflite-micro`` wheel, an optional dependency: not in
frugalbench's requirements) and imported by ours (:func:`harness.mcu.blob.tflite_graph.tflite_graph`,
planned by :func:`harness.mcu.plan.plan`). TFLite Micro's recording allocator reports its arena in
two parts: the *head* (non-persistent: the planned activation tensors and per-op scratch buffers,
what our arena + scratch hold) and the *tail* (persistent: tensor structs, per-op data, the graph
state; our firmware keeps the equivalent in its static runtime state, not in the arena). Both come
from ``Interpreter.print_allocations()`` (its C++ log on stderr, captured through the file descriptor).
The outputs of both on random inputs are compared too (TFLite Micro runs its reference kernels).

Prints one ``key=value`` per line: ``<model>_ours_arena_bytes=`` (arena + scratch),
``<model>_tflm_head_bytes=``, ``<model>_tflm_total_bytes=``, ``<model>_ours_over_tflm_head=``,
``<model>_max_abs_diff_int8=``. Usage: ``python benches/perf/mcu_arena.py`` (skips with one line when
``tflite-micro`` is not installed: ``pip install tflite-micro``).
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import tempfile

import numpy as np

from harness.ir import architectures
from harness.ir.export.prepare import quantisable
from harness.ir.export.tflite_export import network_to_tflite_int8
from harness.mcu.blob.codec import graph_blob
from harness.mcu.blob.container import HEADER
from harness.mcu.blob.graph_codec import GRAPH
from harness.mcu.blob.tflite_graph import softmax_dropped, tflite_graph
from harness.mcu.graph_ref import run_graph


def _printed_by(fn) -> str:  # type: ignore[no-untyped-def]
    """What ``fn()`` writes to the process's stderr (where TFLite Micro's C++ logging goes)."""
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as f:
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            fn()
        finally:
            ctypes.CDLL(None).fflush(None)  # C stdio may buffer a redirected stream
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        return f.read().decode(errors="replace")


def tflm_arena(interp) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(head, total) bytes of TFLite Micro's arena for a loaded interpreter."""
    text = _printed_by(interp.print_allocations)
    head = re.search(r"Arena allocation head (\d+) bytes", text)
    total = re.search(r"Arena allocation total (\d+) bytes", text)
    if head is None or total is None:
        raise SystemExit(f"tflite-micro printed no arena figures:\n{text}")
    return int(head.group(1)), int(total.group(1))


def models() -> dict[str, bytes]:
    out = {}
    rng = np.random.default_rng(1)
    for name, net in (
        ("kws_dscnn", architectures.ds_cnn_kws()),
        ("digits_cnn", architectures.digits_cnn(seed=0)),
    ):
        form, act_q = quantisable(net, rng.standard_normal((64, net.in_dim)).astype(np.float32))
        out[name] = network_to_tflite_int8(form, act_q)
    return out


def main() -> None:
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        print("tflite-micro is not installed (pip install tflite-micro): nothing to compare")
        return
    rng = np.random.default_rng(0)
    print(f"{'model':12s} {'ours arena+scratch':>18s} {'TFLM head':>10s} {'TFLM total':>10s}  outputs")
    rows = []
    for name, raw in models().items():
        g = tflite_graph(raw)
        arena, scratch = GRAPH.unpack_from(graph_blob(g), HEADER.size)[:2]
        interp = runtime.Interpreter.from_bytes(raw)
        head, total = tflm_arena(interp)
        # float inputs on the int8 grid, so both QUANTIZE steps give the same integers
        t_in = g.in_tensor
        xq = rng.integers(-128, 128, size=(8, t_in.size))
        x = ((xq - t_in.zero_point) * np.float32(t_in.scale)).astype(np.float32)
        assert np.array_equal(g.quantize_input(x), xq.astype(np.int8))
        ours = g.dequantize_output(run_graph(g, g.quantize_input(x)).reshape(len(x), -1))
        theirs = []
        for row in x:
            interp.set_input(row.reshape(interp.get_input_details(0)["shape"]), 0)
            interp.invoke()
            theirs.append(np.asarray(interp.get_output(0), np.float32).reshape(-1))
        t = np.stack(theirs)
        if softmax_dropped(g):  # we return the scores before the SOFTMAX: compare the class order
            diff, what = float((ours.argmax(1) != t.argmax(1)).mean()), "argmax mismatch rate"
        else:
            scale = g.out_tensor.scale
            steps = np.rint(np.abs(ours - t) / scale)
            diff, what = (
                float(steps.max()),
                f"max |diff| in output steps ({int((steps > 0).sum())} of {steps.size} differ)",
            )
        rows.append((name, arena + scratch, head, total, diff, what))
        print(f"{name:12s} {arena + scratch:18d} {head:10d} {total:10d}  {what} {diff:g}")
    for name, ours_b, head, total, diff, what in rows:
        print(f"{name}_ours_arena_bytes={ours_b}")
        print(f"{name}_tflm_head_bytes={head}")
        print(f"{name}_tflm_total_bytes={total}")
        print(f"{name}_ours_over_tflm_head={ours_b / head:.3f}")
        key = "argmax_mismatch" if what.startswith("argmax") else "max_abs_diff_int8"
        print(f"{name}_{key}={diff:g}")


if __name__ == "__main__":
    main()
