"""``frugalbench dut``: build the MCU firmware and leave an emulated board running for manual use."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console

from ..errors import ConfigError
from ..mcu.board import load_board
from ..mcu.build import build_firmware
from ..mcu.qemu import QemuDut
from ..meters import mcu_sim  # noqa: F401  (registers the mcu-sim meter for every CLI command)

dut_app = typer.Typer(
    help="Build the MCU firmware and leave an emulated board running for manual use.",
    add_completion=False,
    no_args_is_help=True,
)
out = Console()


@dut_app.command("start")
def start(
    board: Annotated[str, typer.Option(help="board profile (boards/<name>.toml)")] = "qemu-mps2-an386",
    port: Annotated[int, typer.Option(help="localhost TCP port of the DUT's UART")] = 5555,
    icount_shift: Annotated[
        int | None, typer.Option(help="QEMU -icount shift (default: the profile's)")
    ] = None,
    portable: Annotated[bool, typer.Option(help="firmware with the portable C kernels (no DSP)")] = False,
) -> None:
    """Build the firmware, start QEMU with the UART on 127.0.0.1:PORT and wait for Ctrl-C."""
    prof = load_board(board)
    if not prof.emulated:
        raise ConfigError(
            f"board {prof.name} is real hardware: flash boards/firmware/build/{prof.firmware_board}/fw.bin"
        )
    elf = build_firmware(prof.firmware_board, portable=portable)
    shift = prof.icount_shift if icount_shift is None else icount_shift
    with QemuDut(elf, machine=prof.qemu_machine, icount_shift=shift, port=port) as q:
        out.print(f"[bold]{prof.label}[/] running {elf} (-icount shift={shift})")
        out.print(f"serial: {q.url}  (the board boots when the first client connects)")
        out.print(f"try:    python -m serial.tools.miniterm {q.url}   then type  name%  or  help%")
        out.print("Ctrl-C stops QEMU.")
        try:
            while q.alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            out.print("stopping QEMU")
    if not q.alive():
        out.print("QEMU stopped.")
