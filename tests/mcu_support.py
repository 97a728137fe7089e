"""Helpers shared by tests/test_mcu_*.py: firmware builds, a QEMU DUT, random models of every layer kind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from harness.ir.layers import Dense
from harness.ir.layers.butterfly import Butterfly, random_butterfly
from harness.ir.layers.monarch import Monarch
from harness.ir.network import Network
from harness.mcu.build import build_firmware, toolchain_missing
from harness.mcu.protocol import DutClient
from harness.mcu.qemu import QemuDut, qemu_missing

MISSING = toolchain_missing() or qemu_missing()
needs_qemu = pytest.mark.skipif(MISSING is not None, reason=f"MCU toolchain/emulator: {MISSING}")


def build(board: str = "qemu-mps2-an386", portable: bool = False) -> Path:
    return build_firmware(board, portable=portable)


def open_dut(
    elf: Path, monitor: Path | None = None, machine: str = "mps2-an386"
) -> Iterator[tuple[QemuDut, DutClient]]:
    q = QemuDut(elf, monitor=monitor, machine=machine)
    port = q.open_serial()
    try:
        dut = DutClient(port, timeout_s=5.0)
        dut.wait_banner()
        dut.negotiate()
        yield q, dut
    finally:
        port.close()
        q.stop()


def _dense(
    rng: np.random.Generator, n_in: int, n_out: int, act: str | None = None, zero: float = 0.0
) -> Dense:
    w = rng.normal(size=(n_in, n_out)) / np.sqrt(n_in)
    if zero:
        w[rng.random(w.shape) < zero] = 0.0
    return Dense(w, rng.normal(size=n_out) * 0.1, act)


def _block_sparse(rng: np.random.Generator, n_in: int, n_out: int) -> Dense:
    d = _dense(rng, n_in, n_out, "relu")
    keep = rng.random((n_in // 4, n_out // 4)) < 0.3
    d.w *= np.kron(keep, np.ones((4, 4)))
    return d


def random_model(kind: str, rng: np.random.Generator) -> tuple[Network, dict[str, object]]:
    """A small random network exercising one MCU layer kind; returns (net, export options)."""
    if kind == "dense":
        return Network([_dense(rng, 23, 17, "relu"), _dense(rng, 17, 6)]), {}
    if kind == "dense-wide":
        return Network([_dense(rng, 96, 64, "relu"), _dense(rng, 64, 10)]), {"head": "softmax"}
    if kind == "csr":
        return Network([_dense(rng, 40, 30, "relu", zero=0.9), _dense(rng, 30, 7)]), {"storage": "csr"}
    if kind == "bsr4":
        return Network([_block_sparse(rng, 32, 24), _dense(rng, 24, 5)]), {
            "storage": "bsr4",
            "head": "argmax",
        }
    if kind == "monarch":
        m = Monarch(
            rng.normal(size=(4, 8, 8)) / 3, rng.normal(size=(8, 4, 4)) / 2, rng.normal(size=32) * 0.1, "relu"
        )
        return Network([m, _dense(rng, 32, 10)]), {}
    if kind == "monarch-wide":  # block sizes multiple of 16: the whole-row-block asm path
        m = Monarch(
            rng.normal(size=(16, 16, 8)) / 4,
            rng.normal(size=(8, 16, 4)) / 4,
            rng.normal(size=32) * 0.1,
            "relu",
        )
        m2 = Monarch(
            rng.normal(size=(16, 2, 16)) / 2, rng.normal(size=(16, 16, 2)) / 4, rng.normal(size=32) * 0.1
        )
        return Network([m, Dense(np.eye(32) + rng.normal(size=(32, 32)) * 0.1, np.zeros(32), "relu"), m2]), {}
    if kind == "monarch-as-dense":
        m = Monarch(rng.normal(size=(3, 5, 3)), rng.normal(size=(3, 3, 2)), rng.normal(size=6) * 0.1)
        return Network([m, _dense(rng, 6, 4)]), {}
    if kind == "butterfly":
        b = Butterfly(random_butterfly(32, rng), rng.normal(size=32) * 0.1, "relu")
        return Network([b, _dense(rng, 32, 8)]), {"head": "softmax"}
    raise ValueError(kind)


KINDS = ["dense", "dense-wide", "csr", "bsr4", "monarch", "monarch-wide", "monarch-as-dense", "butterfly"]
