"""An emulated EEMBC IO manager in front of a DUT: the MLPerf Tiny energy-mode bridge, on ``socket://``.

Host side: line commands ending ``%``. ``dut <cmd>%`` is answered ``m-dut-passthrough(<cmd>)`` +
``m-ready``, then ``<cmd>%`` goes to the DUT and each DUT reply line comes back prefixed ``[dut]: ``.
The bridge's own ``name%`` answers ``m-name-[io-manager-emulator]``; ``setbaud N%`` sets the DUT-side
baud (the real board writes it to flash and resets). The DUT side runs at ``dut_baud`` (9600 in energy
mode): bytes both ways are paced to it, as the UART would, so transfers take their real time.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

import serial

from .base import listen_socket


class IoManagerEmulator:
    """Serves one IO manager on ``socket://127.0.0.1:PORT`` in front of the DUT at ``dut_url``."""

    def __init__(self, dut_url: str, *, dut_baud: int = 9600, url: str = "socket://127.0.0.1:0") -> None:
        self.dut_url = dut_url
        self.dut_baud = dut_baud
        self._want = url
        self._halt = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self.url = ""
        self.commands: list[str] = []  # what the host sent, for tests

    def start(self) -> IoManagerEmulator:
        self._listener, self.url = listen_socket(self._want, timeout_s=0.05)
        t = threading.Thread(target=self._serve, daemon=True, name="io-manager")
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._halt.set()
        for t in self._threads:
            t.join(3)
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> IoManagerEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _pace(self, n: int) -> None:
        time.sleep(n * 10 / self.dut_baud)  # 8N1: 10 bit times per byte

    def _serve(self) -> None:
        assert self._listener is not None
        while not self._halt.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            dut = serial.serial_for_url(self.dut_url, timeout=0.05)
            lock = threading.Lock()
            pump = threading.Thread(target=self._from_dut, args=(dut, conn, lock), daemon=True)
            pump.start()
            try:
                self._from_host(conn, dut, lock)
            finally:
                with contextlib.suppress(OSError):
                    conn.close()
                dut.close()
                pump.join(2)

    def _from_host(self, conn: socket.socket, dut: Any, lock: threading.Lock) -> None:
        conn.settimeout(0.05)
        buf = bytearray()
        while not self._halt.is_set():
            try:
                data = conn.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            buf += data
            while (end := buf.find(b"%")) >= 0:
                cmd = bytes(buf[:end]).decode("ascii", "replace").strip()
                del buf[: end + 1]
                self.commands.append(cmd)
                self._command(cmd, conn, dut, lock)

    def _command(self, cmd: str, conn: socket.socket, dut: Any, lock: threading.Lock) -> None:
        def say(*lines: str) -> None:
            with lock:
                conn.sendall("".join(f"{ln}\r\n" for ln in lines).encode())

        word, _, arg = cmd.partition(" ")
        if word == "dut":
            say(f"m-dut-passthrough({arg})", "m-ready")
            data = arg.encode() + b"%"
            self._pace(len(data))
            dut.write(data)
        elif word == "name":
            say("m-name-[io-manager-emulator]", "m-ready")
        elif word == "setbaud" and arg.isdigit():
            self.dut_baud = int(arg)
            say("m-ready")
        else:
            say(f"e-[Unknown command: {cmd}]", "m-ready")

    def _from_dut(self, dut: Any, conn: socket.socket, lock: threading.Lock) -> None:
        line = bytearray()
        while not self._halt.is_set():
            try:
                chunk = dut.read(4096)
            except (serial.SerialException, OSError, TypeError, AttributeError):
                return
            if not chunk:
                continue
            self._pace(len(chunk))
            line += chunk
            while (nl := line.find(b"\n")) >= 0:
                out = b"[dut]: " + bytes(line[: nl + 1])
                del line[: nl + 1]
                try:
                    with lock:
                        conn.sendall(out)
                except OSError:
                    return
