"""EEMBC protocol client: strict parsing (fuzzed), resync after garbage, bounded retries, reset and
fallback, reply checksums (every bit flip refused, corrupted results asked again), against a scripted
DUT peer on a real ``socket://`` port."""

from __future__ import annotations

import socket
import threading
import zlib
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ProtocolError
from harness.mcu.protocol import (
    READY,
    DutClient,
    DutCommandError,
    DutReset,
    ReplyCorrupt,
    parse_infer,
    parse_reply,
    parse_results,
    verify_crc,
)

INFER_OK = (
    b"m-warmup-start-1\r\nm-warmup-done\r\nm-infer-start-5\r\nm-lap-us-100\r\nm-lap-us-600\r\n"
    b"m-infer-done\r\nm-results-[0.100,0.900]\r\nm-ready\r\n"
)


# ---------------------------------------------------------------- pure parsers (fuzzed)
@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_parse_reply_never_crashes_on_garbage(raw: bytes) -> None:
    try:
        r = parse_reply(raw)
    except ProtocolError:
        return
    assert raw.endswith(READY)
    assert all(line.startswith("m-") for line in r.lines) and all(e.startswith("e-") for e in r.errors)


line_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["m-", "e-"]), line_text), max_size=8))
def test_parse_reply_round_trips_valid_replies(lines: list[tuple[str, str]]) -> None:
    lines = [(p, t) for p, t in lines if p + t != "m-ready"]
    raw = b"".join((p + t).encode() + b"\r\n" for p, t in lines) + READY
    r = parse_reply(raw)
    assert r.lines == [p + t for p, t in lines if p == "m-"]
    assert r.errors == [p + t for p, t in lines if p == "e-"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=60))
def test_infer_parser_rejects_mangled_sequences(noise: bytes) -> None:
    raw = INFER_OK[:40] + noise + INFER_OK[40:]
    try:
        res = parse_infer(parse_reply(raw), 5, 1)
    except ProtocolError:
        return
    assert res.t1_us - res.t0_us == 500  # type: ignore[operator]


def test_infer_parser_checks_order_counts_and_time() -> None:
    wrapped = INFER_OK.replace(b"m-lap-us-100", b"m-lap-us-4294967000")  # 32-bit us counter wrapped
    assert parse_infer(parse_reply(wrapped), 5, 1).dut_s == pytest.approx(896e-6)
    res = parse_infer(parse_reply(INFER_OK), 5, 1)
    assert res.dut_s == pytest.approx(500e-6) and res.results.tolist() == [0.1, 0.9]
    for bad, why in [
        (INFER_OK.replace(b"m-infer-start-5", b"m-infer-start-6"), "m-infer-start-5"),
        (INFER_OK.replace(b"m-lap-us-600\r\n", b""), "m-lap-us"),
        (INFER_OK.replace(b"m-lap-us-100", b"m-lap-us-9000000000"), "backwards"),
        (INFER_OK.replace(b"m-infer-done\r\n", b""), "m-infer-done"),
        (INFER_OK.replace(b"[0.100,0.900]", b"[0.1,x]"), "non-number"),
    ]:
        with pytest.raises(ProtocolError, match=why):
            parse_infer(parse_reply(bad), 5, 1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), max_size=12))
def test_results_parser(values: list[float]) -> None:
    text = "[" + ",".join(f"{v:.3f}" for v in values) + "]"
    assert np.allclose(parse_results(text), [round(v, 3) for v in values], atol=1e-3)


# ---------------------------------------------------------------- a scripted DUT on a socket
class Peer:
    """A TCP peer that answers each ``...%`` command with ``script(cmd)`` (bytes, or None = silence)."""

    def __init__(self, script: Callable[[str], bytes | None]) -> None:
        self.script = script
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.url = f"socket://127.0.0.1:{self.sock.getsockname()[1]}"
        self.commands: list[str] = []
        self.raw = bytearray()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        buf = b""
        with conn:
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                self.raw += data
                buf += data
                while b"%" in buf:
                    cmd, buf = buf.split(b"%", 1)
                    text = cmd.decode(errors="replace")
                    self.commands.append(text)
                    out = self.script(text)
                    if out:
                        conn.sendall(out)


