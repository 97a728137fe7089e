"""Which core for my model: the int8 kernels on every emulated Cortex-M core, instructions per MAC.

One 256x256 int8 dense layer (65,536 MACs), and one 256-wide Monarch layer (16 blocks of 16, 8,192
MACs), are each built into each core's firmware (``make MODEL_BLOB=``:
the blob sits in flash, so the 16 KiB micro:bit runs it too), run with ``infer N 1`` under
``qemu-system-arm -M <machine> -icount shift=0``, and the firmware's tick count of the timed loop
gives guest instructions (ticks x 1e9 / tick_hz). Every core's int8 outputs are checked against the
NumPy reference before its figure is printed. The figures include the whole inference (input
widening, requantisation), not only the inner loop. **QEMU icount instructions, not cycles**: an
LDM/LDRD or a Helium (MVE) instruction counts once however many beats the core takes.

MLPerf Tiny's KWS DS-CNN (49x10x1 input, 64 channels, random int8 weights from
:func:`harness.mcu.random_graph.kws_dscnn`) runs the same way as an operator graph (blob version 2) on
every core it fits (RAM and flash from :mod:`harness.mcu.footprint`); a core it does not fit gets a
``# kws_dscnn does not fit <board>: ...`` comment line with the sizes instead of a figure. The M55
runs the Helium (MVE) convolution kernels, the M4/M7/M33 the SXTB16/SMLAD ones, the M3 portable C.

Last lines: ``instr_per_mac_dense_int8_n256_<core>=<v>`` and ``instr_per_mac_monarch_int8_n256_<core>=<v>``
for m0, m3, m4, m7, m33, m55, then ``dense_n256_m55_over_m4=<v>`` and ``monarch_n256_m55_over_m4=<v>``
(instructions, M55 / M4), then ``kws_dscnn_instructions_<core>=<v>`` (per inference) for each core it
fits, ``m55_over_m4_kws=<v>`` (goal <= 1/3) and, last, ``kws_dscnn_m55_ram_bytes=<v>``.
Usage: ``python benches/perf/mcu_cores.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from harness.ir.layers import Dense, Monarch
from harness.ir.network import Network
from harness.mcu import reference
from harness.mcu.blob import codec
from harness.mcu.blob.graph_codec import write_graph_blob
from harness.mcu.board import load_board
from harness.mcu.build import build_firmware
from harness.mcu.count import count_instructions
from harness.mcu.footprint import ModelTooLarge, check_fits, footprint
from harness.mcu.graph_ref import run_graph
from harness.mcu.plan import plan
from harness.mcu.random_graph import kws_dscnn

CORES = {
    "m0": "qemu-microbit",
    "m3": "qemu-mps2-an385",
    "m4": "qemu-mps2-an386",
    "m7": "qemu-mps2-an500",
    "m33": "qemu-mps2-an505",
    "m55": "qemu-mps3-an547",
}
N = 256
REPS = 20


def instructions_per_inference(
    board: str, blob: Path, xq: np.ndarray, expect: np.ndarray, reps: int = REPS
) -> float:
    prof = load_board(board)
    elf = build_firmware(prof.firmware_board, model_blob=blob)
    instr, got = count_instructions(elf, xq, len(expect), reps=reps, machine=prof.qemu_machine)
    if not np.array_equal(got, expect):
        raise SystemExit(f"{board}: firmware output differs from the NumPy reference")
    return instr


def per_mac(name: str, net: Network, macs: int, rng: np.random.Generator) -> dict[str, float]:
    x = rng.normal(size=(32, net.in_dim)).astype(np.float32)
    data = codec.export_blob(net, x)
    qm = codec.read_blob(data)
    xq = qm.quantize_input(x[:1])
    expect = reference.run(qm, xq)[0]
    out: dict[str, float] = {}
    print(
        f"{name} ({macs} MACs, {len(data)} blob bytes), QEMU -icount shift=0: guest instructions, not cycles"
    )
    print(f"{'core':5s} {'board':18s} {'instr/inf':>10s} {'instr/MAC':>9s}")
    with tempfile.TemporaryDirectory() as d:
        blob = Path(d) / "model.blob"
        blob.write_bytes(data)
        for core, board in CORES.items():
            ins = instructions_per_inference(board, blob, xq, expect)
            out[core] = ins / macs
            print(f"{core:5s} {board:18s} {ins:10.0f} {out[core]:9.3f}", flush=True)
    return out


def kws(rng: np.random.Generator) -> tuple[dict[str, float], dict[str, int | None]]:
    """KWS DS-CNN instructions per inference and RAM bytes on every core it fits."""
    g = kws_dscnn(rng)
    plan(g)
    data = write_graph_blob(g)
    xq = rng.integers(-128, 128, size=(1, g.in_tensor.size)).astype(np.int8)
    expect = run_graph(g, xq).reshape(-1)
    ins: dict[str, float] = {}
    ram: dict[str, int | None] = {}
    print(f"kws_dscnn ({len(data)} blob bytes), QEMU -icount shift=0: guest instructions, not cycles")
    print(f"{'core':5s} {'board':18s} {'instr/inf':>10s} {'RAM B':>8s} {'flash B':>8s}")
    with tempfile.TemporaryDirectory() as d:
        blob = Path(d) / "kws.blob"
        blob.write_bytes(data)
        for core, board in CORES.items():
            prof = load_board(board)
            fp = footprint(g, prof)
            try:
                check_fits(fp, prof)
            except ModelTooLarge as e:
                print(f"# kws_dscnn does not fit {board} ({core}): {e}", flush=True)
                continue
            ins[core] = instructions_per_inference(board, blob, xq, expect, reps=2)
            ram[core] = fp.ram_bytes
            print(
                f"{core:5s} {board:18s} {ins[core]:10.0f} {fp.ram_bytes!s:>8s} {fp.flash_bytes!s:>8s}",
                flush=True,
            )
    return ins, ram


def main() -> None:
    rng = np.random.default_rng(0)
    dense = Network([Dense(rng.normal(size=(N, N)) / np.sqrt(N), rng.normal(size=N) * 0.1)])
    b = int(np.sqrt(N))
    mon = Monarch(
        rng.normal(size=(b, N // b, b)) / 6, rng.normal(size=(b, b, N // b)) / 6, rng.normal(size=N) * 0.1
    )
    d = per_mac(f"dense {N}x{N} int8", dense, N * N, rng)
    m = per_mac(f"monarch {N} int8 ({b} blocks)", Network([mon]), mon.macs(), rng)
    for core, v in d.items():
        print(f"instr_per_mac_dense_int8_n256_{core}={v:.4f}")
    for core, v in m.items():
        print(f"instr_per_mac_monarch_int8_n256_{core}={v:.4f}")
    print(f"dense_n256_m55_over_m4={d['m55'] / d['m4']:.4f}")
    print(f"monarch_n256_m55_over_m4={m['m55'] / m['m4']:.4f}")
    k, ram = kws(rng)
    for core, v in k.items():
        print(f"kws_dscnn_instructions_{core}={v:.0f}")
    print(f"m55_over_m4_kws={k['m55'] / k['m4']:.4f}")
    print(f"kws_dscnn_m55_ram_bytes={ram['m55']}")


if __name__ == "__main__":
    main()
