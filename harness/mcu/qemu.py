"""Start and always stop a QEMU Cortex-M machine (``mps2-an386`` by default; the board profile's
``qemu_machine`` otherwise: ``microbit``, ``mps2-an385/an500/an505``, ``mps3-an547``) running the firmware,
UART on a localhost TCP port.

QEMU runs with ``-icount shift=S`` (deterministic instruction counts) and ``nodelay=on`` on the
socket (no Nagle: about 1 ms per reply instead of 44 ms). ``wait=on``: the board starts only once a
client is connected, so the boot banner is never printed into an unconnected socket (measured here:
with ``wait=off`` it is sometimes lost). The process is stopped by ``stop()``,
the context manager, an ``atexit`` hook, and (Linux) by the kernel if Python dies
(PR_SET_PDEATHSIG), so a Ctrl-C never leaves a QEMU behind.

``activity``: the ``socket://HOST:PORT`` of a bench twin (:mod:`harness.emulators.twin`). QEMU connects
its second UART there as a client, and the firmware reports on it, in virtual time, its marker edges
and sleep intervals (what a power meter on a real board would see); the twin must be listening first.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import time
import weakref
from pathlib import Path

from ..errors import TargetError, TargetUnavailable

APT_HINT = "apt-get install -y --no-install-recommends qemu-system-arm"
_LIVE: weakref.WeakSet[QemuDut] = weakref.WeakSet()


def qemu_missing() -> str | None:
    if shutil.which("qemu-system-arm") is None:
        return f"qemu-system-arm not found; install with: {APT_HINT}"
    return None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _listening(port: int) -> bool:
    """True when 127.0.0.1:port is in LISTEN state (reads /proc/net/tcp; Linux only)."""
    want = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp") as f:
            return any(p[1] == want and p[3] == "0A" for p in (line.split() for line in f) if len(p) > 3)
    except OSError:
        return True  # not Linux: fall back to the caller's connection retries


def activity_chardev(url: str) -> str:
    """QEMU's client chardev for a ``socket://HOST:PORT`` URL (``tcp:HOST:PORT``)."""
    host, sep, port = url.removeprefix("socket://").rpartition(":")
    if not url.startswith("socket://") or not sep or not port.isdigit():
        raise TargetError(f"activity URL must be socket://HOST:PORT (a bench twin's), not {url!r}")
    return f"tcp:{host or '127.0.0.1'}:{port}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class QemuDut:
    """One emulated board. ``url`` is a ``socket://`` URL for ``serial.serial_for_url``.

    Example:
        >>> with QemuDut(elf) as q:  # doctest: +SKIP
        ...     port = serial.serial_for_url(q.url, timeout=5)
    """

    def __init__(
        self,
        elf: Path,
        *,
        machine: str = "mps2-an386",
        icount_shift: int | None = 0,
        preload: list[tuple[Path, int]] | None = None,
        start_timeout_s: float = 10.0,
        port: int | None = None,
        monitor: Path | None = None,
        activity: str | None = None,
    ) -> None:
        self.elf = Path(elf)
        self.machine = machine
        self.icount_shift = icount_shift
        self.preload = list(preload or [])
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.fixed_port = port
        self.monitor_path = monitor
        self.activity = activity
        self.port = 0

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def argv(self, port: int) -> list[str]:
        mon = f"unix:{self.monitor_path},server=on,wait=off" if self.monitor_path else "none"
        argv = ["qemu-system-arm", "-M", self.machine, "-display", "none", "-monitor", mon]
        if self.icount_shift is not None:
            argv += ["-icount", f"shift={self.icount_shift}"]
        argv += ["-kernel", str(self.elf), "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on"]
        for path, addr in self.preload:
            argv += ["-device", f"loader,file={path},addr={addr:#x},force-raw=on"]
        if self.activity:
            argv += ["-serial", f"{activity_chardev(self.activity)},nodelay=on"]
        return argv

    def start(self) -> str:
        """Start QEMU and wait until its serial port is listening; returns the URL.

        Readiness is seen in /proc/net/tcp (a probe connection would steal the boot banner).
        """
        if self.alive():
            return self.url
        why = qemu_missing()
        if why:
            raise TargetUnavailable(why)
        if not self.elf.exists():
            raise TargetError(f"firmware {self.elf} does not exist; build it with make -C boards/firmware")
        if self.activity:
            # QEMU opens the activity chardev only once a client is on the UART (wait=on): check first
            host_port = activity_chardev(self.activity).split(":")
            if host_port[1] in ("127.0.0.1", "localhost") and not _listening(int(host_port[2])):
                raise TargetError(
                    f"no bench twin listening at {self.activity}: start it first (frugalbench emulate twin)"
                )
        last = ""
        for _ in range(1 if self.fixed_port else 5):  # a free port may be taken first: retry
            port = self.fixed_port or _free_port()
            self.proc = subprocess.Popen(
                self.argv(port),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=_die_with_parent,
                start_new_session=True,  # Ctrl-C reaches Python, which stops QEMU in order
            )
            _LIVE.add(self)
            deadline = time.monotonic() + self.start_timeout_s
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last = (self.proc.stderr.read() if self.proc.stderr else b"").decode(errors="replace")
                    break
                if _listening(port):
                    self.port = port
                    return self.url
                time.sleep(0.005)
            else:
                self.stop()
                raise TargetError(f"QEMU did not open its serial port within {self.start_timeout_s} s")
            if "Address already in use" not in last and "Failed to" not in last:
                break
        self.stop()
        raise TargetError(f"QEMU failed to start ({' '.join(self.argv(0))}): {last.strip()[-500:]}")

    def open_serial(self, timeout_s: float = 5.0):  # -> serial.SerialBase
        """Open the UART with ``serial.serial_for_url`` (starting QEMU first if needed)."""
        import serial

        if not self.alive():
            self.start()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return serial.serial_for_url(self.url, timeout=1.0)
            except serial.SerialException as e:
                if time.monotonic() > deadline or not self.alive():
                    raise TargetError(f"cannot open {self.url}: {e}") from e
                time.sleep(0.01)

    def monitor(self, command: str, timeout_s: float = 5.0) -> str:
        """Send one HMP command (``system_reset``, ``stop``, ``cont``...) to the QEMU monitor."""
        if self.monitor_path is None:
            raise TargetError("this QEMU was started without a monitor socket (monitor=path)")
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout_s)
            s.connect(str(self.monitor_path))
            s.sendall(command.encode() + b"\n")
            buf = b""
            deadline = time.monotonic() + timeout_s
            while buf.count(b"(qemu)") < 2 and time.monotonic() < deadline:
                try:
                    chunk = s.recv(4096)
                except TimeoutError:
                    break
                if not chunk:
                    break
                buf += chunk
        return buf.decode(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Terminate QEMU (SIGTERM, then SIGKILL after 3 s). Idempotent."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def __enter__(self) -> QemuDut:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    for q in list(_LIVE):
        q.stop()
