"""Host side of the EEMBC / MLPerf Tiny DUT protocol, plus frugalbench's negotiated extensions.

Replies are parsed strictly (:func:`parse_reply`): ``\\r\\n`` lines, each ``m-...`` or ``e-...`` in
printable ASCII, the last one ``m-ready``. Garbage, a timeout or a half reply raises
:class:`ProtocolError`; idempotent commands are retried (bounded) after a resynchronisation. A boot
banner inside a reply means the DUT reset: :class:`DutReset`. Works on any ``serial_for_url`` port.

Reply integrity (frugalbench extension ``xcrc``): once negotiated, every reply ends with
``m-crc-XXXXXXXX`` before ``m-ready``, the CRC-32 of the command text followed by the reply bytes
before that line. A reply that fails the check (a flipped bit, a dropped byte, a stale reply to
another command) raises :class:`ReplyCorrupt` and is never handed to the caller; idempotent commands
are asked again. A stock DUT never sees ``xcrc`` unless it answered ``ext`` as a frugalbench DUT, so
the plain EEMBC bytes are unchanged for it.
"""

from __future__ import annotations

import contextlib
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import ProtocolError, TargetError

READY = b"m-ready\r\n"
LINE_RE = re.compile(r"(?:m|e)-[\x20-\x7e]*")
BANNER_MARKS = ("m-init-done", "m-timestamp-mode-")
HEX_CHUNK = 31  # bytes per `db` command, as the MLCommons runner sends them
CRC_LINE_RE = re.compile(rb"m-crc-([0-9a-f]{8})\r\n")
UNKNOWN_COMMAND = "e-[Unknown command: "
FLOAT_RE = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|nan|-?inf")


class ReplyCorrupt(ProtocolError):
    """A reply failed its negotiated checksum (or lacks it): its contents must not be used."""


class DutReset(ProtocolError):
    """The DUT printed its boot banner in the middle of a reply: it reset."""


class DutCommandError(ProtocolError):
    """The DUT answered a command with an ``e-`` line."""

    def __init__(self, command: str, errors: list[str]) -> None:
        self.command = command
        self.errors = errors
        super().__init__(f"DUT refused {command!r}: {'; '.join(errors)}")


@dataclass(frozen=True)
class Reply:
    """One parsed reply: its ``m-`` lines (without ``m-ready``) and its ``e-`` lines."""

    lines: list[str]
    errors: list[str]
    raw_len: int

    @property
    def banner(self) -> bool:
        return any(line.startswith(BANNER_MARKS) for line in self.lines)

    def value(self, prefix: str) -> str:
        """The rest of the first line starting with ``prefix``; ProtocolError if absent."""
        for line in self.lines:
            if line.startswith(prefix):
                return line[len(prefix) :]
        raise ProtocolError(f"reply lacks a line starting {prefix!r}: {self.lines!r}")


def parse_reply(raw: bytes) -> Reply:
    """Strictly parse one complete reply (ending in ``m-ready\\r\\n``)."""
    if not raw.endswith(READY):
        raise ProtocolError(f"reply does not end with m-ready: {raw[-60:]!r}")
    body = raw[: -len(READY)]
    if body and not body.endswith(b"\r\n"):
        raise ProtocolError(f"m-ready does not start a line: {raw[-60:]!r}")
    lines: list[str] = []
    errors: list[str] = []
    for chunk in body.split(b"\r\n")[:-1] if body else []:
        try:
            text = chunk.decode("ascii")
        except UnicodeDecodeError:
            raise ProtocolError(f"non-ASCII bytes in reply line {chunk[:60]!r}") from None
        if not LINE_RE.fullmatch(text):
            raise ProtocolError(f"malformed reply line {text[:60]!r} (expected m-... or e-...)")
        if text == "m-ready":
            raise ProtocolError("m-ready in the middle of a reply (two replies merged?)")
        (errors if text.startswith("e-") else lines).append(text)
    return Reply(lines, errors, len(raw))


def verify_crc(command: bytes, raw: bytes) -> bytes:
    """Check the ``m-crc-`` line of a complete reply to ``command``; return the reply without it."""
    body = raw[: -len(READY)] if raw.endswith(READY) else raw
    start = body.rfind(b"m-crc-")
    if start < 0 or (start > 0 and body[start - 1 : start] != b"\n"):
        raise ReplyCorrupt(f"reply to {command[:40]!r} lacks its m-crc line: {raw[-60:]!r}")
    m = CRC_LINE_RE.fullmatch(body[start:])
    if not m:
        raise ReplyCorrupt(f"malformed m-crc line in the reply to {command[:40]!r}: {body[start:][:40]!r}")
    got = zlib.crc32(command + body[:start])
    if got != int(m.group(1), 16):
        raise ReplyCorrupt(
            f"reply to {command[:40]!r} fails its checksum (computed {got:08x}, DUT sent "
            f"{m.group(1).decode()}): corrupted on the link"
        )
    return body[:start] + READY


