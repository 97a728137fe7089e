"""Nordic PPK2 emulator: single-byte opcodes with arguments, metadata text, 100 kS/s 4-byte frames.

Frame (little-endian uint32): ADC bits 0–13, range 14–16, counter 18–23 (6 bits, +1 per sample),
logic D0–D7 in bits 24–31 (D0 follows the profile's marker windows). Host writes coalesce
(``0d 0c e4 06`` arrives in one read), so commands are parsed by opcode length.
Calibration sent in the metadata: ``GS=0, GI=1, UG=1, S=0, I=0`` and per-range offsets ``O``, so
``I = (4·ADC − O)·1.8/163840/R`` and the emulator picks the lowest range that does not clip.
Faults: dropped samples (counter jumps; D-lines keep their state), a corrupted counter byte in one
frame, a disconnect, stale bytes, a pty that fills up (samples dropped, never a stalled writer).
"""

from __future__ import annotations

import math

import numpy as np

from .base import EMULATORS, MeterEmulator

RATE_HZ = 100_000
R = [1031.64, 101.65, 10.15, 0.94, 0.043]
O = [112.0, 75.0, 64.0, 60.0, 55.0]
ARG_LEN = {0x06: 0, 0x07: 0, 0x19: 0, 0x20: 0, 0x15: 0, 0x16: 0, 0x0C: 1, 0x0D: 2, 0x11: 1, 0x08: 1,
           0x25: 5, 0x01: 2, 0x02: 1, 0x03: 2, 0x04: 2, 0x05: 2, 0x0A: 0, 0x0E: 1, 0x0F: 1, 0x12: 1}  # fmt: skip


#: the metadata line that marks our emulator (no real PPK2 prints an ``EMU`` key)
EMULATOR_KEY = "EMU: frugalbench emulator"


def metadata_text(vdd_mv: int, *, emulator: bool = True) -> str:
    """The metadata block a PPK2 prints for ``0x19`` (``Key: value`` lines, then ``END``); ``emulator``
    adds the ``EMU`` line that identifies this emulator."""
    lines = ["Calibrated: 0"]
    lines += [f"R{i}: {r}" for i, r in enumerate(R)]
    lines += [f"GS{i}: 0" for i in range(5)] + [f"GI{i}: 1" for i in range(5)]
    lines += [f"O{i}: {o}" for i, o in enumerate(O)]
    lines += [f"S{i}: 0" for i in range(5)] + [f"I{i}: 0" for i in range(5)]
    lines += [f"UG{i}: 1" for i in range(5)]
    lines += [f"VDD: {vdd_mv}", "HW: 9173", "mode: 2", "IA: 56"]
    lines += [EMULATOR_KEY] if emulator else []
    lines += ["END"]
    return "\n".join(lines) + "\n"


def encode_frames(amps: np.ndarray, index0: np.ndarray, logic: np.ndarray) -> np.ndarray:
    """uint32 frames for currents ``amps`` (A) at sample indices ``index0`` with logic bytes."""
    adc = np.zeros(len(amps), dtype=np.int64)
    rng = np.full(len(amps), 4, dtype=np.int64)
    chosen = np.zeros(len(amps), dtype=bool)
    for r in range(5):
        a = np.rint((amps * R[r] * 163840 / 1.8 + O[r]) / 4).astype(np.int64)
        ok = (a <= 16000) & ~chosen
        adc[ok] = a[ok]
        rng[ok] = r
        chosen |= ok
    adc = np.clip(adc, 0, 0x3FFF)
    counter = index0.astype(np.int64) & 0x3F
    words = adc | (rng << 14) | (counter << 18) | (logic.astype(np.int64) << 24)
    return words.astype("<u4")


@EMULATORS.register("ppk2")
class Ppk2Emulator(MeterEmulator):
    """A PPK2 measurement port."""

    name = "ppk2"
    baud = 115200
    baud_matters = False  # USB CDC

    def reset(self) -> None:
        super().reset()
        self.pending = bytearray()
        self.vdd_mv = 3000
        self.mode = 2
        self.dut_on = False
        self.catching_up = False

    def on_bytes(self, data: bytes) -> None:
        self.pending += data
        while self.pending:
            op = self.pending[0]
            n = ARG_LEN.get(op, 0)
            if len(self.pending) < 1 + n:
                return
            args = bytes(self.pending[1 : 1 + n])
            del self.pending[: 1 + n]
            self.commands.append(bytes([op]) + args)
            self._op(op, args)

    def _op(self, op: int, args: bytes) -> None:
        if op == 0x19:
            self.send(metadata_text(self.vdd_mv, emulator=not self.impersonate).encode())
        elif op == 0x06:
            self.start_stream()
        elif op in (0x07, 0x20):
            if self.state.streaming:  # send every sample measured before the stop
                target = int(self.vnow() * RATE_HZ)
                self.catching_up = True
                while self.state.streaming and self.state.next_index < target and not self.disconnect_now:
                    self.poll()
                self.catching_up = False
            self.state.streaming = False
        elif op == 0x0D:
            self.vdd_mv = args[0] << 8 | args[1]
        elif op == 0x11:
            self.mode = args[0]
        elif op == 0x0C:
            self.dut_on = bool(args[0])

    def poll(self) -> None:
        if not self.state.streaming:
            return
        i0, i1 = self.due(RATE_HZ, 50_000 if self.catching_up else 4000)
        if i1 <= i0:
            return
        if self.check_disconnect(i0 / RATE_HZ):
            return
        idx = np.arange(i0, i1)
        volts = self.vdd_mv / 1000 if self.mode == 2 else self.profile.voltage_v
        amps = self.profile.mean_power(i0, i1, RATE_HZ) / volts
        logic = self.profile.marker(idx / RATE_HZ)
        words = encode_frames(amps, idx, logic)
        f = self.faults
        if f.drop_at_s is not None and f.drop_n:
            d0 = math.ceil(f.drop_at_s * RATE_HZ)
            keep = (idx < d0) | (idx >= d0 + f.drop_n)
            words, idx = words[keep], idx[keep]
        raw = bytearray(words.tobytes())
        if f.corrupt_at_s is not None and not self.state.corrupted:
            hit = np.nonzero(idx >= f.corrupt_at_s * RATE_HZ)[0]
            if len(hit):
                raw[4 * int(hit[0]) + 2] ^= 0xA8  # counter bits of one frame
                self.state.corrupted = True
        self.send(bytes(raw))
