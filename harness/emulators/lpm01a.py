"""ST X-NUCLEO-LPM01A (PowerShield) emulator: ASCII commands with ``ack``, ``ascii_dec`` stream.

Replies follow the exact bytes asserted by public drivers (``\\r\\nPowerShield > ack htc\\r\\n\\r\\n``).
As on the board, a query's answer is on its ack line (hosts written against real boards read it
there): ``ack volt get 3300-03``, ``ack temp degc 28.0``, ``ack version 1.0.6``, ``ack status ok``,
``ack powershield PowerShield present, board ID <id>``. The emulator identifies itself in that board
ID (``FRUGALBENCH-EMULATOR``; ``impersonate=True`` sends a hex unique ID like a real board's).
``stop`` ends the stream with ``ack stop`` then ``PowerShield > Acquisition completed`` and nothing
more, so the next command's reply is its ack (the free-text summary exists only in ``bin_hexa``,
which is not emulated).
The stream is one ``MMMM±EE`` line per sample, a ``TimeStamp: SSSs MMMms, buff NN%`` line every
virtual second and an ``event NN ris`` line at every edge of the profile's marker windows (the DUT's
D7 pin), placed before the first sample that starts at or after the edge.
Faults: dropped samples (not sent; ``buff`` reads 100 % at the next time stamp, as on overflow),
a corrupted digit, a disconnect, stale bytes, a wrong baud (the board runs at 3,686,400 baud).
"""

from __future__ import annotations

import math

from .base import EMULATORS, MeterEmulator

_FREQS = {
    "100k": 100_000, "50k": 50_000, "20k": 20_000, "10k": 10_000, "5k": 5000, "2k": 2000, "1k": 1000,
    "500": 500, "200": 200, "100": 100, "50": 50, "20": 20, "10": 10, "5": 5, "2": 2, "1": 1,
}  # fmt: skip


def encode_value(v: float) -> str:
    """``MMMM±EE`` (mantissa × 10^EE) with a 4-digit mantissa, as the firmware prints."""
    if not math.isfinite(v) or v <= 0:
        return "0000+00"
    e = math.floor(math.log10(v)) - 3
    m = round(v / 10.0**e)
    if m >= 10000:
        m //= 10
        e += 1
    return f"{m:04d}{e:+03d}"


def parse_volt(arg: str) -> float | None:
    """``3300m`` → 3.3; None if malformed or out of 1.8..3.3 V."""
    try:
        v = float(arg[:-1]) / 1000 if arg.endswith("m") else float(arg)
    except ValueError:
        return None
    return v if 1.8 - 1e-9 <= v <= 3.3 + 1e-9 else None


