"""Binary bulk upload (frugalbench extension) vs EEMBC hex ``db`` upload, same input, same QEMU DUT.

Both transfers go through the real firmware on QEMU mps2-an386 over a localhost TCP serial port
(``nodelay=on``). Wire efficiency = payload bytes / all bytes on the wire in both directions during
the upload (commands, hex digits, CRC, replies, ``m-ready`` lines). EEMBC hex sends 31-byte chunks,
each acknowledged by ``m-ready``, as the MLCommons runner does. Times are host wall-clock medians of
3 uploads; QEMU does not emulate the baud rate (its UART moves one byte per main-loop turn), so the
speed-up is for this emulated link, not for a 115200-baud cable (there the byte counts decide).

Last lines: ``upload_speedup_binary_over_hex=<v>`` then ``upload_wire_efficiency=<v>`` (binary, 3072 B).
Usage: ``python benches/perf/serial_upload.py``.
"""

from __future__ import annotations

import os
import statistics
import time

from harness.mcu.build import build_firmware
from harness.mcu.protocol import DutClient
from harness.mcu.qemu import QemuDut

SIZES = (490, 3072, 16384)  # KWS, IC and a small batch of inputs


def upload(dut: DutClient, data: bytes, binary: bool) -> tuple[float, int, int]:
    ext = dut.ext
    if not binary:
        dut.ext = None  # what the host does with a DUT that lacks the extension
    tx, rx = dut.tx_bytes, dut.rx_bytes
    t = time.perf_counter()
    dut.upload_input(data)
    dt = time.perf_counter() - t
    dut.ext = ext
    got = dut.command("db print").lines if len(data) <= 64 else None
    assert got is None or got
    return dt, dut.tx_bytes - tx, dut.rx_bytes - rx


def main() -> None:
    elf = build_firmware("qemu-mps2-an386")
    print("QEMU mps2-an386, UART on socket:// (nodelay=on); medians of 3 uploads")
    print(f"{'bytes':>6s} {'mode':6s} {'tx':>7s} {'rx':>6s} {'efficiency':>10s} {'time s':>8s} {'KiB/s':>7s}")
    results: dict[tuple[int, bool], tuple[float, float]] = {}
    with QemuDut(elf) as q:
        port = q.open_serial()
        dut = DutClient(port, timeout_s=10)
        dut.wait_banner()
        if dut.negotiate() is None:
            raise SystemExit("the firmware did not offer the bulk extension")
        for size in SIZES:
            data = os.urandom(size)
            for binary in (True, False):
                runs = [upload(dut, data, binary) for _ in range(3)]
                dt = statistics.median(r[0] for r in runs)
                tx, rx = runs[0][1], runs[0][2]
                eff = size / (tx + rx)
                results[(size, binary)] = (dt, eff)
                mode = "binary" if binary else "hex"
                print(f"{size:6d} {mode:6s} {tx:7d} {rx:6d} {eff:10.3f} {dt:8.3f} {size / dt / 1024:7.1f}")
        port.close()
    for size in SIZES:
        print(f"speed-up binary/hex at {size} B: {results[(size, False)][0] / results[(size, True)][0]:.2f}x")
    print(f"upload_wire_efficiency_hex={results[(3072, False)][1]:.3f}")
    print(f"upload_speedup_binary_over_hex={results[(3072, False)][0] / results[(3072, True)][0]:.2f}")
    print(f"upload_wire_efficiency={results[(3072, True)][1]:.3f}")


if __name__ == "__main__":
    main()
