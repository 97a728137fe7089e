"""RDTech UM24C / UM25C / UM34C emulator: ``0xF0`` → one 130-byte big-endian frame at 9600 baud.

Frame map (sigrok ``rdtech-um``, ``sebastianha/um34c``): model ID at 0, voltage at 2, current at 4,
power (u32, mW) at 6, temperatures at 10/12, group at 14, group mAh/mWh at 16–95, D+/D− at 96/98,
charge mode at 100, record mAh/mWh at 102/106, threshold at 110, record time at 112, active at 116,
timeout/brightness at 118/120, load resistance (u32, 0.1 Ω) at 122, screen at 126, then ``0xFFF1``
(UM24C/25C) or, on the UM34C, the XOR of 32 fixed bytes in the last byte.
The emulator identifies itself in the "current screen" field (offset 126): it sends
``EMULATOR_SCREEN`` (``0x4642``, "FB"), a screen a real meter never shows (its screens are 0–5);
``impersonate=True`` sends screen 0 like the hardware.
The meter refreshes its reading at ``update_hz`` (≈2 Hz): the value is the mean power of the last
refresh period. Faults: a stall (no reply) at ``drop_at_s`` for ``stall_s``, a corrupted voltage
byte, a disconnect, stale bytes, a wrong baud.
"""

from __future__ import annotations

import struct

import numpy as np

from .base import EMULATORS, MeterEmulator

MODELS = {"um24c": 0x0963, "um25c": 0x09C9, "um34c": 0x0D4C}
EMULATOR_SCREEN = 0x4642  # "FB": out of a real meter's screen range 0..5
UM34C_CSUM_POSITIONS = (1, 3, 7, 9, 15, 17, 19, 23, 31, 39, 41, 45, 49, 53, 55, 57, 59, 63, 67, 69, 73, 79,
                        83, 89, 97, 99, 109, 111, 113, 119, 121, 127)  # fmt: skip


def build_frame(model: str, volts: float, amps: float, temp_c: int = 25, screen: int = 0) -> bytes:
    """A 130-byte reply for ``model`` showing ``volts``/``amps`` on screen ``screen``."""
    mid = MODELS[model]
    fine = model == "um25c"
    v_raw = round(volts / (0.001 if fine else 0.01))
    i_raw = round(amps / (0.0001 if fine else 0.001))
    v_q = v_raw * (0.001 if fine else 0.01)
    i_q = i_raw * (0.0001 if fine else 0.001)
    p_raw = round(v_q * i_q * 1000)
    buf = bytearray(130)
    struct.pack_into(">HHHIHHH", buf, 0, mid, v_raw, i_raw, p_raw, temp_c, temp_c * 9 // 5 + 32, 0)
    struct.pack_into(">HH", buf, 96, 60, 60)  # D+ / D- 0.60 V
    load = round(v_q / i_q * 10) if i_q > 0 else 99999
    struct.pack_into(">I", buf, 122, min(load, 0xFFFFFFFF))
    struct.pack_into(">H", buf, 126, screen)
    if model == "um34c":
        csum = 0
        for p in UM34C_CSUM_POSITIONS:
            csum ^= buf[p]
        buf[129] = csum
    else:
        struct.pack_into(">H", buf, 128, 0xFFF1)
    return bytes(buf)


@EMULATORS.register("um34c")
class UmEmulator(MeterEmulator):
    """An RDTech UM meter behind a Bluetooth SPP port (``/dev/rfcommN``)."""

    name = "um34c"
    baud = 9600

    def __init__(self, *args, model: str = "um34c", update_hz: float = 2.0, **kwargs) -> None:  # noqa: ANN002, ANN003
        if model not in MODELS:
            raise ValueError(f"unknown UM model {model!r}; use one of {sorted(MODELS)}")
        self.model = model
        self.update_hz = update_hz
        super().__init__(*args, **kwargs)

    def reset(self) -> None:
        super().reset()
        self.requests = 0  # the virtual clock (and fault times) start at the 2nd poll: after the host's probe

    def reading(self) -> tuple[float, float]:
        """(volts, amps) shown now: mean power of the last refresh period."""
        t = self.vnow()
        k = np.floor(t * self.update_hz)
        t1 = k / self.update_hz
        t0 = max(t1 - 1 / self.update_hz, 0.0)
        if t1 <= t0:
            p = float(self.profile.level(np.asarray([0]))[0])
        else:
            p = self.profile.energy(t0, t1) / (t1 - t0)
        v = self.profile.voltage_v
        return v, p / v

    def on_bytes(self, data: bytes) -> None:
        f = self.faults
        for b in data:
            self.commands.append(bytes([b]))
            if b != 0xF0:
                continue  # F1–F4 screen/clear, A0–A9 groups, B0–E9 settings: no reply
            self.requests += 1
            if self.requests == 2:
                self.start_stream()
            t = self.vnow()
            if self.check_disconnect(t):
                return
            if f.drop_at_s is not None and f.drop_at_s <= t < f.drop_at_s + f.stall_s:
                continue  # the Bluetooth link stalls: no reply
            screen = 0 if self.impersonate else EMULATOR_SCREEN
            frame = bytearray(build_frame(self.model, *self.reading(), screen=screen))
            if f.corrupt_at_s is not None and t >= f.corrupt_at_s and not self.state.corrupted:
                frame[3] ^= 0x40  # a flipped voltage bit
                self.state.corrupted = True
            self.send(bytes(frame))
