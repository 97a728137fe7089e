"""Instructions per inference of the model a firmware adopts at boot, counted under QEMU ``-icount``.

For the kernel benchmarks: the blob is either preloaded into the board's model area by QEMU's
loader or built into the firmware (``MODEL_BLOB=``), so no upload is timed or needed. With
``-icount shift=S`` one guest instruction is ``2**S`` ns of virtual time, so the DUT's tick count
over ``reps`` inferences gives an exact instruction count (not cycles of any real core).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from .protocol import DutClient
from .qemu import QemuDut


def count_instructions(
    elf: Path,
    x: np.ndarray,
    n_out: int,
    *,
    reps: int,
    machine: str = "mps2-an386",
    preload: tuple[bytes, int] | None = None,
    icount_shift: int = 0,
) -> tuple[float, np.ndarray]:
    """(guest instructions per inference, the int8 outputs) of ``reps`` inferences on int8 input ``x``.

    ``preload``: (blob bytes, model-area address) for QEMU's loader; without it the firmware must have
    the model built in."""
    with tempfile.TemporaryDirectory() as d:
        loads: list[tuple[Path, int]] = []
        if preload is not None:
            path = Path(d) / "m.blob"
            path.write_bytes(preload[0])
            loads.append((path, preload[1]))
        with QemuDut(elf, machine=machine, icount_shift=icount_shift, preload=loads) as q:
            port = q.open_serial()
            try:
                dut = DutClient(port, infer_timeout_s=600)
                dut.wait_banner()
                dut.negotiate()
                dut.command("model")  # the preloaded or built-in blob was adopted at boot
                dut.bulk("db", np.asarray(x, np.int8).tobytes())
                dut.infer(reps, 1)
                ticks, hz, n = dut.xstat()
                out = dut.xres(n_out)
            finally:
                port.close()
    return ticks * (1e9 / hz) / (1 << icount_shift) / n, out
