"""Which core for my model: the int8 kernels on every emulated Cortex-M core, instructions per MAC.

One 256x256 int8 dense layer (65,536 MACs), and one 256-wide Monarch layer (16 blocks of 16, 8,192
MACs), are each built into each core's firmware (``make MODEL_BLOB=``:
the blob sits in flash, so the 16 KiB micro:bit runs it too), run with ``infer N 1`` under
``qemu-system-arm -M <machine> -icount shift=0``, and the firmware's tick count of the timed loop
gives guest instructions (ticks x 1e9 / tick_hz). Every core's int8 outputs are checked against the
NumPy reference before its figure is printed. The figures include the whole inference (input
widening, requantisation), not only the inner loop. **QEMU icount instructions, not cycles**: an
LDM/LDRD or a Helium (MVE) instruction counts once however many beats the core takes.

Last lines: ``instr_per_mac_dense_int8_n256_<core>=<v>`` and ``instr_per_mac_monarch_int8_n256_<core>=<v>``
for m0, m3, m4, m7, m33, m55, then ``dense_n256_m55_over_m4=<v>`` and ``monarch_n256_m55_over_m4=<v>``
(instructions, M55 / M4). The KWS DS-CNN figures of the issue need the MCU convolution runtime and are
not printed here.
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
from harness.mcu.board import load_board
from harness.mcu.build import build_firmware
from harness.mcu.protocol import DutClient
from harness.mcu.qemu import QemuDut

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


def instructions_per_inference(board: str, blob: Path, xq: np.ndarray, expect: np.ndarray) -> float:
    prof = load_board(board)
    elf = build_firmware(prof.firmware_board, model_blob=blob)
    with QemuDut(elf, machine=prof.qemu_machine, icount_shift=0) as q:
        port = q.open_serial()
        try:
            dut = DutClient(port, infer_timeout_s=600)
            dut.wait_banner()
            dut.negotiate()
            dut.command("model")  # the built-in blob was adopted at boot
            dut.bulk("db", xq.tobytes())
            dut.infer(REPS, 1)
            ticks, hz, n = dut.xstat()
            if not np.array_equal(dut.xres(len(expect)), expect):
                raise SystemExit(f"{board}: firmware output differs from the NumPy reference")
        finally:
            port.close()
    return ticks * (1e9 / hz) / n


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


if __name__ == "__main__":
    main()
