"""MCU kernels under QEMU mps2-an386 ``-icount``: instructions per MAC, and structured-layer speed-ups.

Each model is a single layer exported to the blob, preloaded into the emulated board's model RAM
(``-device loader``: uploading a 1 MiB blob over the emulated UART would take minutes), and run with
``infer N 1``; the firmware's SysTick count of the timed loop gives guest instructions
(ticks x 40 / 2^shift at 25 MHz). The figures include the whole inference (input copy, widening,
requantisation), not only the inner loop. **These are QEMU icount instruction counts, not Cortex-M4
cycles** (LDM/LDRD count as one instruction; real cycles are higher, see the shared cmsis-nn notes).

Rows: dense int8 (weights stored as int8) at 64, 256, 1024; at n = 1024 also 90 % unstructured
sparse (the exporter picks CSR), Monarch (sqrt(n) blocks) and butterfly, each as speed-up over
dense against its MAC ratio (1.0 = every saved MAC becomes a saved instruction).

Last lines: ``instr_per_mac_dense_int8_n256=<v>`` and ``monarch_speedup_over_mac_ratio_n1024=<v>``.
Usage: ``python benches/perf/mcu_kernels.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.ir.layers import Butterfly, Dense, Monarch
from harness.ir.layers.butterfly import random_butterfly
from harness.ir.network import Network
from harness.mcu import reference
from harness.mcu.blob import codec
from harness.mcu.build import build_firmware
from harness.mcu.count import count_instructions

MODEL_ADDR = 0x20200000  # FB_MODEL_ADDR of boards/firmware/boards/qemu-mps2-an386
SHIFT = 0


def instructions_per_inference(
    elf: Path, net: Network, rng: np.random.Generator, n_inf: int
) -> tuple[float, str]:
    x = rng.normal(size=(32, net.in_dim)).astype(np.float32)
    data = codec.export_blob(net, x)
    qm = codec.read_blob(data)
    xq = qm.quantize_input(x[:1])
    instr, got = count_instructions(
        elf, xq, qm.out_dim, reps=n_inf, preload=(data, MODEL_ADDR), icount_shift=SHIFT
    )
    if not np.array_equal(got, reference.run(qm, xq)[0]):
        raise SystemExit("firmware output differs from the NumPy reference")
    return instr, "+".join(q.name for q in qm.layers)


def main() -> None:
    rng = np.random.default_rng(0)
    elf = build_firmware("qemu-mps2-an386")
    print("QEMU mps2-an386 -icount shift=0: guest instruction counts (not Cortex-M4 cycles)")
    print(f"{'model':34s} {'storage':10s} {'MACs':>9s} {'instr/inf':>11s} {'instr/MAC':>9s}")
    per_mac: dict[int, float] = {}
    dense_instr: dict[int, float] = {}
    for n, reps in ((64, 500), (256, 100), (1024, 20)):
        net = Network([Dense(rng.normal(size=(n, n)) / np.sqrt(n), rng.normal(size=n) * 0.1)])
        ins, kind = instructions_per_inference(elf, net, rng, reps)
        dense_instr[n], per_mac[n] = ins, ins / (n * n)
        print(f"{f'dense {n}x{n} int8':34s} {kind:10s} {n * n:9d} {ins:11.0f} {per_mac[n]:9.3f}")
    n = 1024
    w = rng.normal(size=(n, n)) / np.sqrt(n)
    w[rng.random(w.shape) < 0.9] = 0
    sparse = Dense(w, rng.normal(size=n) * 0.1)
    b = int(np.sqrt(n))
    mon = Monarch(
        rng.normal(size=(b, n // b, b)) / 6, rng.normal(size=(b, b, n // b)) / 6, rng.normal(size=n) * 0.1
    )
    bfly = Butterfly(random_butterfly(n, rng), rng.normal(size=n) * 0.1)
    ratios = {}
    for name, layer, macs, reps in (
        ("sparse 90% 1024x1024", sparse, int(np.count_nonzero(w)), 20),
        (f"monarch 1024 ({b} blocks)", mon, mon.macs(), 100),
        ("butterfly 1024", bfly, bfly.macs(), 100),
    ):
        ins, kind = instructions_per_inference(elf, Network([layer]), rng, reps)
        speedup, mac_ratio = dense_instr[n] / ins, n * n / macs
        ratios[name.split()[0]] = speedup / mac_ratio
        print(
            f"{name:34s} {kind:10s} {macs:9d} {ins:11.0f} {ins / macs:9.3f}   speed-up {speedup:5.2f}x"
            f" vs MAC ratio {mac_ratio:5.1f}x -> {speedup / mac_ratio:.2f}"
        )
    print("(icount instructions, not cycles; speed-ups are instruction-count ratios on the same QEMU board)")
    print(f"instr_per_mac_dense_int8_n64={per_mac[64]:.3f}")
    print(f"instr_per_mac_dense_int8_n1024={per_mac[1024]:.3f}")
    print(f"sparse90_speedup_over_mac_ratio_n1024={ratios['sparse']:.3f}")
    print(f"butterfly_speedup_over_mac_ratio_n1024={ratios['butterfly']:.3f}")
    print(f"instr_per_mac_dense_int8_n256={per_mac[256]:.3f}")
    print(f"monarch_speedup_over_mac_ratio_n1024={ratios['monarch']:.3f}")


if __name__ == "__main__":
    main()
