"""MCU convolution kernels under QEMU mps2-an386 ``-icount shift=0``: instructions per MAC and whole CNNs.

Each workload is an int8 operator graph with random weights (:mod:`harness.mcu.random_graph`),
planned, packed as a version 2 blob, preloaded into the emulated board's model RAM and run with
``infer N 1``; the firmware's SysTick count of the timed loop gives guest instructions (1 ns of
virtual time per instruction at shift 0). Figures cover the whole inference (input copy, im2col,
requantisation, every op), not only inner loops, and each output is checked bit for bit against the
NumPy reference (:func:`harness.mcu.graph_ref.run_graph`). **These are QEMU icount instruction
counts, not Cortex-M4 cycles** (LDM/LDRD count as one instruction; see the shared cmsis-nn notes).

Anchors (same QEMU, CMSIS-NN, shared/reference/cmsis-nn.md): conv 3x3 16x32x32 2.33 instr/MAC,
depthwise 3x3 64x25x5 7.79, pointwise 64x25x5 2.09, KWS DS-CNN 7.70e6 instructions (X-CUBE-AI on a
real NUCLEO-L4R5ZI: 5.21e6 cycles, an upper bound on its instructions), ResNet-8 29.84e6.
Goals: <= 1.9, <= 4.0, <= 1.6, <= 5.21e6, <= 0.8 x 29.84e6.

Also KWS conv1 and head rows (their own layer graphs), and the pruned and factored pointwise
convolutions of the compressed CNN variants at the same 64x25x5 shape: 90 %-sparse (unstructured,
``pwconv_csr``) and Monarch (8 blocks per factor, ``pwconv_monarch``), each as a speed-up over the dense
1x1 convolution and as a fraction of its MAC ratio (dense MACs / its MACs; 1.0 would mean every
saved MAC saved its share of instructions); the same at 256 channels on 5x5 pixels (``pw256_*``,
Monarch 16 blocks). At 64 channels the per-output work (requantisation, the row loop, Monarch's int16
intermediate) outweighs the few MACs each output keeps, so Monarch is slower than our dense kernel
there; at 256 channels both factored forms win. Last lines: ``pw_sparse90_speedup=``,
``pw_sparse90_speedup_of_mac_ratio=``, ``pw_monarch_speedup=``, ``pw_monarch_speedup_of_mac_ratio=``, then ``instr_per_mac_conv3x3_16x32x32=``, ``instr_per_mac_dw3x3_64x25x5=``,
``instr_per_mac_pw1x1_64x25x5=``, ``resnet8_instructions=``, ``kws_dscnn_instructions=``.
Usage: ``python benches/perf/mcu_conv.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.mcu.blob.graph import QGraph
from harness.mcu.blob.graph_codec import write_graph_blob
from harness.mcu.build import build_firmware
from harness.mcu.count import count_instructions
from harness.mcu.graph_ref import run_graph
from harness.mcu.plan import plan
from harness.mcu.random_graph import GraphBuilder, kws_dscnn, resnet8

MODEL_ADDR = 0x20200000  # FB_MODEL_ADDR of boards/firmware/boards/qemu-mps2-an386
SHIFT = 0


def macs(g: QGraph) -> int:
    """Nominal multiply-accumulates of the convolutions and dense layers (padding taps included)."""
    total = 0
    for op in g.ops:
        out = g.tensors[op.output]
        if op.kind == "conv2d":
            total += out.size * int(np.prod(op.params["w"].shape[1:]))
        elif op.kind == "dwconv2d":
            total += out.size * int(np.prod(op.params["w"].shape[:2]))
        elif op.kind == "dense":
            total += int(op.params["w"].size)
        elif op.kind == "pwconv_csr":  # the nonzeros only
            total += out.size // out.shape[-1] * int(np.count_nonzero(op.params["w"]))
        elif op.kind == "pwconv_monarch":
            total += out.size // out.shape[-1] * int(op.params["w1"].size + op.params["w2"].size)
    return total


def instructions(elf: Path, g: QGraph, rng: np.random.Generator, n_inf: int) -> float:
    """Guest instructions per inference of ``g`` (checked against the NumPy reference)."""
    plan(g)
    x = rng.integers(-128, 128, size=(1, g.in_tensor.size)).astype(np.int8)
    instr, got = count_instructions(
        elf, x, g.out_tensor.size, reps=n_inf, preload=(write_graph_blob(g), MODEL_ADDR), icount_shift=SHIFT
    )
    if not np.array_equal(got, run_graph(g, x).reshape(-1)):
        raise SystemExit("firmware output differs from the NumPy reference")
    return instr


def layer(rng: np.random.Generator, shape: tuple[int, int, int], kind: str) -> QGraph:
    """One layer on a random input of ``shape`` (Monarch: sqrt(C) blocks per factor, as the compressor picks)."""
    b = GraphBuilder(rng, shape, relu_zp=-128)  # ReLU outputs at zero point -128, as TFLite converts them
    if kind == "kws_conv1":
        y = b.conv(b.input, 64, (10, 4), (2, 2), True, "relu")
    elif kind == "kws_head":
        y = b.pool(b.input, "avgpool", shape[:2], (1, 1), False)
        y = b.dense(b.reshape(y, (shape[2],)), 12)
    elif kind == "conv3x3":
        y = b.conv(b.input, shape[2], (3, 3), (1, 1), True, "relu")
    elif kind == "dw3x3":
        y = b.conv(b.input, 0, (3, 3), (1, 1), True, "relu", depthwise=True)
    elif kind == "pw_sparse90":
        y = b.pw_sparse(b.input, shape[2], 0.1, "relu")
    elif kind == "pw_monarch":
        nb = int(round(np.sqrt(shape[2])))
        y = b.pw_monarch(b.input, shape[2], nb, nb, "relu")
    else:
        y = b.conv(b.input, shape[2], (1, 1), (1, 1), False, "relu")
    return b.graph(y)


def main() -> None:
    rng = np.random.default_rng(0)
    elf = build_firmware("qemu-mps2-an386")
    print("QEMU mps2-an386 -icount shift=0: guest instruction counts (not Cortex-M4 cycles)")
    print(f"{'workload':28s} {'MACs':>10s} {'instr/inf':>12s} {'instr/MAC':>9s}  anchor (CMSIS-NN) / goal")
    per_mac = {}
    for name, shape, kind, reps, anchor, goal in (
        ("conv3x3_16x32x32", (32, 32, 16), "conv3x3", 3, 2.33, 1.9),
        ("dw3x3_64x25x5", (25, 5, 64), "dw3x3", 50, 7.79, 4.0),
        ("pw1x1_64x25x5", (25, 5, 64), "pw1x1", 10, 2.09, 1.6),
    ):
        g = layer(rng, shape, kind)
        ins, m = instructions(elf, g, rng, reps), macs(g)
        per_mac[name] = ins / m
        print(f"{name:28s} {m:10d} {ins:12.0f} {ins / m:9.3f}  {anchor} / <= {goal}")
    for name, shape, kind in (("kws conv1 10x4/2 1->64", (49, 10, 1), "kws_conv1"),
                              ("kws avgpool + fc 64->12", (25, 5, 64), "kws_head")):  # fmt: skip
        g = layer(rng, shape, kind)
        ins, m = instructions(elf, g, rng, 5), macs(g)
        print(f"{name:28s} {m:10d} {ins:12.0f} {ins / m:9.3f}")
    pw = {}
    for shape, tag in (((25, 5, 64), "64x25x5"), ((5, 5, 256), "256x5x5")):
        for kind in ("pw1x1", "pw_sparse90", "pw_monarch"):
            name = f"{kind}_{tag}"
            g = layer(rng, shape, kind)
            pw[name] = (instructions(elf, g, rng, 10 if tag == "64x25x5" else 3), macs(g))
            print(f"{name:28s} {pw[name][1]:10d} {pw[name][0]:12.0f} {pw[name][0] / pw[name][1]:9.3f}")
    whole = {}
    for name, g, reps, anchor, goal in (
        ("resnet8", resnet8(rng), 1, 29.84e6, 0.8 * 29.84e6),
        ("kws_dscnn", kws_dscnn(rng), 2, 7.70e6, 5.21e6),
    ):
        ins, m = instructions(elf, g, rng, reps), macs(g)
        whole[name] = ins
        print(f"{name:28s} {m:10d} {ins:12.0f} {ins / m:9.3f}  {anchor:.3g} / <= {goal:.3g} instructions")
    print("(icount instructions, not cycles; outputs bit-exact with the NumPy reference)")
    for name, v in per_mac.items():
        print(f"instr_per_mac_{name}={v:.3f}")
    for tag, prefix in (("256x5x5", "pw256_"), ("64x25x5", "pw_")):  # the issue's 64-channel keys last
        dense_ins, dense_macs = pw[f"pw1x1_{tag}"]
        for key in ("sparse90", "monarch"):
            ins, m = pw[f"pw_{key}_{tag}"]
            print(f"{prefix}{key}_mac_ratio={dense_macs / m:.2f}")
            print(f"{prefix}{key}_speedup={dense_ins / ins:.2f}")
            print(f"{prefix}{key}_speedup_of_mac_ratio={dense_ins / ins / (dense_macs / m):.3f}")
    print(f"resnet8_instructions={whole['resnet8']:.0f}")
    print(f"kws_dscnn_instructions={whole['kws_dscnn']:.0f}")


if __name__ == "__main__":
    main()
