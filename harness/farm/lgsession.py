"""Talk to a labgrid coordinator through :mod:`lgbridge` running in labgrid's own Python.

``find_labgrid()`` locates that Python: ``$FRUGALBENCH_LABGRID_PYTHON``, then ``.venv-farm`` beside the
project (created by ``.ci/install``), then the current interpreter if labgrid is importable there (the
``farm`` extra installed into the same venv). :class:`LabgridSession` keeps one bridge process (one
gRPC session) for the whole run; every call has a timeout and a dead bridge raises, never hangs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CoordinatorUnreachable, FarmError, LabgridMissing, PlaceHeld, PlaceNotFound

REPO = Path(__file__).resolve().parents[2]
BRIDGE = Path(__file__).with_name("lgbridge.py")
LABGRID_VERSION = "26.0.1"
INSTALL_HINT = (
    f"python3 -m venv .venv-farm && .venv-farm/bin/pip install 'labgrid=={LABGRID_VERSION}' "
    "(its own venv: labgrid's pyserial-labgrid owns the same `serial` module as pyserial), "
    "or set FRUGALBENCH_LABGRID_PYTHON to a Python that has labgrid"
)


def find_labgrid() -> Path:
    """The Python interpreter that has labgrid installed, or :class:`LabgridMissing`."""
    env = os.environ.get("FRUGALBENCH_LABGRID_PYTHON")
    if env:
        if not Path(env).exists():
            raise LabgridMissing(f"FRUGALBENCH_LABGRID_PYTHON={env} does not exist; {INSTALL_HINT}")
        return Path(env)
    venv = REPO / ".venv-farm" / "bin" / "python"
    if venv.exists():
        return venv
    if importlib.util.find_spec("labgrid") is not None:
        return Path(sys.executable)
    raise LabgridMissing(f"labgrid is not installed; {INSTALL_HINT}")


def labgrid_tool(name: str) -> str:
    """Path of a labgrid command (``labgrid-coordinator``, ``labgrid-exporter``) beside its Python."""
    cand = find_labgrid().parent / name
    if cand.exists():
        return str(cand)
    found = shutil.which(name)
    if found is None:
        raise LabgridMissing(f"{name} not found; {INSTALL_HINT}")
    return found


@dataclass(frozen=True)
class Resource:
    """One exported resource as the coordinator sees it."""

    exporter: str
    group: str
    name: str
    cls: str
    params: dict[str, Any]
    avail: bool
    acquired: str | None

    @property
    def path(self) -> tuple[str, str, str, str]:
        return (self.exporter, self.group, self.cls, self.name)


@dataclass(frozen=True)
class PlaceInfo:
    """One place: its tags, match patterns and who holds it (``host/user`` or ``None``)."""

    name: str
    tags: dict[str, str]
    matches: list[str]
    acquired: str | None
    acquired_resources: list[tuple[str, ...]] = field(default_factory=list)
    comment: str = ""


@dataclass(frozen=True)
class Snapshot:
    places: dict[str, PlaceInfo]
    resources: list[Resource]
    me: str


def _snapshot(reply: dict[str, Any], me: str) -> Snapshot:
    places = {
        n: PlaceInfo(
            n,
            dict(p.get("tags") or {}),
            list(p.get("matches") or []),
            p.get("acquired"),
            [tuple(r) for r in p.get("acquired_resources") or []],
            str(p.get("comment") or ""),
        )
        for n, p in reply.get("places", {}).items()
    }
    res = [
        Resource(
            r["exporter"], r["group"], r["name"], r["cls"], dict(r["params"]), bool(r["avail"]), r["acquired"]
        )
        for r in reply.get("resources", [])
    ]
    return Snapshot(places, res, str(reply.get("me", me)))


class LabgridSession:
    """One client session with a coordinator (``HOST:PORT``). Thread-safe; use as a context manager.

    ``user``/``host`` set labgrid's ``LG_USERNAME``/``LG_HOSTNAME`` (who appears as the holder).
    """

    def __init__(
        self,
        address: str,
        *,
        timeout_s: float = 20.0,
        user: str | None = None,
        host: str | None = None,
        python: Path | None = None,
    ) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._buf = b""
        self._seq = 0
        self.held: set[str] = set()
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)  # the bridge must see labgrid's serial, never ours
        if user:
            env["LG_USERNAME"] = user
        if host:
            env["LG_HOSTNAME"] = host
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [str(python or find_labgrid()), str(BRIDGE), address],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            env=env,
            start_new_session=True,  # Ctrl-C goes to us; we release, then close the bridge
        )
        self._sel = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)
        first = self._read(timeout_s + 10)
        if not first.get("ok"):
            self.close()
            raise CoordinatorUnreachable(
                f"cannot reach the labgrid coordinator at {address} ({first.get('error', 'no answer')}); "
                f"start one with `labgrid-coordinator -l {address}` or pass --coordinator HOST:PORT of a running one"
            )
        self.me = str(first.get("me", ""))

    # ------------------------------------------------------------ transport
    def _stderr(self) -> str:
        self._err.seek(0)
        return self._err.read().decode(errors="replace")[-800:]

    def _read(self, timeout_s: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CoordinatorUnreachable(
                    f"the labgrid coordinator at {self.address} did not answer within {timeout_s:.0f} s"
                )
            if not self._sel.select(min(left, 0.5)):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise CoordinatorUnreachable(
                    f"the labgrid bridge for {self.address} exited: {self._stderr().strip() or 'no message'}"
                )
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return dict(json.loads(line))

    def call(self, op: str, **kw: Any) -> dict[str, Any]:
        """One request to the bridge; raises on an error reply (kinds: held, unknown_place, ...)."""
        with self._lock:
            if self.proc.poll() is not None or self.proc.stdin is None:
                raise CoordinatorUnreachable(f"the labgrid session with {self.address} is closed")
            self._seq += 1
            try:
                self.proc.stdin.write(json.dumps({"op": op, "id": self._seq, **kw}).encode() + b"\n")
                self.proc.stdin.flush()
            except OSError as e:
                raise CoordinatorUnreachable(f"the labgrid bridge for {self.address} died: {e}") from None
            reply = self._read(self.timeout_s)
            while reply.get("id") != self._seq:  # the answer to a call that was interrupted: skip it
                reply = self._read(self.timeout_s)
        if reply.get("ok"):
            return reply
        kind, err = reply.get("kind"), str(reply.get("error"))
        if kind == "held":
            raise PlaceHeld(
                f"{err}; labgrid refuses a place someone else holds: wait, ask them to release it, "
                "or use another place",
                str(reply.get("holder", "")),
            )
        if kind == "unknown_place":
            raise PlaceNotFound(f"{err} on the coordinator {self.address}")
        if kind == "unreachable":
            raise CoordinatorUnreachable(f"lost the labgrid coordinator at {self.address}: {err}")
        raise FarmError(f"labgrid {op} failed: {err}")

    # ------------------------------------------------------------ operations
    def snapshot(self) -> Snapshot:
        return _snapshot(self.call("snapshot"), self.me)

    def acquire(self, place: str) -> Snapshot:
        """Lock ``place`` for this session; :class:`PlaceHeld` if someone else has it."""
        reply = self.call("acquire", place=place)
        self.held.add(place)
        return _snapshot(reply, self.me)

    def release(self, place: str) -> None:
        self.call("release", place=place)
        self.held.discard(place)

    def create_place(self, place: str, patterns: list[str], tags: dict[str, str] | None = None) -> None:
        """Create (if needed) a place matching ``patterns`` (``exporter/group/cls``) with ``tags``."""
        self.call("create", place=place)
        self.call("add_match", place=place, patterns=patterns)
        if tags:
            self.call("set_tags", place=place, tags=tags)

    def close(self) -> None:
        """Release what this session holds (the bridge releases too when its stdin closes)."""
        for place in sorted(self.held):
            with contextlib.suppress(FarmError):
                self.release(place)
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._sel.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._err.close()

    def __enter__(self) -> LabgridSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
