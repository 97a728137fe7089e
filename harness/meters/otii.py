"""Qoitech Otii Arc/Ace driver: JSON-over-TCP to the Otii app or headless server (port 1905).

The connection is opened with ``serial.serial_for_url('socket://HOST:1905')`` like every other meter,
so the same code reaches the real server and our emulator. Flow: banner → ``otii_get_devices`` →
project (active or new) → ``arc_enable_channel mp`` (power) and ``i1`` (GPI1 marker pin) →
``project_start_recording`` … ``project_stop_recording`` → ``recording_get_channel_data`` in chunks.
Replies are matched on ``trans_id``; stale lines and ``progress`` messages are skipped. A sample count
short of the recording's length means lost samples; any undecodable reply invalidates the window.
(Otii 3 also needs a licence reserved in the app; that is outside this protocol.)
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import numpy as np
import serial

from ..errors import MeterError, ProtocolError, StateError
from ._common import (
    MarkerChoice,
    MarkerWindows,
    MeterProtocolError,
    SerialMeterConfig,
    drain_stale,
    measurement_class,
    open_serial,
    read_some,
    sampled_trace,
)
from .base import METERS, Marker, Meter, MeterInfo, Trace

CHUNK = 40_000


def parse_message(line: bytes) -> dict[str, Any]:
    """One JSON message line → dict (pure). Raises ProtocolError if it is not a JSON object."""
    try:
        msg = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MeterProtocolError(f"Otii sent a line that is not JSON ({line[:40]!r}): {exc}") from exc
    if not isinstance(msg, dict) or "type" not in msg:
        raise MeterProtocolError(f"Otii sent JSON without a 'type' field: {line[:60]!r}")
    return msg


class OtiiConfig(SerialMeterConfig):
    """``[meter] kind = "otii"``; ``url = "socket://127.0.0.1:1905"``."""

    url: str = "socket://127.0.0.1:1905"
    device: str = ""  # device_id or name; empty: the only device
    voltage_v: float | None = None  # set the Arc's main output voltage (None: leave it)
    marker_channel: str = "i1"
    marker_method: MarkerChoice = "auto"
    timeout_s: float = 5.0


@METERS.register("otii")
class Otii(MarkerWindows, Meter):
    """Otii Arc/Ace through the Otii TCP server."""

    name = "otii"
    Config = OtiiConfig
    config: OtiiConfig

    def __init__(self, config: OtiiConfig) -> None:
        super().__init__(config)
        self.port: serial.SerialBase | None = None
        self._rx = bytearray()
        self._tid = 0
        self._session = uuid.uuid4().hex[:8]
        self.banner: dict[str, Any] = {}
        self.device_id = ""
        self.project_id = -1
        self.stale_lines = 0
        self._t0 = 0.0
        self._t_started = 0.0

    @classmethod
    def availability(cls) -> str | None:
        return (
            "Otii is reached over TCP: start the Otii app's TCP server (or `otii_server`) and set "
            "[meter] url = 'socket://HOST:1905'; rehearse with `frugalbench emulate meter otii --url "
            "socket://127.0.0.1:1905`"
        )

    # -- link ------------------------------------------------------------------------------------
    def _line(self, deadline: float) -> bytes:
        assert self.port is not None
        while (nl := self._rx.find(b"\r\n")) < 0:
            if time.monotonic() > deadline:
                raise MeterError(
                    f"Otii server at {self.config.url} did not answer within {self.config.timeout_s} s; "
                    "is the TCP server enabled in the Otii app?"
                )
            try:
                self._rx += read_some(self.port, 0.02)
            except Exception as exc:  # noqa: BLE001 - serial/socket errors: the link is gone
                raise MeterError(f"Otii connection lost: {exc}") from exc
        raw = bytes(self._rx[:nl])
        del self._rx[: nl + 2]
        return raw

    def request(self, cmd: str, **data: Any) -> dict[str, Any]:
        """Send one request and return its response ``data``; raises MeterError on an error reply."""
        if self.port is None:
            raise StateError("Otii is not open; call open() first")
        self._tid += 1
        tid = f"{self._session}-{self._tid}"  # never matches a stale reply from an earlier session
        msg = {"type": "request", "cmd": cmd, "data": data, "trans_id": tid}
        try:
            self.port.write(json.dumps(msg).encode() + b"\r\n")
        except Exception as exc:  # noqa: BLE001
            raise MeterError(f"Otii connection lost: {exc}") from exc
        deadline = time.monotonic() + self.config.timeout_s
        while True:
            reply = parse_message(self._line(deadline))
            if reply.get("trans_id") != tid:
                self.stale_lines += 1  # progress messages, old replies
                continue
            if reply["type"] == "error":
                raise MeterError(
                    f"Otii refused {cmd}: {reply.get('errorcode')} {reply.get('data', {}).get('message', '')}"
                )
            return reply.get("data") or {}

    # -- Meter -----------------------------------------------------------------------------------
    def open(self) -> None:
        self.port = open_serial(self.config.url, self.config.baud, 0.05, "Otii server")
        deadline = time.monotonic() + self.config.timeout_s
        while True:
            try:
                msg = parse_message(self._line(deadline))
            except ProtocolError:
                self.stale_lines += 1
                continue
            if msg.get("type") == "information":
                self.banner = msg
                break
            self.stale_lines += 1
        self.stale_lines += 0 if not drain_stale(self.port, 0.02, 0.2) else 1
        devices = self.request("otii_get_devices").get("devices", [])
        want = self.config.device
        match = [d for d in devices if not want or want in (d.get("device_id"), d.get("name"))]
        if len(match) != 1:
            names = ", ".join(f"{d.get('name')} ({d.get('device_id')})" for d in devices) or "none"
            raise MeterError(f"Otii: need exactly one device matching {want!r}; connected: {names}")
        self.device_id = match[0]["device_id"]
        self.project_id = self.request("otii_get_active_project").get("project_id", -1)
        if self.project_id is None or self.project_id < 0:
            self.project_id = self.request("otii_create_project")["project_id"]
        if self.config.voltage_v is not None:
            self.request("arc_set_main_voltage", device_id=self.device_id, value=self.config.voltage_v)
        self.request("arc_enable_channel", device_id=self.device_id, channel="mp", enable=True)
        if self.config.marker_channel:
            self.request(
                "arc_enable_channel",
                device_id=self.device_id,
                channel=self.config.marker_channel,
                enable=True,
            )
        self.request("arc_set_main", device_id=self.device_id, enable=True)

    def start(self) -> None:
        t_req = time.perf_counter()
        self.request("project_start_recording", project_id=self.project_id)
        self._t_started = time.perf_counter()  # the recording began before this instant
        self._t0 = (t_req + self._t_started) / 2

    def _fetch(self, rid: int, channel: str) -> tuple[list[Any], float, float]:
        count = self.request("recording_get_channel_data_count", recording_id=rid, device_id=self.device_id,
                             channel=channel)["count"]  # fmt: skip
        values: list[Any] = []
        interval = t_first = 0.0
        for index in range(0, count, CHUNK):
            d = self.request("recording_get_channel_data", recording_id=rid, device_id=self.device_id,
                             channel=channel, index=index, count=min(CHUNK, count - index))  # fmt: skip
            if index == 0:
                t_first = float(d.get("timestamp", 0.0))
            interval = float(d.get("interval", 0.0))
            values += d["values"]
        return values, interval, t_first

    def stop(self) -> Trace:
        problems: list[str] = []
        elapsed = time.perf_counter() - self._t_started  # a lower bound of the recording's length
        try:
            self.request("project_stop_recording", project_id=self.project_id)
            rid = self.request("project_get_last_recording", project_id=self.project_id)["recording_id"]
            vals, interval, t_first = self._fetch(rid, "mp")
            marks = self._fetch(rid, self.config.marker_channel)[0] if self.config.marker_channel else []
        except (MeterError, ProtocolError, KeyError, TypeError) as exc:
            return sampled_trace(np.zeros(0), 1.0, [], 0, [f"Otii recording lost: {exc}"])
        if interval <= 0:
            return sampled_trace(np.zeros(0), 1.0, [], 0, ["Otii returned no sample interval"])
        rate = 1.0 / interval
        dropped = 0
        expected = round(elapsed * rate)
        if len(vals) < expected - 0.02 * rate - 0.01 * expected:
            dropped = expected - len(vals)
            problems.append(f"recording holds {len(vals)} samples for {elapsed:.3f} s at {rate:.0f} Hz")
        power = np.asarray([np.nan if v is None else v for v in vals], dtype=np.float64)
        markers = [
            Marker(t_s=float(m["timestamp"]) - t_first, channel=int(self.config.marker_channel[1:] or 1),
                   level=int(bool(m["value"])))
            for m in marks[1:]
            if isinstance(m, dict)
        ]  # fmt: skip
        return sampled_trace(power, rate, markers, dropped, problems,
                             {"meter": "otii", "stale_lines": self.stale_lines, "recording_id": rid, "host_t0": self._t0})  # fmt: skip

    def marker_choice(self) -> MarkerChoice:
        return self.config.marker_method if self.config.marker_channel else "host-clock"

    def marker_channel(self) -> int | None:
        return int(self.config.marker_channel[1:] or 1) if self.config.marker_channel else None

    def info(self) -> MeterInfo:
        version = str(self.banner.get("data", {}).get("otii_version", ""))
        emulator_id = f"otii_version {version!r}" if "emulator" in version.lower() else ""
        cls, note = measurement_class(emulator_id, self.config.simulated)
        sim = cls == "simulated"
        return MeterInfo(
            energy_class=cls,
            model="Qoitech Otii Arc" + (" (emulator)" if sim else ""),
            boundary=self.config.boundary or "DUT supply (Arc main output)",
            rate_hz=4000.0,
            accuracy="see the Qoitech datasheet (vendor figures, not verified here)",
            marker_method="gpio" if self.config.marker_channel else "host-clock",
            note=note,
        )

    def close(self) -> None:
        if self.port is not None:
            self.port.close()
            self.port = None
