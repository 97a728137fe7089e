"""Qoitech Otii server emulator: JSON objects terminated by ``\\r\\n`` over TCP (default port 1905).

On connect the server sends ``{"type":"information","info":"connected",...}``. Requests are
``{"type":"request","cmd":…,"data":{…},"trans_id":"N"}``; replies are ``{"type":"response",…}`` with
the same ``trans_id``, or ``{"type":"error","errorcode":"Command failure",…}``. One Arc is attached;
it records main power ``mp`` at 4 kS/s (mean power of each 250 µs period) and the digital input
``i1`` (the DUT's marker pin) as ``{"timestamp", "value"}`` transitions (``data_type`` "analog" /
"digital", as documented in otii-tcp-client's ``Recording.get_channel_data``).
Faults: dropped samples (missing from the recording), a corrupted reply byte, a disconnect, stale
bytes (an old reply with a foreign ``trans_id`` before the banner).
"""

from __future__ import annotations

import json

import numpy as np

from .base import EMULATORS, MeterEmulator

RATE_HZ = 4000
DEVICE = {"device_id": "ARC-EMU-1", "name": "Arc", "type": "Arc"}
CHANNELS = {"mc", "mp", "mv", "i1", "i2", "rx"}


@EMULATORS.register("otii")
class OtiiEmulator(MeterEmulator):
    """The Otii TCP server with one Arc."""

    name = "otii"

    def reset(self) -> None:
        super().reset()
        self.buf = bytearray()
        self.project_id = -1
        self.recordings: dict[int, float] = {}  # id → duration (virtual s)
        self.recording = False
        self.enabled: set[str] = set()
        self.voltage = 3.3
        self.send(
            json.dumps(
                {"type": "information", "info": "connected",
                 "data": {"otii_version": "3.5.0" if self.impersonate else "3.5.0-frugalbench-emulator", "protocol_version": "0.1", "server": "otii-server"}}
            ).encode()
            + b"\r\n"
        )  # fmt: skip

    def on_bytes(self, data: bytes) -> None:
        self.buf += data
        while (nl := self.buf.find(b"\r\n")) >= 0:
            raw = bytes(self.buf[:nl])
            del self.buf[: nl + 2]
            self.commands.append(raw)
            try:
                req = json.loads(raw)
            except ValueError:
                req = None
            if not isinstance(req, dict) or not isinstance(req.get("data", {}), dict):
                self._reply({"type": "error", "errorcode": "Invalid JSON", "data": {}})
                continue
            try:
                self._handle(req)
            except (TypeError, ValueError, KeyError, OverflowError) as exc:  # malformed arguments
                self._reply({"type": "error", "cmd": req.get("cmd"), "trans_id": req.get("trans_id"),
                             "errorcode": "Command failure", "data": {"message": f"bad arguments: {exc}"}})  # fmt: skip

    def _reply(self, msg: dict) -> None:
        line = json.dumps(msg).encode()
        f = self.faults
        hit = f.corrupt_at_s is not None and self.vnow() >= f.corrupt_at_s and not self.state.corrupted
        if hit and msg.get("cmd") == "recording_get_channel_data":
            line = line[:10] + b"\x00" + line[11:]
            self.state.corrupted = True
        self.send(line + b"\r\n")

    def _handle(self, req: dict) -> None:  # one branch per command
        cmd, data, tid = req.get("cmd"), req.get("data") or {}, req.get("trans_id")
        if self.check_disconnect(self.vnow()):
            return
        ok = {"type": "response", "cmd": cmd, "trans_id": tid}

        def fail(msg: str) -> None:
            self._reply({"type": "error", "cmd": cmd, "trans_id": tid, "errorcode": "Command failure",
                         "data": {"message": msg}})  # fmt: skip

        if cmd == "otii_get_devices":
            self._reply({**ok, "data": {"devices": [DEVICE]}})
        elif cmd == "otii_get_active_project":
            self._reply({**ok, "data": {"project_id": self.project_id}})
        elif cmd == "otii_create_project":
            self.project_id = 1
            self._reply({**ok, "data": {"project_id": 1}})
        elif cmd in ("arc_set_main_voltage", "arc_set_main", "arc_set_max_current"):
            if data.get("device_id") != DEVICE["device_id"]:
                fail("unknown device_id")
                return
            if cmd == "arc_set_main_voltage":
                self.voltage = float(data.get("value", self.voltage))
            self._reply({**ok, "data": {}})
        elif cmd == "arc_enable_channel":
            ch = data.get("channel")
            if ch not in CHANNELS:
                fail(f"unknown channel {ch}")
                return
            (self.enabled.add if data.get("enable") else self.enabled.discard)(ch)
            self._reply({**ok, "data": {}})
        elif cmd == "project_start_recording":
            if data.get("project_id") != self.project_id or self.project_id < 0:
                fail("no such project")
                return
            self.recording = True
            self.start_stream()
            self._reply({**ok, "data": {}})
        elif cmd == "project_stop_recording":
            dur = self.vnow()
            self.state.streaming = False
            self.recording = False
            rid = len(self.recordings) + 1
            self.recordings[rid] = dur
            self._reply({**ok, "data": {}})
        elif cmd == "project_get_last_recording":
            rid = max(self.recordings, default=-1)
            self._reply({**ok, "data": {"recording_id": rid, "name": f"Recording {rid}"}})
        elif cmd in ("recording_get_channel_data_count", "recording_get_channel_data"):
            self._data(cmd, data, ok, fail)
        else:
            fail(f"unknown command {cmd}")

    def _samples(self, rid: int) -> np.ndarray:
        n = int(self.recordings[rid] * RATE_HZ)
        idx = np.arange(n)
        f = self.faults
        if f.drop_at_s is not None and f.drop_n:
            d0 = int(np.ceil(f.drop_at_s * RATE_HZ))
            idx = idx[(idx < d0) | (idx >= d0 + f.drop_n)]
        return idx

    def _data(self, cmd: str, data: dict, ok: dict, fail) -> None:  # noqa: ANN001
        rid, ch = data.get("recording_id"), data.get("channel")
        if rid not in self.recordings or data.get("device_id") != DEVICE["device_id"]:
            fail("no such recording or device")
            return
        if ch not in self.enabled:
            fail(f"channel {ch} was not enabled")
            return
        dur = self.recordings[rid]
        if ch == "i1":
            vals = [{"timestamp": 0.0, "value": False}]
            for t in self.profile.edges():
                if t <= dur:
                    vals.append({"timestamp": t, "value": bool(self.profile.marker(np.asarray([t]))[0])})
        else:
            idx = self._samples(rid)
            start, count = int(data.get("index", 0)), int(data.get("count", 0))
            sel = idx[start : start + count] if cmd == "recording_get_channel_data" else idx
            p = self.profile.mean_power(0, int(dur * RATE_HZ), RATE_HZ)[sel] if len(sel) else np.zeros(0)
            vals = (p if ch == "mp" else p / self.voltage).tolist()
        if cmd == "recording_get_channel_data_count":
            self._reply({**ok, "data": {"count": len(vals)}})
            return
        if ch == "i1":
            start, count = int(data.get("index", 0)), int(data.get("count", 0))
            vals = vals[start : start + count]
            self._reply({**ok, "data": {"data_type": "digital", "values": vals}})
            return
        self._reply({**ok, "data": {"data_type": "analog", "timestamp": int(data.get("index", 0)) / RATE_HZ, "interval": 1 / RATE_HZ,
                                    "values": vals}})  # fmt: skip