@pytest.fixture
def peer_client() -> Iterator[Callable[[Callable[[str], bytes | None]], tuple[Peer, DutClient]]]:
    ports = []

    def make(script: Callable[[str], bytes | None]) -> tuple[Peer, DutClient]:
        p = Peer(script)
        port = serial.serial_for_url(p.url, timeout=0.5)
        ports.append(port)
        return p, DutClient(port, timeout_s=0.5, retries=2)

    yield make
    for p in ports:
        p.close()


def test_garbage_is_resynchronised_and_the_command_retried(peer_client) -> None:
    sent = {"n": 0}

    def script(cmd: str) -> bytes | None:
        if cmd == "name":
            sent["n"] += 1
            return b"\x00\xffgarbage\r\nm-ready\r\n" if sent["n"] == 1 else b"m-name-dut-[x]\r\nm-ready\r\n"
        return b"e-[Unknown command: " + cmd.encode() + b"]\r\nm-ready\r\n"

    peer, dut = peer_client(script)
    assert dut.name() == "dut-[x]"
    assert peer.commands.count("name") == 2 and "" in peer.commands  # the bare '%' of the resync


def test_silence_gives_up_after_bounded_retries(peer_client) -> None:
    peer, dut = peer_client(lambda cmd: None)
    with pytest.raises(ProtocolError, match="failed after 3 attempts"):
        dut.command("name")
    assert peer.commands.count("name") == 3


def test_boot_banner_in_a_reply_is_a_reset(peer_client) -> None:
    _, dut = peer_client(
        lambda cmd: b"m-timestamp-mode-performance\r\nm-lap-us-3\r\nm-init-done\r\nm-ready\r\n"
    )
    with pytest.raises(DutReset):
        dut.command("infer 5 0")


def test_error_lines_raise_with_the_dut_text(peer_client) -> None:
    _, dut = peer_client(lambda cmd: b"e-[Inference iterations must be >0]\r\nm-ready\r\n")
    with pytest.raises(DutCommandError, match="iterations must be >0"):
        dut.command("infer 0 0")


