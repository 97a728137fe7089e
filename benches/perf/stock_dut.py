"""How long a stock-DUT accuracy pass takes: plain EEMBC hex input, ``infer 1 0``, ``m-results`` per row.

Our firmware built with ``MODEL_BLOB=`` (no extension negotiated) on QEMU, digits-sized input (64 int8
bytes, 10 outputs), measured side by side: directly on the UART (QEMU does not rate-limit it, so this
is the protocol's round trips), and behind the emulated IO manager with the DUT side paced at 9600 baud
(MLPerf Tiny's energy mode). The extension path (binary ``bulk db`` + ``xbatch``) is the comparison.

Measured here (2 shared cores, QEMU 7.2), one run:
``direct_s_per_input=0.0116 ext_batch_s_per_input=0.0028 io_manager_9600_s_per_input=0.63``
(so the 360 inputs of the digits evaluation set: ~4 s direct in hex, ~1 s with the extensions, ~3.8 min
behind the IO manager at 9600 baud, where each row's 128 hex digits and its reply cross the slow link).

Usage: ``python benches/perf/stock_dut.py``. Last line: ``io_manager_9600_s_per_input=``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from harness.emulators.iomanager import IoManagerEmulator
from harness.ir.layers.dense import Dense
from harness.ir.network import Network
from harness.mcu.blob import codec
from harness.mcu.build import build_firmware
from harness.mcu.qemu import QemuDut
from harness.targets.mcu import McuConfig, McuTarget

IN, HIDDEN, OUT = 64, 32, 10


def per_input(t: McuTarget, blob: bytes, x: np.ndarray) -> float:
    t.load_blob(blob)
    t0 = time.perf_counter()
    t.predict(x)
    return (time.perf_counter() - t0) / len(x)


def main() -> None:
    rng = np.random.default_rng(0)
    net = Network([Dense(rng.normal(size=(IN, HIDDEN)) * 0.2, np.zeros(HIDDEN), "relu"),
                   Dense(rng.normal(size=(HIDDEN, OUT)) * 0.2, np.zeros(OUT))])  # fmt: skip
    x = rng.normal(size=(200, IN)).astype(np.float32)
    blob = codec.export_blob(net, x[:32], model_id="digits")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.blob"
        path.write_bytes(blob)
        elf = build_firmware("qemu-mps2-an386", model_blob=path)
    board = "qemu-mps2-an386"
    with McuTarget(McuConfig(name="s", kind="mcu", board=board, firmware=str(elf), extensions=False)) as t:
        direct = per_input(t, blob, x)
    with McuTarget(McuConfig(name="e", kind="mcu", board=board, firmware=str(elf))) as t:
        ext = per_input(t, blob, x)
    with QemuDut(elf) as q, IoManagerEmulator(q.url, dut_baud=9600) as iom:
        cfg = McuConfig(name="i", kind="mcu", board=board, port=iom.url, io_manager=True, timeout_s=5.0)
        with McuTarget(cfg) as t:
            iom_s = per_input(t, blob, x[:10])
    print(f"direct_s_per_input={direct:.5f} ext_batch_s_per_input={ext:.6f}")
    print(f"io_manager_9600_s_per_input={iom_s:.3f}")


if __name__ == "__main__":
    main()
