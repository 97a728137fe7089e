"""Two farm "hosts" as two network stacks: network namespaces made by this test, joined by one veth pair
whose two addresses exist only inside those namespaces (no other address is contacted).

Namespace A holds the coordinator, the client (`frugalbench farm run`) and host ``na``; namespace B holds
host ``nb``. Every result must name its place and come over the right address. Skips unless root with
``ip netns`` (CI runs as root).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_farm_peers import MISSING, REPO, write_suite

from harness.farm.lgsession import labgrid_tool


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


def _netns_missing() -> str | None:
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"fbprobe{os.getpid()}"
    r = _ip("netns", "add", probe)
    if r.returncode != 0:
        return f"`ip netns add` failed: {r.stderr.strip()}"
    _ip("netns", "del", probe)
    return None


WHY = MISSING or _netns_missing()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(WHY is not None, reason=f"farm netns: {WHY}")]


@pytest.fixture
def netns() -> Iterator[tuple[str, str, str, str]]:
    tag = f"fb{os.getpid() % 100000}"
    a, b, va, vb = f"{tag}A", f"{tag}B", f"{tag}a", f"{tag}b"
    octet = random.randint(16, 250)
    addr_a, addr_b = f"10.231.{octet}.1", f"10.231.{octet}.2"
    steps = [
        ("netns", "add", a),
        ("netns", "add", b),
        ("link", "add", va, "type", "veth", "peer", "name", vb),
        ("link", "set", va, "netns", a),
        ("link", "set", vb, "netns", b),
        ("-n", a, "addr", "add", f"{addr_a}/30", "dev", va),
        ("-n", b, "addr", "add", f"{addr_b}/30", "dev", vb),
        ("-n", a, "link", "set", va, "up"),
        ("-n", b, "link", "set", vb, "up"),
        ("-n", a, "link", "set", "lo", "up"),
        ("-n", b, "link", "set", "lo", "up"),
    ]
    try:
        for s in steps:
            r = _ip(*s)
            assert r.returncode == 0, f"ip {' '.join(s)}: {r.stderr}"
        yield a, b, addr_a, addr_b
    finally:
        for ns in (a, b):
            pids = _ip("netns", "pids", ns).stdout.split()
            for pid in pids:  # only what this test started inside its own namespaces
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
            _ip("netns", "del", ns)


def _in(ns: str, *cmd: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as f:
        return subprocess.Popen(
            ["ip", "netns", "exec", ns, *cmd], cwd=REPO, stdout=f, stderr=subprocess.STDOUT
        )


def test_two_hosts_in_two_network_namespaces(netns: tuple[str, str, str, str], tmp_path: Path) -> None:
    a, b, addr_a, addr_b = netns
    coord = f"{addr_a}:20408"
    work = tmp_path
    procs = [_in(a, labgrid_tool("labgrid-coordinator"), "-l", coord, log=work / "coord.log")]
    time.sleep(1.0)
    for ns, name, bind in ((a, "na", addr_a), (b, "nb", addr_b)):
        procs.append(
            _in(
                ns,
                sys.executable,
                "-m",
                "harness.farm.emuhost",
                "--coordinator",
                coord,
                "--name",
                name,
                "--boards",
                "1",
                "--bind",
                bind,
                "--workdir",
                str(work / name),
                log=work / f"{name}.log",
            )
        )
    try:
        suite = write_suite(work / "s.toml", "netns", 4)
        (work / "farm.toml").write_text('[[boards]]\nboard = "qemu-mps2-an386"\nplaces = ["na-0", "nb-0"]\n')
        cmd = [
            sys.executable,
            "-m",
            "harness.cli.main",
            "farm",
            "run",
            str(suite),
            "--coordinator",
            coord,
            "--db",
            str(work / "r.sqlite"),
            "--profile",
            str(work / "farm.toml"),
            "--wait",
            "60",
        ]
        client = ["ip", "netns", "exec", a, labgrid_tool("labgrid-client"), "-x", coord]
        deadline = time.monotonic() + 90
        while True:  # both hosts registered their places and their boards are online
            places = subprocess.run([*client, "places"], capture_output=True, text=True, timeout=60).stdout
            online = subprocess.run([*client, "resources"], capture_output=True, text=True, timeout=60).stdout
            if all(f"{n}-0" in places and f"{n}/{n}-b0/NetworkSerialPort" in online for n in ("na", "nb")):
                break
            assert time.monotonic() < deadline, places + online
            time.sleep(0.3)
        r = subprocess.run(
            ["ip", "netns", "exec", a, *cmd], cwd=REPO, capture_output=True, text=True, timeout=300
        )
        assert r.returncode == 0, r.stderr + "".join((work / f).read_text() for f in ("na.log", "nb.log"))
        with sqlite3.connect(work / "r.sqlite") as c:
            rows = [json.loads(p) for (p,) in c.execute("SELECT provenance FROM results WHERE status='done'")]
        assert len(rows) == 4
        urls = {p["farm_place"]: p["farm_serial_url"] for p in rows}
        assert set(urls) == {"na-0", "nb-0"}
        assert urls["na-0"].startswith(f"socket://{addr_a}:") and urls["nb-0"].startswith(
            f"socket://{addr_b}:"
        )
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
