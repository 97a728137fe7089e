"""RDTech UM24C / UM25C / UM34C driver: poll ``0xF0`` → 130-byte frame, 9600 baud, ≈2 Hz refresh.

Usually reached over Bluetooth SPP (``rfcomm bind 0 <addr>`` → ``/dev/rfcomm0``). No markers: windows
are aligned on the host clock (each reading is stamped with the midpoint of its request/reply).
Power is integrated host-side from V·I (the meter's own energy counter ticks in 1 mWh = 3.6 J).
Every frame is validated: length, model ID, the ``0xFFF1`` end marker (UM24C/25C) or the UM34C XOR
checksum, and the power field must agree with V·I; a bad frame is rejected and counted. (A UM24C/25C
frame has no checksum: a bit flip in the low byte of V, I or P stays within the 1 mW power resolution
and cannot be detected.)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

import serial

from ..errors import ConfigError, MeterError, ProtocolError, StateError
from ._common import MeterProtocolError, SerialMeterConfig, drain_stale, open_serial
from .base import METERS, Meter, MeterInfo, Trace
from .poller import Poller

FRAME_LEN = 130
MODEL_IDS = {0x0963: "UM24C", 0x09C9: "UM25C", 0x0D4C: "UM34C"}
UM34C_CSUM_POSITIONS = (1, 3, 7, 9, 15, 17, 19, 23, 31, 39, 41, 45, 49, 53, 55, 57, 59, 63, 67, 69, 73, 79,
                        83, 89, 97, 99, 109, 111, 113, 119, 121, 127)  # fmt: skip


@dataclass(frozen=True)
class UmReading:
    """One decoded frame."""

    model: str
    volts: float
    amps: float
    power_field_w: float
    temp_c: int

    @property
    def watts(self) -> float:
        return self.volts * self.amps


def parse_frame(frame: bytes) -> UmReading:
    """Decode and validate one 130-byte frame (pure). Raises ProtocolError saying what is wrong."""
    if len(frame) != FRAME_LEN:
        raise MeterProtocolError(f"UM frame is {len(frame)} bytes, expected {FRAME_LEN}")
    mid, v_raw, i_raw, p_raw, temp = struct.unpack_from(">HHHIH", frame, 0)
    model = MODEL_IDS.get(mid)
    if model is None:
        raise MeterProtocolError(
            f"UM frame has unknown model ID 0x{mid:04x} (wrong baud rate or not a UM meter?)"
        )
    if model == "UM34C":
        csum = 0
        for p in UM34C_CSUM_POSITIONS:
            csum ^= frame[p]
        if csum != frame[129]:
            raise MeterProtocolError(
                f"UM34C checksum mismatch (0x{csum:02x} != 0x{frame[129]:02x}): corrupted frame"
            )
    elif struct.unpack_from(">H", frame, 128)[0] != 0xFFF1:
        raise MeterProtocolError(f"{model} frame does not end with 0xFFF1: corrupted or misaligned frame")
    fine = model == "UM25C"
    v_lsb, i_lsb = (0.001, 0.0001) if fine else (0.01, 0.001)
    volts, amps, p_field = v_raw * v_lsb, i_raw * i_lsb, p_raw * 0.001
    tol = 0.0015 + volts * i_lsb + amps * v_lsb
    if abs(volts * amps - p_field) > tol:
        raise MeterProtocolError(
            f"{model} frame inconsistent: V·I = {volts * amps:.4f} W but power field {p_field:.3f} W (corrupted)"
        )
    return UmReading(model=model, volts=volts, amps=amps, power_field_w=p_field, temp_c=temp)


class UmConfig(SerialMeterConfig):
    """``[meter] kind = "um34c"`` (also UM24C/UM25C: the model is read from each frame)."""

    baud: int = 9600
    poll_hz: float = 2.0
    model: Literal["auto", "UM24C", "UM25C", "UM34C"] = "auto"
    max_failures: int = 5


@METERS.register("um34c")
class Um34c(Meter):
    """RDTech UM24C/UM25C/UM34C USB inline meter on a serial/RFCOMM port."""

    name = "um34c"
    Config = UmConfig
    config: UmConfig

    def __init__(self, config: UmConfig) -> None:
        super().__init__(config)
        if config.poll_hz <= 0 or config.poll_hz > 10:
            raise ConfigError(f"poll_hz {config.poll_hz} must be in (0, 10]; the meter refreshes at ≈2 Hz")
        self.port: serial.SerialBase | None = None
        self.model = ""
        self.stale_bytes = 0
        self.poller = Poller(lambda: self.poll().watts, config.poll_hz, config.max_failures, "poll")

    @classmethod
    def availability(cls) -> str | None:
        return (
            "UM24C/25C/34C meters talk Bluetooth SPP and have no USB VID:PID to find: pair the meter "
            "(PIN 1234), `rfcomm bind 0 <addr>`, then set [meter] url = '/dev/rfcomm0'"
        )

    def poll(self) -> UmReading:
        """One request/reply. Raises ProtocolError (bad frame) or MeterError (no reply)."""
        if self.port is None:
            raise StateError("UM meter is not open; call open() first")
        self.port.write(b"\xf0")
        frame = self.port.read(FRAME_LEN)
        if len(frame) < FRAME_LEN:
            if frame:
                drain_stale(self.port, 0.02, 0.2)
            raise MeterError(
                f"UM meter: reply of {len(frame)}/{FRAME_LEN} bytes within {self.config.timeout_s} s"
            )
        try:
            return parse_frame(frame)
        except ProtocolError:
            drain_stale(self.port, 0.02, 0.2)  # resynchronise on the next request
            raise

    def open(self) -> None:
        if not self.config.url:
            raise MeterError(self.availability() or "no URL")
        self.port = open_serial(self.config.url, self.config.baud, self.config.timeout_s, "UM meter")
        self.stale_bytes = drain_stale(self.port)
        errors = []
        for _ in range(3):
            try:
                self.model = self.poll().model
                break
            except (ProtocolError, MeterError) as exc:
                errors.append(str(exc))
        else:
            self.port.close()
            self.port = None
            raise MeterProtocolError(
                f"no valid UM frame from {self.config.url} after 3 polls ({errors[-1]}); check the baud rate is "
                f"{self.config.baud} (9600 for UM meters), that the URL is the meter's RFCOMM port and that it is on"
            )
        if self.config.model != "auto" and self.config.model != self.model:
            raise MeterError(f"configured model {self.config.model} but the meter says {self.model}")

    def start(self) -> None:
        if self.port is None:
            raise StateError("UM meter is not open; call open() first")
        if self.poller.lost:
            raise MeterError(f"UM meter link was lost ({self.poller.lost}); close() and open() it again")
        self.poller.start()

    def stop(self) -> Trace:
        if not self.poller.running:
            raise StateError("UM meter stop() without start()")
        self.poller.stop(self.config.timeout_s + 2)
        return self.poller.power_trace({"stale_bytes": self.stale_bytes, "meter": self.model})

    def info(self) -> MeterInfo:
        fine = self.model == "UM25C"
        return MeterInfo(
            energy_class="simulated" if self.config.simulated else "external",
            model=f"RDTech {self.model or 'UM'}" + (" (emulator)" if self.config.simulated else ""),
            boundary=self.config.boundary or "board USB supply (inline meter)",
            rate_hz=self.config.poll_hz,
            accuracy=("1 mV / 0.1 mA resolution" if fine else "10 mV / 1 mA resolution")
            + "; ≈2 Hz refresh: use windows ≥ 60 s",
            marker_method="host-clock",
        )

    def close(self) -> None:
        self.poller.stop()
        if self.port is not None:
            self.port.close()
            self.port = None