def parse_results(text: str) -> np.ndarray:
    """``[0.000,0.996,...]`` (the part after ``m-results-``) to a float array."""
    if not (text.startswith("[") and text.endswith("]")):
        raise ProtocolError(f"m-results value is not bracketed: {text[:60]!r}")
    inner = text[1:-1]
    parts = inner.split(",") if inner else []
    if not all(FLOAT_RE.fullmatch(p.strip()) for p in parts):
        raise ProtocolError(f"m-results holds a non-number: {text[:60]!r}")
    return np.array([float(p) for p in parts], dtype=np.float64)


def parse_hex_i8(text: str, n: int | None = None) -> np.ndarray:
    if len(text) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", text):
        raise ProtocolError(f"bad hex payload {text[:60]!r}")
    out = np.frombuffer(bytes.fromhex(text), dtype=np.int8)
    if n is not None and len(out) != n:
        raise ProtocolError(f"expected {n} output bytes, got {len(out)}")
    return out


@dataclass(frozen=True)
class InferResult:
    """One ``infer N W`` exchange."""

    n: int
    warmup: int
    t0_us: int | None
    t1_us: int | None
    results: np.ndarray
    host_s: float

    @property
    def dut_s(self) -> float | None:
        if self.t0_us is None or self.t1_us is None:
            return None
        return (self.t1_us - self.t0_us) / 1e6


def parse_infer(reply: Reply, n: int, w: int) -> InferResult:
    """Check the ``infer`` line sequence of §1.3 and extract the timestamps and results."""
    want = [f"m-warmup-start-{w}", "m-warmup-done", f"m-infer-start-{n}"]
    lines = reply.lines
    pos = 0
    for item in want:
        try:
            pos = lines.index(item, pos) + 1
        except ValueError:
            raise ProtocolError(f"infer reply lacks {item!r} in order: {lines!r}") from None
    laps = [line for line in lines[pos:] if line.startswith("m-lap-us-")]
    if len(laps) not in (0, 2):
        raise ProtocolError(f"infer reply has {len(laps)} m-lap-us lines, expected 2 (or 0 in energy mode)")
    stamps: list[int] = []
    for lap in laps:
        v = lap[len("m-lap-us-") :]
        if not v.isdigit():
            raise ProtocolError(f"bad timestamp line {lap!r}")
        stamps.append(int(v))
    if "m-infer-done" not in lines[pos:]:
        raise ProtocolError(f"infer reply lacks m-infer-done: {lines!r}")
    res = [line for line in lines[pos:] if line.startswith("m-results-")]
    if len(res) != 1:
        raise ProtocolError(f"infer reply has {len(res)} m-results lines, expected 1")
    if stamps and stamps[1] < stamps[0]:
        if stamps[0] < 2**32 and stamps[1] < 2**32:  # a 32-bit us counter wrapped (every 71.6 min)
            stamps[1] += 2**32
        else:
            raise ProtocolError(f"DUT timestamps go backwards: {stamps}")
    return InferResult(
        n,
        w,
        stamps[0] if stamps else None,
        stamps[1] if stamps else None,
        parse_results(res[0][len("m-results-") :]),
        0.0,
    )


@dataclass
class Extensions:
    """What ``ext%`` advertised (None of it exists on a stock MLPerf Tiny DUT)."""

    bulk: list[str] = field(default_factory=list)
    model_max: int = 0
    db_max: int = 0
    act_max: int = 0
    kinds: list[str] = field(default_factory=list)
    tick_hz: int = 0
    board: str = ""
    crc: bool = False  # replies carry m-crc lines (xcrc 1 accepted)


def parse_ext(reply: Reply) -> Extensions:
    ext = Extensions()
    if "m-ext-[fb1]" not in reply.lines:
        raise ProtocolError(f"ext reply lacks m-ext-[fb1]: {reply.lines!r}")
    for line in reply.lines:
        if m := re.fullmatch(r"m-ext-bulk-\[([a-z,]*)\]", line):
            ext.bulk = m.group(1).split(",")
        elif m := re.fullmatch(r"m-ext-limits-\[model=(\d+),db=(\d+),act=(\d+)\]", line):
            ext.model_max, ext.db_max, ext.act_max = (int(g) for g in m.groups())
        elif m := re.fullmatch(r"m-ext-kinds-\[([a-z0-9,]*)\]", line):
            ext.kinds = m.group(1).split(",")
        elif m := re.fullmatch(r"m-ext-tick-hz-(\d+)", line):
            ext.tick_hz = int(m.group(1))
        elif m := re.fullmatch(r"m-ext-board-\[([\x20-\x5c\x5e-\x7e]*)\]", line):
            ext.board = m.group(1)
    if not ext.tick_hz or not ext.db_max:
        raise ProtocolError(f"ext reply lacks limits or tick rate: {reply.lines!r}")
    return ext


