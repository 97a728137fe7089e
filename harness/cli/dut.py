"""``frugalbench dut``: build the MCU firmware and leave an emulated board running for manual use
(``start``), or check a DUT on any serial URL before a long run (``check``)."""

from __future__ import annotations

import signal
import time
from typing import Annotated

import typer
from rich.console import Console

from ..errors import ConfigError
from ..mcu.board import load_board
from ..mcu.build import build_firmware
from ..mcu.qemu import QemuDut
from ..meters import mcu_sim  # noqa: F401  (registers the mcu-sim meter for every CLI command)


def _ctrl_c_stops() -> None:
    """Make Ctrl-C (SIGINT) raise KeyboardInterrupt here, as this command promises.

    Python installs that handler only when SIGINT is not ignored at start-up; a background job
    (``nohup … &``, a CI runner) inherits an ignored SIGINT, and ``kill -INT`` would then be lost and
    QEMU left running. Called in the main thread of ``dut start`` only, never from library code.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)


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
    elf = build_firmware(prof.firmware_board, portable=portable)
    if not prof.emulated:
        raise ConfigError(
            f"board {prof.name} is real hardware: flash {elf.with_name('fw.bin')} (st-flash, openocd)"
        )
    shift = prof.icount_shift if icount_shift is None else icount_shift
    _ctrl_c_stops()
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


@dut_app.command("check")
def check(
    port: Annotated[str, typer.Argument(help="the DUT's serial URL (/dev/ttyACM0, socket://HOST:PORT...)")],
    baud: Annotated[int, typer.Option(help="the firmware's baud rate")] = 115200,
    timeout_s: Annotated[float, typer.Option(help="seconds to wait for each reply")] = 2.0,
) -> None:
    """Name, profile, extensions, baud and timestamp sanity of the DUT at PORT, in one report."""
    from ..mcu.check import check_dut

    report = check_dut(port, baud, timeout_s=timeout_s)
    for line in report.lines():
        out.print(line, markup=False, highlight=False)
    if not report.ok:
        raise typer.Exit(1)
