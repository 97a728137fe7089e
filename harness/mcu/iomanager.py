"""The host side of an EEMBC IO manager (MLPerf Tiny's energy-mode topology): host → IO manager → DUT.

In energy mode the DUT's UART runs at 9600 baud behind an isolating bridge (the Arduino IO manager or
the STM32H573I-DK interface board), which the host talks to instead. Each DUT command goes as
``dut <cmd>%``; the bridge answers ``m-dut-passthrough(<cmd>)`` and ``m-ready`` itself, then forwards
the DUT's reply lines prefixed ``[dut]: `` (facts: ``reference/mlperf-tiny.md`` §2.2).
:class:`IoManagerPort` wraps the bridge's port so that :class:`~harness.mcu.protocol.DutClient` sees
the DUT's own bytes: line protocol only (no binary bulk upload through a line bridge).
"""

from __future__ import annotations

import time
from typing import Any

PREFIX = b"[dut]: "


class IoManagerPort:
    """A pyserial-like port that speaks to the DUT behind an IO manager on ``port``."""

    def __init__(self, port: Any) -> None:
        self.port = port
        self._cmd = bytearray()
        self._line = bytearray()
        self._out = bytearray()

    # -- the attributes DutClient uses -----------------------------------------------------
    @property
    def timeout(self) -> float | None:
        return self.port.timeout  # type: ignore[no-any-return]

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self.port.timeout = value

    @property
    def in_waiting(self) -> int:
        return len(self._out)

    def write(self, data: bytes) -> int:
        """Host bytes to the DUT: each ``cmd%`` goes to the bridge as ``dut cmd%``."""
        self._cmd += data
        while (end := self._cmd.find(b"%")) >= 0:
            cmd = bytes(self._cmd[:end]).strip()
            del self._cmd[: end + 1]
            self.port.write(b"dut " + cmd + b"%")
        return len(data)

    def flush(self) -> None:
        self.port.flush()

    def read(self, n: int = 1) -> bytes:
        """The DUT's reply bytes (the bridge's own lines dropped, ``[dut]: `` removed); waits up to
        ``timeout`` for a whole line."""
        deadline = time.monotonic() + (self.port.timeout or 0.0)
        while not self._out:
            chunk = self.port.read(max(1, getattr(self.port, "in_waiting", 0) or 1))
            if chunk:
                self._feed(chunk)
            elif time.monotonic() >= deadline:
                break
        data = bytes(self._out)
        self._out.clear()
        return data

    def _feed(self, chunk: bytes) -> None:
        self._line += chunk
        while (nl := self._line.find(b"\n")) >= 0:
            line = bytes(self._line[: nl + 1])
            del self._line[: nl + 1]
            if line.startswith(PREFIX):
                self._out += line[len(PREFIX) :]
            # else: the bridge's own line (m-dut-passthrough(...), its m-ready): not the DUT's

    def reset_input_buffer(self) -> None:
        self.port.reset_input_buffer()
        self._line.clear()
        self._out.clear()

    def close(self) -> None:
        self.port.close()