class DutClient:
    """EEMBC DUT protocol over an open pyserial port (``serial.serial_for_url``).

    Counts bytes both ways (``tx_bytes``/``rx_bytes``) so wire efficiency can be measured.
    """

    def __init__(
        self, port, *, timeout_s: float = 5.0, infer_timeout_s: float = 120.0, retries: int = 2
    ) -> None:
        self.port = port
        self.timeout_s = timeout_s
        self.infer_timeout_s = infer_timeout_s
        self.retries = retries
        self.tx_bytes = 0
        self.rx_bytes = 0
        self.ext: Extensions | None = None
        self.crc = False  # replies carry a checksum (negotiated with xcrc 1)
        self.corrupt_replies = 0  # replies refused for a failed checksum or cross-check
        self._pending = b""

    # ---- transport ----
    def _write(self, data: bytes) -> None:
        self.port.write(data)
        self.port.flush()
        self.tx_bytes += len(data)

    def _read_until(self, end: bytes, timeout_s: float, *, at_line_start: bool = True) -> bytes:
        """Read until ``end`` (at a line start) or raise ProtocolError on timeout."""
        buf = bytearray(self._pending)
        self._pending = b""
        deadline = time.monotonic() + timeout_s
        while True:
            idx = buf.find(end)
            while idx > 0 and at_line_start and buf[idx - 1 : idx] != b"\n":
                idx = buf.find(end, idx + 1)
            if idx >= 0:
                cut = idx + len(end)
                self._pending = bytes(buf[cut:])
                return bytes(buf[:cut])
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProtocolError(
                    f"DUT silent for {timeout_s:.1f} s waiting for {end.strip()!r}; got {bytes(buf[-80:])!r}. "
                    "Check the port, baud rate and that the firmware runs"
                )
            self.port.timeout = min(left, 0.2)
            chunk = self.port.read(max(1, self.port.in_waiting))
            self.rx_bytes += len(chunk)
            buf += chunk
            if len(buf) > 1 << 22:
                raise ProtocolError("DUT sent over 4 MiB without m-ready; is this an EEMBC DUT?")

    def read_reply(self, timeout_s: float | None = None) -> Reply:
        raw = self._read_until(READY, timeout_s or self.timeout_s)
        return parse_reply(raw)

    def resync(self, quiet_s: float = 0.1) -> None:
        """Drop stale input, end any half command with ``%``, then drain until the line is quiet."""
        self._pending = b""
        self.port.reset_input_buffer()
        self._write(b"%")
        with contextlib.suppress(ProtocolError):
            self._read_until(READY, self.timeout_s)
        deadline = time.monotonic() + self.timeout_s
        self.port.timeout = quiet_s
        while time.monotonic() < deadline:
            chunk = self.port.read(4096)
            self.rx_bytes += len(chunk)
            if not chunk:
                break
        self._pending = b""

    def _checked(self, cmd: bytes, raw: bytes) -> Reply:
        """Parse a raw reply, see a reset, and verify its checksum when negotiated."""
        reply = parse_reply(raw)
        if reply.banner:
            self.crc = False  # a reset DUT boots with checksums off
            raise DutReset(f"DUT reset during {cmd[:40]!r} (boot banner in the reply): {reply.lines!r}")
        if self.crc:
            try:
                reply = parse_reply(verify_crc(cmd, raw))
            except ReplyCorrupt:
                self.corrupt_replies += 1
                raise
        return reply

    def command(
        self,
        cmd: str,
        *,
        timeout_s: float | None = None,
        allow_error: bool = False,
        retry: bool = True,
        check: Callable[[Reply], object] | None = None,
    ) -> Reply:
        """Send ``cmd%`` and parse the reply; retries idempotent commands after garbage or silence.

        ``check`` validates the reply (raising ProtocolError); a reply that fails it, or fails its
        checksum, is asked for again like garbage (never returned).
        """
        if "%" in cmd or len(cmd) > 128:
            raise ValueError(f"not a valid DUT command: {cmd[:40]!r}")
        attempts = 1 + (self.retries if retry else 0)
        last: ProtocolError | None = None
        raw_cmd = cmd.encode("ascii")
        for _ in range(attempts):
            self._write(raw_cmd + b"%")
            try:
                reply = self._checked(raw_cmd, self._read_until(READY, timeout_s or self.timeout_s))
                if reply.errors and not allow_error:
                    raise DutCommandError(cmd, reply.errors)
                if check is not None and not reply.errors:
                    check(reply)
            except (DutReset, DutCommandError):
                raise
            except ProtocolError as e:
                last = e
                self.resync()
                continue
            return reply
        assert last is not None
        raise ProtocolError(f"{cmd!r} failed after {attempts} attempts: {last}")

    # ---- standard commands ----
    def wait_banner(self, timeout_s: float = 10.0) -> Reply:
        """Read the boot banner (``m-init-done`` ... ``m-ready``)."""
        return self.read_reply(timeout_s)

    def name(self) -> str:
        def valid(r: Reply) -> str:
            line = r.value("m-name-")
            if not re.fullmatch(r"dut-\[[\x20-\x5c\x5e-\x7e]*\]", line):
                raise ProtocolError(
                    f"unexpected name line m-name-{line!r}; an EEMBC DUT answers m-name-dut-[vendor]"
                )
            return line

        return valid(self.command("name", check=valid))

    def profile(self) -> tuple[str, str]:
        r = self.command("profile")
        return r.value("m-profile-"), r.value("m-model-").strip("[]")

    def help(self) -> list[str]:
        """The free-text help (the reference prints plain lines, so this reply is not parsed strictly)."""
        self._write(b"help%")
        raw = self._read_until(READY, self.timeout_s)
        return [ln for ln in raw[: -len(READY)].decode("ascii", "replace").split("\r\n") if ln]

    def timestamp_us(self) -> int | None:
        r = self.command("timestamp")
        try:
            return int(r.value("m-lap-us-"))
        except ProtocolError:
            return None  # energy-mode DUT: the pin toggles, nothing printed

    def negotiate(self) -> Extensions | None:
        """Ask for extensions; ``None`` (and hex/EEMBC fallback) if the DUT does not know ``ext``.

        A frugalbench DUT is then asked for reply checksums (``xcrc 1``); when it accepts, ``ext`` is
        read again under the checksum, so the limits and tick rate in use were not corrupted.
        """
        self.crc = False
        self.ext = None

        def known(r: Reply) -> None:
            if r.errors and r.errors != [UNKNOWN_COMMAND + "ext]"]:
                raise ProtocolError(f"ext answered with unexpected errors {r.errors!r}")
            if not r.errors:
                parse_ext(r)

        r = self.command("ext", allow_error=True, check=known)
        if r.errors:
            return None
        ext = parse_ext(r)

        last: ProtocolError | None = None
        for _ in range(1 + self.retries):
            self._write(b"xcrc 1%")
            try:
                raw = self._read_until(READY, self.timeout_s)
                r = parse_reply(raw)
                if r.banner:
                    raise DutReset(f"DUT reset during xcrc 1: {r.lines!r}")
                if r.errors:
                    if r.errors == [UNKNOWN_COMMAND + "xcrc 1]"]:
                        self.ext = ext  # an older frugalbench DUT: no reply checksums
                        return ext
                    raise ProtocolError(f"xcrc 1 answered with unexpected errors {r.errors!r}")
                if parse_reply(verify_crc(b"xcrc 1", raw)).lines != ["m-xcrc-on"]:
                    raise ProtocolError(f"xcrc 1 answered {r.lines!r}, expected m-xcrc-on")
            except DutReset:
                raise
            except ProtocolError as e:
                last = e
                self.resync()
                continue
            self.crc = True
            break
        else:
            raise ProtocolError(f"could not switch reply checksums on: {last}")
        ext = parse_ext(self.command("ext", check=parse_ext))
        ext.crc = True
        self.ext = ext
        return ext

    def db_load_hex(self, data: bytes) -> None:
        """Standard EEMBC input transfer: ``db load N`` then 31-byte hex chunks."""
        r = self.command(f"db load {len(data)}")
        if r.value("m-[") != f"Expecting {len(data)} bytes]":
            raise ProtocolError(f"db load answered {r.lines!r}")
        for i in range(0, len(data), HEX_CHUNK):
            part = data[i : i + HEX_CHUNK]
            r = self.command("db " + part.hex(), retry=False)
        if "m-load-done" not in r.lines:
            raise ProtocolError("DUT did not confirm m-load-done after the last db chunk")

    def bulk(self, dest: str, data: bytes) -> Reply:
        """Binary upload with length + CRC32 (extension); retried on CRC errors, garbage or silence.

        After a failed attempt the DUT may still be waiting for upload bytes (it gives up only after
        2 s without one), so the host sends that many spaces (they end the upload with a CRC error,
        or become a harmless overlong command) before resynchronising.
        """
        if self.ext is None or dest not in self.ext.bulk:
            raise TargetError(f"DUT does not offer bulk upload to {dest!r}; negotiate() first or use db hex")
        crc = zlib.crc32(data)
        cmd = f"bulk {dest} {len(data)} {crc:08x}".encode()
        last: Exception | None = None
        for _ in range(1 + self.retries):
            self._write(cmd + b"%")
            try:
                head = self._read_until(b"\r\n", self.timeout_s, at_line_start=False)
                if head.startswith(b"e-"):  # refused at once (too big, bad destination...)
                    reply = self._checked(cmd, head + self._read_until(READY, self.timeout_s))
                elif head == b"m-bulk-go\r\n":
                    self._write(data)
                    wait = self.timeout_s + len(data) / 2000.0
                    reply = self._checked(cmd, head + self._read_until(READY, wait))
                else:  # a corrupted go-ahead or refusal: never send binary data that may be read as commands
                    raise ProtocolError(f"bulk answered {head[:40]!r} instead of m-bulk-go")
            except DutReset:
                raise
            except ProtocolError as e:
                last = e
                # the DUT may still wait for upload bytes: complete them (no '%' among them), then resync
                self._write(b" " * len(data))
                self.resync()
                continue
            if reply.errors:
                last = DutCommandError(f"bulk {dest}", reply.errors)
                if any(e.startswith(("e-[bulk: CRC mismatch", "e-[bulk: timeout")) for e in reply.errors):
                    self.resync()
                    continue
                raise last
            if f"m-bulk-done-{len(data)}" not in reply.lines:
                raise ProtocolError(f"bulk reply lacks m-bulk-done-{len(data)}: {reply.lines!r}")
            return reply
        raise ProtocolError(f"bulk upload to {dest} failed after {1 + self.retries} attempts: {last}")

    def upload_input(self, data: bytes) -> None:
        """Input tensor bytes into the db buffer: binary when negotiated, else EEMBC hex."""
        if self.ext is not None and "db" in self.ext.bulk:
            self.bulk("db", data)
        else:
            self.db_load_hex(data)

    def infer(self, n: int, warmup: int, *, retry: bool = False) -> InferResult:
        """``infer N W``; ``retry`` asks again after a corrupted reply (for probes, not timed windows)."""
        t = time.perf_counter()

        def parse(r: Reply) -> InferResult:
            return parse_infer(r, n, warmup)

        r = self.command(f"infer {n} {warmup}", timeout_s=self.infer_timeout_s, retry=retry, check=parse)
        res = parse(r)
        return InferResult(res.n, res.warmup, res.t0_us, res.t1_us, res.results, time.perf_counter() - t)

    # ---- extension queries ----
    def xres(self, n_out: int) -> np.ndarray:
        def parse(r: Reply) -> np.ndarray:
            return parse_hex_i8(r.value("m-xres-"), n_out)

        return parse(self.command("xres", check=parse))

    def xstat(self) -> tuple[int, int, int]:
        """(ticks, tick rate, inferences) of the last timed section; the rate must be the negotiated one."""

        def parse(r: Reply) -> tuple[int, int, int]:
            v = r.value("m-xstat-")
            m = re.fullmatch(r"ticks-(\d+)-hz-(\d+)-n-(\d+)", v)
            if not m:
                raise ProtocolError(f"bad xstat line m-xstat-{v!r}")
            ticks, hz, n = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if self.ext is not None and self.ext.tick_hz and hz != self.ext.tick_hz:
                self.corrupt_replies += 1
                raise ReplyCorrupt(f"xstat reports a {hz} Hz tick, the DUT negotiated {self.ext.tick_hz} Hz")
            return ticks, hz, n

        return parse(self.command("xstat", check=parse))

    def xbatch(self, k: int, n_out: int) -> np.ndarray:
        """Outputs of ``k`` inferences on the inputs in the db buffer (asked again if corrupted)."""

        def parse(r: Reply) -> np.ndarray:
            outs = [line[len("m-xout-") :] for line in r.lines if line.startswith("m-xout-")]
            if len(outs) != k:
                raise ProtocolError(f"xbatch {k} returned {len(outs)} outputs")
            return np.stack([parse_hex_i8(o, n_out) for o in outs])

        return parse(self.command(f"xbatch {k}", timeout_s=self.infer_timeout_s, check=parse))