@EMULATORS.register("lpm01a")
class Lpm01aEmulator(MeterEmulator):
    """A PowerShield board on a pty or socket."""

    name = "lpm01a"
    baud = 3_686_400
    baud_matters = False  # USB CDC; Faults(wrong_baud=True) emulates it behind a UART bridge
    prompt = "PowerShield > "
    firmware = "1.0.6"
    board_id = "FRUGALBENCH-EMULATOR"  # what marks the emulator: a real board sends its hex unique ID
    real_board_id = "0035003A3438510B32383838"  # a real-looking 96-bit STM32 unique ID (impersonate=True)
    temp_c = 28.0

    def reset(self) -> None:
        super().reset()
        self.line = bytearray()
        self.freq = 100
        self.output = "current"
        self.volt = 3.3
        self.fmt = "ascii_dec"
        self.controlled = False
        self.event_no = 0
        self.edges_sent = 0
        self.buff_over = False

    # -- commands ----------------------------------------------------------------------------
    def _ack(self, cmd: str, payload: str = "") -> None:
        """``ack <cmd>``, with a query's answer on the same line."""
        text = f"{cmd} {payload}" if payload else cmd
        self.send(f"\r\n{self.prompt}ack {text}\r\n\r\n".encode())

    def _error(self, cmd: str, detail: str) -> None:
        self.send(f"\r\n{self.prompt}error: {cmd}\r\nError detail: {detail}\r\n".encode())

    def on_bytes(self, data: bytes) -> None:
        self.line += data
        while True:
            nl = self.line.find(b"\n")
            if nl < 0:
                break
            raw = bytes(self.line[:nl]).rstrip(b"\r")
            del self.line[: nl + 1]
            self.commands.append(raw)
            self._command(raw.decode("ascii", "replace").strip())

    def _command(self, cmd: str) -> None:
        if not cmd:
            return
        word, _, arg = cmd.partition(" ")
        if self.state.streaming and word != "stop":
            self._error(cmd, "acquisition running, send stop first")
            return
        if word == "echo":
            self.send(f"\r\n{self.prompt}echo {arg}\r\n".encode())
        elif word == "htc":
            self.controlled = True
            self._ack(cmd)
        elif word == "hrc":
            self.controlled = False
            self._ack(cmd)
        elif word == "powershield":
            uid = self.real_board_id if self.impersonate else self.board_id
            self._ack(cmd, f"PowerShield present, board ID {uid}")
        elif word == "version":
            self._ack(cmd, self.firmware)
        elif word == "status":
            self._ack(cmd, "ok")
        elif not self.controlled:
            self._error(cmd, "host has not taken control, send htc first")
        elif word == "freq" and arg in _FREQS:
            self.freq = _FREQS[arg]
            self._ack(cmd)
        elif word == "output" and arg in ("current", "energy"):
            self.output = arg
            self._ack(cmd)
        elif word == "format" and arg in ("ascii_dec", "bin_hexa"):
            if arg == "bin_hexa":
                self._error(cmd, "bin_hexa is not emulated, use ascii_dec")
                return
            self.fmt = arg
            self._ack(cmd)
        elif word == "volt" and arg == "get":
            self._ack(cmd, encode_value(self.volt))
        elif word == "temp" and arg in ("degc", "degf"):
            t = self.temp_c if arg == "degc" else self.temp_c * 9 / 5 + 32
            self._ack(cmd, f"{t:.1f}")
        elif word == "volt":
            v = parse_volt(arg)
            if v is None:
                self._error(cmd, "voltage must be 1800m..3300m")
                return
            self.volt = v
            self._ack(cmd)
        elif word in ("lcd", "pwr", "acqtime", "trigdelay", "trigsrc", "eventsrc", "acqmode", "funcmode",
                      "pwrend", "currthres", "targrst", "calib"):  # fmt: skip
            self._ack(cmd)
        elif word == "start":
            self._ack(cmd)
            self.event_no = 0
            self.edges_sent = 0
            self.start_stream()
        elif word == "stop":
            self.state.streaming = False
            self._ack(cmd)
            self.send(f"{self.prompt}Acquisition completed\r\n".encode())
        else:
            self._error(cmd, f"unknown command or bad argument {cmd!r}")

    # -- stream ------------------------------------------------------------------------------
    def poll(self) -> None:
        if not self.state.streaming:
            return
        r = self.freq
        i0, i1 = self.due(r, max(64, int(r * self.speed * 0.05)))
        if i1 <= i0:
            return
        if self.check_disconnect(i0 / r):
            return
        p = self.profile.mean_power(i0, i1, r)
        values = p / r if self.output == "energy" else p / self.volt
        f = self.faults
        drop = (-1, -1)
        if f.drop_at_s is not None and f.drop_n:
            d0 = math.ceil(f.drop_at_s * r)
            drop = (d0, d0 + f.drop_n)
        edges = self.profile.edges()
        out: list[str] = []
        for k, i in enumerate(range(i0, i1)):
            if i and i % r == 0:
                s = i // r
                buff = 100 if self.buff_over else 0
                self.buff_over = False
                out.append(f"TimeStamp: {s:03d}s 000ms, buff {buff:02d}%\r\n")
            while self.edges_sent < len(edges) and math.ceil(edges[self.edges_sent] * r - 1e-9) <= i:
                out.append(f"event {self.event_no % 100:02d} ris\r\n")
                self.event_no += 1
                self.edges_sent += 1
            if drop[0] <= i < drop[1]:
                self.buff_over = True
                continue
            token = encode_value(float(values[k]))
            if f.corrupt_at_s is not None and i >= f.corrupt_at_s * r and not self.state.corrupted:
                token = token[:1] + "x" + token[2:]
                self.state.corrupted = True
            out.append(token + "\r\n")
        self.send("".join(out).encode())
