"""Host side of the board agent's line protocol (MLPerf Tiny DUT protocol plus ``x-`` extensions).

Works over any byte stream with ``sendall``/``recv``/``settimeout`` (a Paramiko channel in
practice). Every user-supplied string travels base64-encoded, so nothing a user writes can end a
command early or reach a shell on the board.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from ..errors import ProtocolError, TargetError


class Stream(Protocol):
    def sendall(self, data: bytes) -> None: ...

    def recv(self, n: int) -> bytes: ...

    def settimeout(self, timeout: float | None) -> None: ...


class AgentError(TargetError):
    """The agent answered ``e-[...]`` (the message is the agent's, which says how to fix it)."""


class LinkLostError(TargetError):
    """The channel to the agent closed, failed or went silent."""


@dataclass(frozen=True)
class InferResult:
    """What ``infer N W%`` returned: board-clock µs around the N calls and the last results."""

    n_calls: int
    t0_us: int
    t1_us: int
    results: list[float]


@dataclass(frozen=True)
class ClockSample:
    """One host/board clock comparison: ``offset_s`` = board − host at the midpoint."""

    offset_s: float
    rtt_s: float


def b64(text: str | bytes) -> str:
    raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return base64.b64encode(raw).decode("ascii")


def encode_f32(x: np.ndarray) -> str:
    a = np.ascontiguousarray(x, dtype="<f4")
    if a.ndim < 1:
        raise ProtocolError("a tensor sent to the agent needs at least one dimension")
    return "x".join(str(d) for d in a.shape) + " " + b64(a.tobytes())


def decode_f32(text: str) -> np.ndarray:
    """``128x10-<b64>`` → float32 array."""
    shape_text, _, payload = text.partition("-")
    try:
        shape = tuple(int(d) for d in shape_text.split("x"))
        raw = base64.b64decode(payload, validate=True)
        return np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
    except ValueError as exc:
        raise ProtocolError(
            f"the agent sent a malformed tensor ({exc}); agent and host versions differ?"
        ) from None


def _json_field(line: str, prefix: str) -> dict[str, Any]:
    obj = json.loads(base64.b64decode(line[len(prefix) :], validate=True))
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    return obj


F = TypeVar("F", bound=Callable[..., Any])


def _parsing(fn: F) -> F:
    """Turn a malformed agent reply (bad number, base64, JSON) into a :class:`ProtocolError`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ValueError, TypeError, KeyError, AttributeError, zlib.error) as exc:
            raise ProtocolError(
                f"the board agent sent a malformed reply to {fn.__name__} ({exc}); "
                "are the agent and the host from the same frugalbench version?"
            ) from None

    return wrapper  # type: ignore[return-value]


class AgentClient:
    """Talks to one running agent. One command outstanding at a time, like the MLPerf Tiny host."""

    def __init__(self, stream: Stream, *, timeout_s: float = 30.0) -> None:
        self.stream = stream
        self.timeout_s = timeout_s
        self._buf = bytearray()

    # ---------------------------------------------------------------- framing
    def _readline(self, deadline: float) -> str:
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl]).decode("utf-8", "replace").rstrip("\r")
                del self._buf[: nl + 1]
                return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkLostError("the board agent did not answer in time (link stalled or board hung)")
            self.stream.settimeout(left)
            try:
                chunk = self.stream.recv(1 << 16)
            except TimeoutError:
                raise LinkLostError(
                    "the board agent did not answer in time (link stalled or board hung)"
                ) from None
            except (OSError, EOFError) as exc:
                raise LinkLostError(f"the SSH channel to the board failed: {exc}") from None
            if not chunk:
                raise LinkLostError("the SSH channel to the board closed (connection dropped or agent died)")
            self._buf.extend(chunk)

    def read_reply(self, timeout_s: float | None = None) -> list[str]:
        """Lines up to ``m-ready`` (excluded); raises :class:`AgentError` if one starts with ``e-``."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        lines: list[str] = []
        while True:
            line = self._readline(deadline)
            if line == "m-ready":
                break
            lines.append(line)
        errors = [ln[2:].strip("[]") for ln in lines if ln.startswith("e-")]
        if errors:
            raise AgentError("the board agent refused: " + "; ".join(errors))
        return lines

    def command(self, text: str, timeout_s: float | None = None) -> list[str]:
        if "%" in text:
            raise ProtocolError(f"a command to the agent cannot contain '%': {text[:60]!r}")
        try:
            self.stream.sendall(text.encode("ascii") + b"%")
        except (OSError, EOFError) as exc:
            raise LinkLostError(f"the SSH channel to the board failed: {exc}") from None
        return self.read_reply(timeout_s)

    @staticmethod
    def _field(lines: list[str], prefix: str) -> str:
        for ln in lines:
            if ln.startswith(prefix):
                return ln[len(prefix) :]
        raise ProtocolError(f"the agent's reply lacks a {prefix!r} line: {lines[:5]}")

    # ---------------------------------------------------------------- commands
    def boot(self, timeout_s: float) -> list[str]:
        """Wait for the start-up banner (``m-init-done``, ``m-ready``)."""
        lines = self.read_reply(timeout_s)
        if "m-init-done" not in lines:
            raise ProtocolError(f"the board agent did not start properly: {lines[:5]}")
        return lines

    @_parsing
    def name(self) -> str:
        return self._field(self.command("name"), "m-name-")

    @_parsing
    def clock(self) -> ClockSample:
        t0 = time.perf_counter()
        lines = self.command("x-clock")
        t1 = time.perf_counter()
        board_s = int(self._field(lines, "m-clock-ns-")) / 1e9
        return ClockSample(offset_s=board_s - (t0 + t1) / 2, rtt_s=t1 - t0)

    def clock_offset(self, rounds: int = 7) -> ClockSample:
        """Board − host clock offset from the lowest-RTT exchange of ``rounds`` (NTP-style)."""
        return min((self.clock() for _ in range(rounds)), key=lambda s: s.rtt_s)

    @_parsing
    def runtimes(self) -> dict[str, str]:
        """``{"numpy": ver|"missing", "ort": ..., "litert": ..., "tflite-runtime": ...}``."""
        out: dict[str, str] = {}
        for ln in self.command("x-runtimes"):
            if ln.startswith("m-numpy-"):
                out["numpy"] = ln[len("m-numpy-") :]
            elif ln.startswith("m-runtime-"):
                rest = ln[len("m-runtime-") :]
                for name in ("tflite-runtime", "litert", "ort"):
                    if rest.startswith(name + "-"):
                        out[name] = rest[len(name) + 1 :]
                        break
        return out

    @_parsing
    def sha256(self, path: str) -> str | None:
        try:
            return self._field(self.command(f"x-sha {b64(path)}"), "m-sha256-")
        except AgentError:
            return None

    @_parsing
    def pin(self, cores: list[int]) -> str:
        return self._field(self.command("x-pin " + ",".join(str(int(c)) for c in cores)), "m-pinned-")

    @_parsing
    def governor(self, name: str) -> str:
        return self._field(self.command(f"x-governor {name}"), "m-governor-")

    def set_vcgencmd(self, path: str) -> None:
        self.command(f"x-vcgencmd {b64(path)}" if path else "x-vcgencmd")

    @_parsing
    def load(
        self, runtime: str, threads: int, batch: int, path: str, timeout_s: float = 120.0
    ) -> dict[str, Any]:
        lines = self.command(f"x-load {runtime} {int(threads)} {int(batch)} {b64(path)}", timeout_s)
        return _json_field(self._field(lines, "m-loaded-"), "")

    def set_input(self, x: np.ndarray) -> None:
        self.command("x-input " + encode_f32(x))

    @_parsing
    def predict(self, x: np.ndarray, timeout_s: float = 300.0) -> np.ndarray:
        return decode_f32(self._field(self.command("x-predict " + encode_f32(x), timeout_s), "m-pred-"))

    @_parsing
    def infer(self, n_calls: int, n_warmup: int, timeout_s: float) -> InferResult:
        lines = self.command(f"infer {int(n_calls)} {int(n_warmup)}", timeout_s)
        laps = [int(ln[len("m-lap-us-") :]) for ln in lines if ln.startswith("m-lap-us-")]
        if len(laps) != 2 or "m-infer-done" not in lines:
            raise ProtocolError(f"'infer' reply lacks two m-lap-us- lines or m-infer-done: {lines[:8]}")
        res = self._field(lines, "m-results-[").rstrip("]")
        values = [float(v) for v in res.split(",") if v]
        return InferResult(n_calls=n_calls, t0_us=laps[0], t1_us=laps[1], results=values)

    @_parsing
    def laps_ns(self) -> np.ndarray:
        kind, _, payload = self._field(self.command("x-laps"), "m-laps-ns-").partition("-")
        dtypes = {"u4z": "<u4", "i8z": "<i8"}
        if kind not in dtypes:
            raise ProtocolError(f"unknown lap encoding {kind!r} from the agent")
        raw = zlib.decompress(base64.b64decode(payload, validate=True))
        return np.frombuffer(raw, dtype=dtypes[kind]).astype(np.int64)

    @_parsing
    def state(self) -> dict[str, Any]:
        return _json_field(self._field(self.command("x-state"), "m-state-"), "")

    @_parsing
    def info(self) -> dict[str, Any]:
        return _json_field(self._field(self.command("x-info"), "m-info-"), "")

    def pmic(self, period_ms: int) -> None:
        self.command(f"x-pmic {int(period_ms)}")

    @_parsing
    def pmic_read(self) -> dict[str, Any]:
        return _json_field(self._field(self.command("x-pmic-read"), "m-pmic-"), "")

    @_parsing
    def reap(self) -> list[int]:
        """Stop stale copies of the agent on the board; returns their pids."""
        text = self._field(self.command("x-reap"), "m-reaped-[").rstrip("]")
        return [int(p) for p in text.split(",") if p]

    def quit(self) -> None:
        with contextlib.suppress(TargetError):
            self.command("x-quit", 5.0)
