"""The farm against real peers: a labgrid coordinator, exporters ("hosts") exporting QEMU boards that run
our firmware (TCP serial, nodelay=on, NetworkSerialPort), and the one SQLite store.

labgrid lives in its own venv (.venv-farm, made by .ci/install); the tests skip, saying how to install
it, where it or the MCU toolchain is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.farm.emuhost import EmuHost, LocalCoordinator
from harness.farm.errors import (
    CoordinatorUnreachable,
    LabgridMissing,
    NoFreePlace,
    PlaceHeld,
    PlaceMismatch,
    PlaceNotFound,
)
from harness.farm.lgsession import LabgridSession, find_labgrid, labgrid_tool
from harness.farm.profile import FarmProfile
from harness.farm.run import FarmOptions, FarmRunner, farm_run
from harness.mcu.build import toolchain_missing
from harness.mcu.qemu import qemu_missing
from harness.suite import load_suite

REPO = Path(__file__).resolve().parents[1]
BOARD = "qemu-mps2-an386"


def _labgrid_missing() -> str | None:
    try:
        find_labgrid()
    except LabgridMissing as e:
        return str(e)
    return None


MISSING = toolchain_missing() or qemu_missing() or _labgrid_missing()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(MISSING is not None, reason=f"farm peers: {MISSING}")]

SUITE = """
[suite]
name = "farm-{tag}"
[run]
warmup_s = 0.0
window_s = 0.01
min_windows = 2
max_windows = 2
ci_target = 0.5
time_budget_s = 30
[[tasks]]
name = "digits"
recipe = "digits_mlp"
recipe_params = {{ hidden = [32] }}
min_accuracy = 0.5
[[variants]]
name = "int8"
technique = "int8"
{prunes}
[[targets]]
name = "m4"
kind = "mcu"
board = "qemu-mps2-an386"
"""


def write_suite(path: Path, tag: str, n_variants: int) -> Path:
    prunes = "".join(
        f'[[variants]]\nname = "p{i}"\n'
        f'steps = [{{ technique = "prune-weights", sparsity = {0.1 * i:.1f} }}, {{ technique = "int8" }}]\n'
        for i in range(1, n_variants)
    )
    path.write_text(SUITE.format(tag=tag, prunes=prunes), encoding="utf-8")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def coordinator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    c = LocalCoordinator(tmp_path_factory.mktemp("coordinator")).start()
    yield c.address
    c.stop()


@pytest.fixture(scope="module")
def host_a(coordinator: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmuHost]:
    """One exporter exporting two QEMU boards (places a-0, a-1)."""
    h = EmuHost(coordinator, "a", 2, tmp_path_factory.mktemp("host-a")).start()
    yield h
    h.stop()


def _profile(*places: str) -> FarmProfile:
    return FarmProfile(boards=[{"board": BOARD, "places": list(places)}])


def _rows(db: Path) -> list[dict]:
    with contextlib.closing(sqlite3.connect(db)) as c:
        c.row_factory = sqlite3.Row
        return [dict(r) for r in c.execute("SELECT * FROM results ORDER BY id")]


def _holder(coordinator: str, place: str) -> str | None:
    with LabgridSession(coordinator) as s:
        return s.snapshot().places[place].acquired


# ---------------------------------------------------------------------------------------------------
def test_unreachable_coordinator_says_how_to_fix() -> None:
    t = time.monotonic()
    with pytest.raises(CoordinatorUnreachable) as e:
        LabgridSession(f"127.0.0.1:{_free_port()}")
    assert "labgrid-coordinator -l" in str(e.value) and "--coordinator" in str(e.value)
    assert time.monotonic() - t < 30  # refused, not hung


def test_second_client_is_refused_a_held_place(coordinator: str, host_a: EmuHost) -> None:
    with LabgridSession(coordinator) as alice, LabgridSession(coordinator, user="bob", host="h2") as bob:
        alice.acquire("a-0")
        with pytest.raises(PlaceHeld) as e:
            bob.acquire("a-0")
        assert alice.me in str(e.value) and e.value.holder == alice.me
        alice.release("a-0")
        bob.acquire("a-0")  # free again: bob gets it
        assert _holder(coordinator, "a-0") == "h2/bob"
    assert _holder(coordinator, "a-0") is None  # closing the session released it


def test_places_are_released_when_the_client_is_killed(coordinator: str, host_a: EmuHost) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from harness.farm.lgsession import LabgridSession
        s = LabgridSession({coordinator!r})
        s.acquire("a-1")
        print("held", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=REPO)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"held"
        assert _holder(coordinator, "a-1") is not None
    finally:
        proc.kill()  # SIGKILL: no Python cleanup runs; the bridge sees its stdin close
        proc.wait()
    deadline = time.monotonic() + 20
    while _holder(coordinator, "a-1") is not None:
        assert time.monotonic() < deadline, "a killed client left its place locked"
        time.sleep(0.1)


def test_unknown_and_mismatched_places_are_refused_before_locking(
    coordinator: str, host_a: EmuHost, tmp_path: Path
) -> None:
    suite = load_suite(write_suite(tmp_path / "s.toml", "bad", 1))
    with pytest.raises(PlaceNotFound, match="nope.*known places: .*a-0"):
        farm_run(suite, FarmOptions(coordinator, tmp_path / "r.sqlite", profile=_profile("nope")))
    with LabgridSession(coordinator) as s:
        s.create_place("both", ["a/*/NetworkSerialPort"])  # two boards' serial ports in one place
        s.create_place("l4", ["a/a-b0/NetworkSerialPort"], {"board": "nucleo-l4r5zi"})
    with pytest.raises(PlaceMismatch, match="2 serial ports"):
        farm_run(suite, FarmOptions(coordinator, tmp_path / "r.sqlite", profile=_profile("a-0", "both")))
    with pytest.raises(PlaceMismatch, match="tagged board=nucleo-l4r5zi"):
        farm_run(suite, FarmOptions(coordinator, tmp_path / "r.sqlite", profile=_profile("l4")))
    assert _holder(coordinator, "a-0") is None


def test_no_free_place_waits_visibly_then_fails_clearly(
    coordinator: str, host_a: EmuHost, tmp_path: Path
) -> None:
    suite = load_suite(write_suite(tmp_path / "s.toml", "busy", 1))
    said: list[str] = []
    with LabgridSession(coordinator, user="bob", host="h2") as bob:
        bob.acquire("a-0")
        bob.acquire("a-1")
        opts = FarmOptions(
            coordinator, tmp_path / "r.sqlite", profile=_profile("a-0", "a-1"), wait_s=2, poll_s=0.2
        )
        with pytest.raises(NoFreePlace) as e:
            farm_run(suite, opts, on_status=said.append)
    assert "a-0 held by h2/bob" in str(e.value) and "--wait" in str(e.value)
    assert any(s.startswith("waiting for a free place of board qemu-mps2-an386") for s in said)
    st = json.loads((tmp_path / "r.sqlite.farm.json").read_text())
    assert st["state"] == "failed" and st["pending"] == ["digits/int8 on m4"]


def test_lost_host_mid_run_requeues_and_every_result_is_stored_once(
    coordinator: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("kill")
    c = EmuHost(coordinator, "c", 1, work / "c").start()
    d = EmuHost(coordinator, "d", 1, work / "d").start()
    try:
        n = 5
        suite = load_suite(write_suite(work / "s.toml", "kill", n))
        db = work / "r.sqlite"
        runner = FarmRunner(suite, FarmOptions(coordinator, db, profile=_profile("c-0", "d-0"), poll_s=0.2))
        out: list[object] = []
        th = threading.Thread(target=lambda: out.append(_run_or_error(runner)))
        th.start()
        status = db.with_name(db.name + ".farm.json")
        deadline = time.monotonic() + 120
        while True:  # kill host c while it runs its second job
            assert time.monotonic() < deadline and th.is_alive(), f"no job on c-0: {out}"
            st = json.loads(status.read_text()) if status.exists() else {}
            place = st.get("places", {}).get("c-0", {})
            if place.get("done", 0) >= 1 and place.get("state") == "running":
                c.kill()
                break
            time.sleep(0.02)
        th.join(180)
        summary = out[0]
        assert not isinstance(summary, BaseException), summary
        rows = _rows(db)
        assert len(rows) == n and len({r["job_key"] for r in rows}) == n
        assert {r["variant"] for r in rows} == {"int8"} | {f"p{i}" for i in range(1, n)}
        assert all(r["status"] == "done" for r in rows), [r["reason"] for r in rows]
        prov = [json.loads(r["provenance"]) for r in rows]
        assert {p["farm_place"] for p in prov} == {"c-0", "d-0"}
        assert {p["farm_exporter"] for p in prov} == {"c", "d"} and all(p["farm_exporter_host"] for p in prov)
        moved = [p for p in prov if p["farm_attempt"] == 2]
        assert moved and all(p["farm_places_tried"] == ["c-0", "d-0"] for p in moved)
        assert summary.places_lost == ["c-0"] and summary.requeued >= 1  # type: ignore[attr-defined]
        # each finished job is timed once, on the place that finished it (the lost attempt is not a job time)
        times = summary.job_s  # type: ignore[attr-defined]
        assert sum(len(v) for v in times.values()) == n and set(times) <= {"c-0", "d-0"}
        assert all(t > 0 for v in times.values() for t in v) and set(summary.open_s) == {"c-0", "d-0"}  # type: ignore[attr-defined]
        assert _holder(coordinator, "d-0") is None and _holder(coordinator, "c-0") is None
    finally:
        c.kill()
        d.stop()


def _run_or_error(runner: FarmRunner) -> object:
    try:
        return runner.run()
    except BaseException as e:  # noqa: BLE001 - handed to the test thread
        return e


def test_cli_ctrl_c_releases_and_rerun_resumes(coordinator: str, host_a: EmuHost, tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "s.toml", "resume", 4)
    (tmp_path / "farm.toml").write_text(f'[[boards]]\nboard = "{BOARD}"\nplaces = ["a-0", "a-1"]\n')
    db = tmp_path / "r.sqlite"
    cmd = [
        sys.executable,
        "-m",
        "harness.cli.main",
        "farm",
        "run",
        str(suite),
        "--coordinator",
        coordinator,
        "--db",
        str(db),
        "--profile",
        str(tmp_path / "farm.toml"),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "farm.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, cwd=REPO, stderr=f, stdout=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (db.exists() and _count_done(db) >= 1):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    first = _count_done(db)
    assert rc == 130 or first == 4, log.read_text()
    assert _holder(coordinator, "a-0") is None and _holder(coordinator, "a-1") is None, log.read_text()
    code, _out, err = _cli(cmd[3:])  # the same command again, in this process
    assert code == 0, err
    assert f"{first} already done" in err
    rows = _rows(db)
    assert len(rows) == 4 and all(r["status"] == "done" for r in rows)
    code, out, _err = _cli(["farm", "status", "--coordinator", coordinator, "--db", str(db)])
    assert code == 0 and "a-0" in out and "done" in out, out


def _cli(args: list[str]) -> tuple[int, str, str]:
    """Run ``frugalbench ARGS`` through harness.cli.main.main() here; returns (exit code, stdout, stderr)."""
    import io

    from harness.cli import main as cli

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["frugalbench", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.console.file = err
            try:
                cli.main()
            except SystemExit as e:
                code = int(e.code or 0)
    finally:
        sys.argv = argv
        cli.console.file = None  # type: ignore[assignment]  # back to the live sys.stderr
    return code, out.getvalue(), err.getvalue()


def _count_done(db: Path) -> int:
    """A reader in another process, as `frugalbench report` during a farm run would be."""
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=5)) as c:
            return int(c.execute("SELECT COUNT(*) FROM results WHERE status='done'").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_cli_unreachable_coordinator_exits_with_one_line(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "s.toml", "x", 1)
    args = [
        "farm",
        "run",
        str(suite),
        "--coordinator",
        f"127.0.0.1:{_free_port()}",
        "--db",
        str(tmp_path / "r.db"),
    ]
    code, _out, err = _cli(args)
    assert code == 2 and "cannot reach the labgrid coordinator" in err and "Traceback" not in err, err


def test_core_serial_code_works_with_labgrids_pyserial_fork(tmp_path: Path) -> None:
    """The fork (pyserial-labgrid) in labgrid's venv drives our firmware with the core protocol client."""
    py = find_labgrid()
    probe = subprocess.run(
        [str(py), "-c", "import serial, numpy; print(serial.__file__)"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        pytest.skip(f"labgrid's venv lacks numpy for this check: {probe.stderr.strip()[-200:]}")
    from harness.mcu.build import build_firmware
    from harness.mcu.qemu import QemuDut

    script = textwrap.dedent("""
        import sys, importlib.metadata as md, serial
        from harness.mcu.protocol import DutClient
        port = serial.serial_for_url(sys.argv[1], timeout=1)
        dut = DutClient(port, timeout_s=5)
        dut.resync()
        print(md.version("pyserial-labgrid"), dut.name(), dut.negotiate() is not None)
    """)
    with QemuDut(build_firmware(BOARD)) as q:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        r = subprocess.run(
            [str(py), "-c", script, q.url],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            env={**env, "PYTHONPATH": str(REPO)},
        )
    assert r.returncode == 0, r.stderr
    version, name, ext = r.stdout.split()
    assert version.startswith("3.5") and name.startswith("dut-[") and ext == "True"


def test_a_job_that_loses_every_place_is_stored_failed_after_bounded_attempts(
    coordinator: str, tmp_path: Path
) -> None:
    """Two places whose boards never answer (exporter up, nothing behind the serial port)."""
    ports = [_free_port(), _free_port()]  # nothing listens there
    yaml = "".join(
        f"dead-b{i}:\n  NetworkSerialPort: {{host: 127.0.0.1, port: {p}, speed: 115200, protocol: raw}}\n"
        for i, p in enumerate(ports)
    )
    (tmp_path / "dead.yaml").write_text(yaml)
    with open(tmp_path / "exporter.log", "wb") as log:
        exporter = subprocess.Popen(
            [labgrid_tool("labgrid-exporter"), "-c", coordinator, "-n", "dead", str(tmp_path / "dead.yaml")],
            stdout=log,
            stderr=log,
        )
    try:
        with LabgridSession(coordinator) as s:
            for i in range(2):
                s.create_place(f"dead-{i}", [f"dead/dead-b{i}/NetworkSerialPort"])
            deadline = time.monotonic() + 30
            while sum(r.exporter == "dead" and r.avail for r in s.snapshot().resources) < 2:
                assert time.monotonic() < deadline and exporter.poll() is None
                time.sleep(0.1)
        suite = load_suite(write_suite(tmp_path / "s.toml", "dead", 1))
        opts = FarmOptions(
            coordinator, tmp_path / "r.sqlite", profile=_profile("dead-0", "dead-1"), attempts=2
        )
        summary = farm_run(suite, opts)
        rows = _rows(tmp_path / "r.sqlite")
        assert len(rows) == 1 and rows[0]["status"] == "failed"
        assert "failed on 2 place attempt(s) (dead-0, dead-1)" in rows[0]["reason"]
        assert sorted(summary.places_lost) == ["dead-0", "dead-1"] and summary.failed == 1
        assert _holder(coordinator, "dead-0") is None and _holder(coordinator, "dead-1") is None
    finally:
        exporter.terminate()
        exporter.wait(10)


@pytest.mark.skipif(shutil.which("ser2net") is None, reason="ser2net not installed (apt-get install ser2net)")
def test_raw_serial_port_through_ser2net(coordinator: str, tmp_path: Path) -> None:
    """A board on a tty (QEMU -serial pty) exported as RawSerialPort: labgrid starts ser2net on acquire and
    the farm reaches it over rfc2217:// (the way a USB board on a farm host is exported)."""
    from harness.mcu.build import build_firmware
    from harness.mcu.qemu import QemuDut

    argv = QemuDut(build_firmware(BOARD)).argv(1)
    argv[argv.index("-serial") + 1] = "pty"
    qemu = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    exporter = None
    try:
        assert qemu.stdout is not None
        m = re.search(rb"(/dev/pts/\d+)", qemu.stdout.readline())
        assert m, "QEMU did not print its pty"
        (tmp_path / "tty.yaml").write_text(
            f"tty:\n  RawSerialPort: {{port: {m.group(1).decode()}, speed: 115200}}\n"
        )
        with open(tmp_path / "exporter.log", "wb") as log:
            exporter = subprocess.Popen(
                [
                    labgrid_tool("labgrid-exporter"),
                    "-c",
                    coordinator,
                    "-n",
                    "ttyhost",
                    str(tmp_path / "tty.yaml"),
                ],
                stdout=log,
                stderr=log,
            )
        with LabgridSession(coordinator) as s:
            s.create_place("tty-0", ["ttyhost/tty/NetworkSerialPort"])
            deadline = time.monotonic() + 30
            while not any(r.exporter == "ttyhost" and r.avail for r in s.snapshot().resources):
                assert time.monotonic() < deadline and exporter.poll() is None
                time.sleep(0.1)
        suite = load_suite(write_suite(tmp_path / "s.toml", "tty", 1))
        summary = farm_run(suite, FarmOptions(coordinator, tmp_path / "r.sqlite", profile=_profile("tty-0")))
        rows = _rows(tmp_path / "r.sqlite")
        assert summary.done == 1 and rows[0]["status"] == "done", rows[0]["reason"]
        assert (
            len(summary.job_s["tty-0"]) == 1 and summary.per_job_s("tty-0") == summary.job_s["tty-0"][0] > 0
        )
        prov = json.loads(rows[0]["provenance"])
        assert prov["farm_serial_url"].startswith("rfc2217://") and prov["farm_resource"].endswith(
            "/RawSerialPort"
        )
        assert _holder(coordinator, "tty-0") is None
    finally:
        if exporter is not None:
            exporter.terminate()
            exporter.wait(10)
        qemu.terminate()
        qemu.wait(10)
