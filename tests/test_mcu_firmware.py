"""The firmware under QEMU mps2-an386: EEMBC protocol verbatim, bit-exact runtime, faults, determinism."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import serial
from mcu_support import KINDS, build, needs_qemu, open_dut, random_model

from harness.mcu import reference
from harness.mcu.blob import codec
from harness.mcu.build import build_firmware
from harness.mcu.protocol import DutClient, DutCommandError, ReplyCorrupt, parse_infer, verify_crc
from harness.mcu.qemu import QemuDut

pytestmark = [pytest.mark.slow, needs_qemu]


@pytest.fixture(scope="module")
def elf() -> Path:
    return build()


@pytest.fixture(scope="module")
def dut(elf: Path) -> Iterator[DutClient]:
    """One QEMU for the whole module."""
    for _, client in open_dut(elf):
        yield client


def test_nucleo_port_builds() -> None:
    elf = build("nucleo-l4r5zi")
    assert elf.exists() and (elf.parent / "fw.bin").stat().st_size > 4096


def test_eembc_commands_verbatim(dut: DutClient) -> None:
    assert dut.command("name").lines == ["m-name-dut-[frugalbench]"]
    prof = dut.command("profile").lines
    assert prof[0] == "m-profile-[ULPMark for tinyML Firmware V0.0.1]" and prof[1].startswith("m-model-[")
    assert int(dut.command("timestamp").value("m-lap-us-")) >= 0
    assert dut.command("db load 10").lines == ["m-[Expecting 10 bytes]"]
    assert dut.command("db 00010203040506").lines == []
    assert dut.command("db 0708FF").lines == ["m-load-done"]
    assert dut.command("db print").lines == ["m-buffer-00-01-02-03-04-05-06-07", "m-buffer-08-ff"]
    assert dut.command("db load 0", allow_error=True).errors == ["e-[Command 'db load' must be >0 bytes]"]
    assert dut.command("db 123", allow_error=True).errors == ["e-[Insufficent number of hex digits]"]
    assert dut.command("infer 0 0", allow_error=True).errors == ["e-[Inference iterations must be >0]"]
    assert dut.command("bogus", allow_error=True).errors == ["e-[Unknown command: bogus]"]
    assert dut.command("x" * 120, allow_error=True).errors[0].startswith("e-[Unknown command")


def test_help_text_and_overlong_command(dut: DutClient) -> None:
    text = dut.help()  # free text as in the reference firmware (not m- lines)
    assert any("infer N W" in line for line in text) and any("load N" in line for line in text)
    dut._write(b"y" * 300 + b"%")
    assert dut.read_reply().errors == ["e-[Command too long]"]


@pytest.mark.parametrize("kind", KINDS)
def test_bit_exact_with_reference(dut: DutClient, kind: str) -> None:
    rng = np.random.default_rng(100 + KINDS.index(kind))
    net, opts = random_model(kind, rng)
    x = rng.normal(size=(48, net.in_dim)).astype(np.float32)
    data = codec.export_blob(net, x[:32], **opts)  # type: ignore[arg-type]
    qm = codec.read_blob(data)
    info = dut.bulk("model", data).value("m-model-info-")
    assert f"bytes={len(data)}" in info and f"crc={zlib.crc32(data[16:]):08x}" in info
    xq = qm.quantize_input(x)
    dut.bulk("db", xq.tobytes())
    got = dut.xbatch(len(xq), qm.out_dim)
    assert np.array_equal(got, reference.run(qm, xq))
    # the standard EEMBC path on one row: infer + m-results (3 decimals) + xres (raw int8)
    dut.upload_input(xq[3].tobytes())
    res = dut.infer(2, 1)
    assert np.array_equal(dut.xres(qm.out_dim), got[3])
    assert np.allclose(res.results, reference.results_vector(qm, got[3]), atol=2e-3)


def test_portable_kernels_compute_the_same_integers(elf: Path) -> None:
    rng = np.random.default_rng(7)
    port_elf = build(portable=True)
    for _, dut in open_dut(port_elf):
        for kind in ("dense-wide", "monarch", "monarch-wide", "butterfly", "bsr4", "csr"):
            net, opts = random_model(kind, rng)
            x = rng.normal(size=(16, net.in_dim)).astype(np.float32)
            data = codec.export_blob(net, x, **opts)  # type: ignore[arg-type]
            qm = codec.read_blob(data)
            dut.bulk("model", data)
            dut.bulk("db", qm.quantize_input(x).tobytes())
            assert np.array_equal(dut.xbatch(16, qm.out_dim), reference.run(qm, qm.quantize_input(x))), kind


def test_bad_crc_and_bad_blobs_are_refused(dut: DutClient) -> None:
    net, _ = random_model("dense", np.random.default_rng(3))
    good = codec.export_blob(net, np.ones((4, net.in_dim), np.float32))
    # wire CRC wrong: the DUT says so (the client would retry; here we send the header by hand)
    dut._write(f"bulk model {len(good)} {zlib.crc32(good) ^ 1:08x}%".encode())
    assert dut._read_until(b"\r\n", 5, at_line_start=False).strip() == b"m-bulk-go"
    dut._write(good)
    r = dut.read_reply()
    assert r.errors and "CRC mismatch" in r.errors[0]
    # blob's own CRC wrong (corrupt file, correct transfer): refused by the runtime
    bad = bytearray(good)
    bad[-1] ^= 0x55
    with pytest.raises(DutCommandError, match="model: blob CRC mismatch"):
        dut.bulk("model", bytes(bad))
    assert dut.command("infer 1 0", allow_error=True).errors[0].startswith("e-[No model loaded")
    with pytest.raises(DutCommandError, match="exceed the model area"):
        dut.bulk("model", bytes(3 * 1024 * 1024))


def test_instruction_count_is_deterministic_across_fresh_boots(elf: Path) -> None:
    net, _ = random_model("dense-wide", np.random.default_rng(11))
    data = codec.export_blob(net, np.random.default_rng(1).normal(size=(8, net.in_dim)).astype(np.float32))
    qm = codec.read_blob(data)
    counts = []
    for _ in range(2):
        for _, dut in open_dut(elf):
            dut.bulk("model", data)
            dut.upload_input(qm.quantize_input(np.full((1, net.in_dim), 0.3)).tobytes())
            dut.infer(100, 2)
            counts.append(dut.xstat())
    assert counts[0] == counts[1] and counts[0][0] > 0


def test_reset_banner_is_seen_mid_infer(elf: Path, tmp_path: Path) -> None:
    net, _ = random_model("dense-wide", np.random.default_rng(12))
    data = codec.export_blob(net, np.ones((2, net.in_dim), np.float32))
    for q, dut in open_dut(elf, monitor=tmp_path / "mon"):
        dut.bulk("model", data)
        dut.upload_input(bytes(net.in_dim))
        dut._write(b"infer 2000000 0%")
        q.monitor("system_reset")
        raw = dut._read_until(b"m-ready\r\n", 10)
        assert b"m-init-done" in raw  # the host sees the boot banner instead of the infer reply


def test_reply_checksums_only_after_xcrc_and_they_verify(elf: Path) -> None:
    """Plain EEMBC bytes until a host asks for checksums; then every reply carries a valid m-crc line."""
    q = QemuDut(elf)
    port = q.open_serial()
    try:
        dut = DutClient(port, timeout_s=5.0)
        dut.wait_banner()
        dut._write(b"name%")
        assert dut._read_until(b"m-ready\r\n", 5) == b"m-name-dut-[frugalbench]\r\nm-ready\r\n"
        ext = dut.negotiate()
        assert ext is not None and ext.crc and dut.crc
        for cmd in (b"name", b"xstat", b"bogus", b"timestamp"):
            dut._write(cmd + b"%")
            raw = dut._read_until(b"m-ready\r\n", 5)
            body = verify_crc(cmd, raw)  # raises on a missing or wrong checksum
            assert raw != body and body.endswith(b"m-ready\r\n")
            with pytest.raises(ReplyCorrupt):
                verify_crc(b"x" + cmd, raw)  # the checksum covers the command it answers
        dut._write(b"xcrc 0%")
        assert dut._read_until(b"m-ready\r\n", 5).startswith(b"m-xcrc-off\r\nm-crc-")
        dut._write(b"name%")
        assert dut._read_until(b"m-ready\r\n", 5) == b"m-name-dut-[frugalbench]\r\nm-ready\r\n"
    finally:
        port.close()
        q.stop()


def test_infer_reply_matches_mlperf_sequence(dut: DutClient) -> None:
    net, _ = random_model("dense", np.random.default_rng(5))
    data = codec.export_blob(net, np.ones((2, net.in_dim), np.float32), head="argmax")
    dut.bulk("model", data)
    dut.upload_input(bytes(net.in_dim))
    r = dut.command("infer 3 2", timeout_s=10)
    assert r.lines[:3] == ["m-warmup-start-2", "m-warmup-done", "m-infer-start-3"]
    assert r.lines[3].startswith("m-lap-us-") and r.lines[4].startswith("m-lap-us-")
    assert r.lines[5] == "m-infer-done" and r.lines[6].startswith("m-results-[")
    res = parse_infer(r, 3, 2)
    assert sorted(res.results.tolist())[-1] == 1.0 and res.results.sum() == 1.0  # argmax head: one-hot
    assert dut.command("results").lines == [r.lines[6]]


def test_model_built_into_flash_serves_a_plain_eembc_host(tmp_path: Path) -> None:
    """What the MLCommons runner does: no extensions, hex input, infer, m-results."""
    rng = np.random.default_rng(8)
    net, opts = random_model("dense", rng)
    x = rng.normal(size=(8, net.in_dim)).astype(np.float32)
    data = codec.export_blob(net, x, head="softmax", model_id="ic01")
    (tmp_path / "m.blob").write_bytes(data)
    elf = build_firmware("qemu-mps2-an386", model_blob=tmp_path / "m.blob")
    qm = codec.read_blob(data)
    q = QemuDut(elf)
    port = q.open_serial()
    try:
        dut = DutClient(port)
        dut.wait_banner()
        assert dut.profile()[1] == "ic01"
        xq = qm.quantize_input(x[:1])
        dut.db_load_hex(xq.tobytes())  # no negotiate(): the plain EEMBC path
        res = dut.infer(3, 1)
        want = reference.results_vector(qm, reference.run(qm, xq)[0])
        assert np.allclose(res.results, want, atol=2e-3)
    finally:
        port.close()
        q.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_qemu_dies_with_its_python_on_ctrl_c_or_kill(elf: Path, sig: int) -> None:
    # The child stands for a user's Python program that stops on Ctrl-C: it starts with SIGINT at its
    # default even when this test runs with SIGINT ignored (nohup, CI runners), as a terminal gives it.
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(elf=str(elf))],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    try:
        qemu_pid = int(child.stdout.readline())  # type: ignore[union-attr]
        os.kill(qemu_pid, 0)  # running
        child.send_signal(sig)
        child.wait(10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(qemu_pid):
            time.sleep(0.05)
        assert not _alive(qemu_pid)
    finally:
        child.kill()


def _default_sigint() -> None:  # runs in the child between fork and exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _ignore_sigint() -> None:  # runs in the child between fork and exec
    signal.signal(signal.SIGINT, signal.SIG_IGN)


CHILD = """
import time
from pathlib import Path
from harness.mcu.qemu import QemuDut
q = QemuDut(Path({elf!r}))
q.start()
print(q.proc.pid, flush=True)
with q:
    time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_qemu_is_stopped_on_exit(elf: Path) -> None:
    q = QemuDut(elf)
    q.start()
    proc = q.proc
    assert proc is not None and proc.poll() is None
    q.stop()
    assert proc.poll() is not None


def test_dut_start_command_serves_a_board_until_ctrl_c(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-c", "from harness.cli.main import main; main()", "dut", "start", "--port", str(port)]
    # started as a background job is (nohup, CI runners): SIGINT ignored; `dut start` still stops on it
    child = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=_ignore_sigint
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # the CLI imports, builds (up to date) and starts QEMU
            try:
                dut_port = serial.serial_for_url(f"socket://127.0.0.1:{port}", timeout=1)
                break
            except serial.SerialException:
                assert child.poll() is None and time.monotonic() < deadline, "dut start did not come up"
                time.sleep(0.2)
        dut = DutClient(dut_port)
        dut.wait_banner()
        assert dut.name() == "dut-[frugalbench]"
        dut_port.close()
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=20)
        assert "QEMU stopped" in out
    finally:
        child.kill()