def test_old_dut_without_extensions_falls_back_to_hex(peer_client) -> None:
    def script(cmd: str) -> bytes:
        if cmd.startswith("db load"):
            return f"m-[Expecting {cmd.split()[2]} bytes]\r\nm-ready\r\n".encode()
        if cmd.startswith("db "):
            return b"m-load-done\r\nm-ready\r\n" if len(cmd) < 66 else READY
        return b"e-[Unknown command: " + cmd.encode() + b"]\r\nm-ready\r\n"

    peer, dut = peer_client(script)
    assert dut.negotiate() is None
    data = bytes(range(70))
    dut.upload_input(data)
    chunks = [c[3:] for c in peer.commands if c.startswith("db ") and not c.startswith("db load")]
    assert [len(c) // 2 for c in chunks] == [31, 31, 8]
    assert bytes.fromhex("".join(chunks)) == data


# ---------------------------------------------------------------- reply checksums (xcrc)
def _signed(cmd: str, body: bytes) -> bytes:
    """A reply as a frugalbench DUT with checksums on sends it."""
    return body + f"m-crc-{zlib.crc32(cmd.encode() + body):08x}\r\n".encode() + READY


XSTAT = b"m-xstat-ticks-123456-hz-25000000-n-64\r\n"


def test_verify_crc_accepts_the_signed_reply_only() -> None:
    raw = _signed("xstat", XSTAT)
    assert verify_crc(b"xstat", raw) == XSTAT + READY
    with pytest.raises(ReplyCorrupt, match="checksum"):
        verify_crc(b"xres", raw)  # a stale reply to another command
    with pytest.raises(ReplyCorrupt, match="lacks"):
        verify_crc(b"xstat", XSTAT + READY)


def test_every_single_bit_flip_of_a_signed_reply_is_refused() -> None:
    def accept(raw: bytes) -> None:
        parse_reply(raw)
        verify_crc(b"xstat", raw)

    raw = _signed("xstat", XSTAT)
    accept(raw)
    for i in range(len(raw) - len(READY)):
        for bit in range(8):
            bad = bytearray(raw)
            bad[i] ^= 1 << bit
            with pytest.raises(ProtocolError):
                accept(bytes(bad))


def _crc_dut(corrupt: dict[str, int], xcrc: bool = True) -> Callable[[str], bytes | None]:
    """A scripted frugalbench DUT: ``corrupt[cmd]`` replies to ``cmd`` get one bit flipped first."""
    state = {"crc": False}
    answers = {
        "name": b"m-name-dut-[frugalbench]\r\n",
        "ext": b"m-ext-[fb1]\r\nm-ext-bulk-[db,model]\r\nm-ext-limits-[model=4096,db=1024,act=64]\r\n"
        b"m-ext-tick-hz-25000000\r\n",
        "xstat": XSTAT,
        "xres": b"m-xres-0a0b0c\r\n",
    }

    def script(cmd: str) -> bytes:
        if cmd == "xcrc 1" and xcrc:
            state["crc"] = True
            body = b"m-xcrc-on\r\n"
        else:
            body = answers.get(cmd, b"e-[Unknown command: " + cmd.encode() + b"]\r\n")
        out = bytearray(_signed(cmd, body) if state["crc"] else body + READY)
        if corrupt.get(cmd, 0) > 0:
            corrupt[cmd] -= 1
            out[12] ^= 0x04  # one bit on the reply path: still printable ASCII
        return bytes(out)

    return script


def test_corrupted_results_are_asked_again_never_returned(peer_client) -> None:
    peer, dut = peer_client(_crc_dut({"xstat": 1, "xres": 2}))
    ext = dut.negotiate()
    assert ext is not None and ext.crc and dut.crc
    assert dut.xstat() == (123456, 25000000, 64)
    assert dut.xres(3).tolist() == [10, 11, 12]
    assert peer.commands.count("xstat") == 2 and peer.commands.count("xres") == 3
    assert dut.corrupt_replies == 3


def test_a_flip_that_stays_well_formed_is_caught_only_by_the_checksum(peer_client) -> None:
    _, dut = peer_client(_crc_dut({}))
    dut.negotiate()
    # without the checksum the flipped reply parses as a different, plausible value
    flipped = bytearray(XSTAT)
    flipped[16] ^= 0x01  # '3' -> '2' in the tick count
    plain = parse_reply(bytes(flipped) + READY).value("m-xstat-")
    assert plain.startswith("ticks-122456")
    with pytest.raises(ReplyCorrupt):
        verify_crc(b"xstat", bytes(flipped) + _signed("xstat", XSTAT)[len(XSTAT) :])


def test_xstat_with_another_tick_rate_is_refused(peer_client) -> None:
    _, dut = peer_client(_crc_dut({}))
    dut.negotiate()
    assert dut.ext is not None
    dut.ext.tick_hz = 1000  # as if the DUT now reported another clock than it negotiated
    with pytest.raises(ProtocolError, match="failed after 3 attempts.*negotiated 1000 Hz"):
        dut.xstat()


def test_a_corrupted_name_during_open_is_asked_again(peer_client) -> None:
    sent = {"n": 0}

    def script(cmd: str) -> bytes:
        if cmd == "name":
            sent["n"] += 1
            return b"m-name-dut_[x]\r\nm-ready\r\n" if sent["n"] == 1 else b"m-name-dut-[x]\r\nm-ready\r\n"
        return b"e-[Unknown command: " + cmd.encode() + b"]\r\nm-ready\r\n"

    peer, dut = peer_client(script)
    assert dut.name() == "dut-[x]" and peer.commands.count("name") == 2


def test_older_frugalbench_dut_without_checksums_still_works(peer_client) -> None:
    peer, dut = peer_client(_crc_dut({}, xcrc=False))
    ext = dut.negotiate()
    assert ext is not None and not ext.crc and not dut.crc
    assert dut.xstat() == (123456, 25000000, 64)
    assert peer.commands == ["ext", "xcrc 1", "xstat"]


def test_stock_dut_never_sees_the_checksum_command(peer_client) -> None:
    peer, dut = peer_client(lambda cmd: b"e-[Unknown command: " + cmd.encode() + b"]\r\nm-ready\r\n")
    assert dut.negotiate() is None and not dut.crc
    assert peer.commands == ["ext"]
