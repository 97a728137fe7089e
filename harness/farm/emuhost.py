"""An emulated farm host: N QEMU boards running our firmware, exported by one ``labgrid-exporter``.

``python -m harness.farm.emuhost --coordinator HOST:PORT --name exp1 --boards 2 --workdir DIR`` builds
the firmware, starts the boards (UART on a TCP port, ``nodelay=on``, ``-icount`` of the board
profile), writes an exporter YAML with one ``NetworkSerialPort`` group per board, creates and tags a
place per board (``<name>-<i>``, tag ``board=<profile>``), then *becomes* the exporter (``exec``). The
boards die with it (``PR_SET_PDEATHSIG``), so killing the exporter process takes the whole "host"
down, as when a real farm host loses power. Used for dry runs of a farm and by the farm tests.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import TargetError
from ..mcu.board import load_board
from ..mcu.build import build_firmware
from ..mcu.qemu import QemuDut, qemu_missing
from .errors import CoordinatorUnreachable
from .lgsession import LabgridSession, labgrid_tool


def _die_with_parent() -> None:  # in the child between fork and exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _free_port(bind: str) -> int:
    with socket.socket() as s:
        s.bind((bind, 0))
        return int(s.getsockname()[1])


def _wait_port(bind: str, port: int, proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """Wait until QEMU accepts; this first connection boots the board (``wait=on``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TargetError(f"QEMU exited with {proc.returncode} before opening {bind}:{port}")
        try:
            with socket.create_connection((bind, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TargetError(f"QEMU did not open {bind}:{port} within {timeout_s} s")


def start_boards(
    board: str, n: int, workdir: Path, bind: str = "127.0.0.1"
) -> list[tuple[int, subprocess.Popen[bytes]]]:
    """Start ``n`` QEMU boards of profile ``board``; returns (port, process) pairs."""
    why = qemu_missing()
    if why:
        raise TargetError(why)
    prof = load_board(board)
    if not prof.emulated:
        raise TargetError(f"board {board} is real hardware; an emulated host runs emulated boards only")
    elf = build_firmware(prof.firmware_board)
    out = []
    for i in range(n):
        port = _free_port(bind)
        argv = QemuDut(elf, machine=prof.qemu_machine, icount_shift=prof.icount_shift).argv(port)
        argv = [a.replace("tcp:127.0.0.1:", f"tcp:{bind}:") for a in argv]
        log = open(workdir / f"qemu-{i}.log", "wb")  # noqa: SIM115 - inherited by the child
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=_die_with_parent
        )
        _wait_port(bind, port, proc)
        out.append((port, proc))
    return out


def exports_yaml(name: str, ports: list[int], bind: str) -> str:
    lines = []
    for i, port in enumerate(ports):
        lines += [
            f"{name}-b{i}:",
            "  NetworkSerialPort:",
            f"    host: {bind}",
            f"    port: {port}",
            "    speed: 115200",
            "    protocol: raw",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.farm.emuhost", description=__doc__.split("\n")[0])
    ap.add_argument("--coordinator", required=True)
    ap.add_argument("--name", required=True, help="exporter name (also the place name prefix)")
    ap.add_argument("--boards", type=int, default=1)
    ap.add_argument("--board", default="qemu-mps2-an386", help="board profile")
    ap.add_argument("--bind", default="127.0.0.1", help="address the boards' UARTs listen on")
    ap.add_argument("--workdir", type=Path, default=Path("."))
    ap.add_argument("--no-places", action="store_true", help="do not create/tag places")
    a = ap.parse_args(argv)
    a.workdir.mkdir(parents=True, exist_ok=True)
    boards = start_boards(a.board, a.boards, a.workdir, a.bind)
    ports = [p for p, _ in boards]
    cfg = a.workdir / f"{a.name}.yaml"
    cfg.write_text(exports_yaml(a.name, ports, a.bind), encoding="utf-8")
    if not a.no_places:
        with LabgridSession(a.coordinator) as s:
            for i in range(len(ports)):
                s.create_place(
                    f"{a.name}-{i}", [f"{a.name}/{a.name}-b{i}/NetworkSerialPort"], {"board": a.board}
                )
    exporter = labgrid_tool("labgrid-exporter")
    print(f"{a.name}: {len(ports)} board(s) on {a.bind} ports {ports}; exec {exporter}", flush=True)
    os.execv(exporter, [exporter, "-c", a.coordinator, "-n", a.name, "--hostname", a.bind, str(cfg)])


@dataclass
class LocalCoordinator:
    """A ``labgrid-coordinator`` on a free localhost port (tests, benchmarks, dry runs); ``address``."""

    workdir: Path
    bind: str = "127.0.0.1"
    address: str = ""
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> LocalCoordinator:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.address = f"{self.bind}:{_free_port(self.bind)}"
        with open(self.workdir / "coordinator.log", "wb") as log:  # places.yaml goes to workdir too
            self.proc = subprocess.Popen(
                [labgrid_tool("labgrid-coordinator"), "-l", self.address],
                cwd=self.workdir,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                LabgridSession(self.address, timeout_s=5).close()
                return self
            except CoordinatorUnreachable:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class EmuHost:
    """Handle on an emulated host process (for tests and benchmarks): start, wait until online, kill."""

    coordinator: str
    name: str
    boards: int
    workdir: Path
    board: str = "qemu-mps2-an386"
    bind: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> EmuHost:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / f"{self.name}.log", "wb")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness.farm.emuhost",
                "--coordinator",
                self.coordinator,
                "--name",
                self.name,
                "--boards",
                str(self.boards),
                "--board",
                self.board,
                "--bind",
                self.bind,
                "--workdir",
                str(self.workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        with LabgridSession(self.coordinator) as s:
            deadline = time.monotonic() + timeout_s
            while True:
                snap = s.snapshot()
                online = [r for r in snap.resources if r.exporter == self.name and r.avail]
                if len(online) >= self.boards:
                    return self
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise TargetError(f"emulated host {self.name} did not come online: {self.log()[-1500:]}")
                time.sleep(0.1)

    @property
    def places(self) -> list[str]:
        return [f"{self.name}-{i}" for i in range(self.boards)]

    def log(self) -> str:
        p = self.workdir / f"{self.name}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def kill(self) -> None:
        """SIGKILL the exporter: its boards die with it (a host losing power)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


if __name__ == "__main__":
    sys.exit(main())
