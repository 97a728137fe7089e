"""A Linux board (Raspberry Pi...) over SSH: a pushed agent answers the MLPerf Tiny line protocol.

Flow: ``open()`` connects with strict host-key checking, pushes ``harness/agent/board_agent.py``
(content-addressed, skipped when the board already holds it), starts it under the board's Python,
checks the runtime, applies core pinning and the governor. ``load()`` pushes the variant file the
same way. Inference time comes from the board's ``time.monotonic_ns``; the host measures the
board − host clock offset around every window and maps the window onto the host clock for energy.
A lost link during a window raises :class:`WindowInvalid` (the runner re-runs it); the next call
reconnects.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
from pydantic import Field, model_validator

from ..agent.client import AgentClient, AgentError, ClockSample, LinkLostError
from ..errors import StateError, TargetError, WindowInvalid
from ..ir.model import Variant
from ..mcu.board import find_board_file, known_boards
from .artefact import Artefact, ArtefactFile
from .base import TARGETS, Target, TargetConfig, Window

if TYPE_CHECKING:
    from ..agent.session import Pusher

log = logging.getLogger(__name__)

T = TypeVar("T")
# the artefact each board runtime loads (the agent's runtimes are not host Runtime classes)
RUNTIME_ARTEFACT = {"ort": Artefact.ONNX, "litert": Artefact.TFLITE, "tflite-runtime": Artefact.TFLITE}
# the agent falls back between the two TFLite interpreters (same .tflite files, same kernels)
RUNTIME_ACCEPTS = {
    "ort": ["ort"],
    "litert": ["litert", "tflite-runtime"],
    "tflite-runtime": ["tflite-runtime", "litert"],
}
PIP_NAME = {"ort": "onnxruntime", "litert": "ai-edge-litert", "tflite-runtime": "tflite-runtime"}
# vcgencmd get_throttled: bits 0-3 = now (under-voltage, freq capped, throttled, soft temp limit),
# bits 16-19 = the same events since boot.
THROTTLE_NOW = 0x0000F
THROTTLE_SINCE_BOOT = 0xF0000
THROTTLE_NAMES = {
    0: "under-voltage",
    1: "arm-frequency-capped",
    2: "throttled",
    3: "soft-temperature-limit",
}
PREDICT_CHUNK_BYTES = 1 << 20


def resolve_board_file(path: str) -> Path:
    """A board profile path: absolute, else relative to the working directory, else a packaged profile
    (``raspberry-pi-5`` or ``boards/raspberry-pi-5.toml``)."""
    found = find_board_file(path)
    if found is None:
        raise ValueError(
            f"board profile {path} not found (looked in {Path.cwd()} and the packaged boards: "
            f"{', '.join(known_boards())})"
        )
    return found if found.is_absolute() else Path.cwd() / found


class SshConfig(TargetConfig):
    """A suite ``[[targets]]`` entry of kind ``ssh``; ``board`` names a profile whose keys are defaults.

    Example suite entry::

        [[targets]]
        name = "pi5"
        kind = "ssh"
        board = "boards/raspberry-pi-5.toml"
        host = "pi5.local"      # any key below overrides the profile
    """

    board: str | None = Field(None, description="board profile (boards/*.toml); its keys are defaults")
    label: str = Field("", description="human name of the board, e.g. 'Raspberry Pi 5'")
    expect_model: str | None = Field(None, description="text expected in /proc/device-tree/model")
    host: str = ""
    port: int = Field(22, ge=1, le=65535)
    user: str = ""
    key: str | None = Field(None, description="private key file; default: ssh-agent and ~/.ssh keys")
    known_hosts: str = "~/.ssh/known_hosts"
    python: str = Field("python3", description="Python on the board (a venv's bin/python works)")
    runtime: Literal["ort", "litert", "tflite-runtime"] = "ort"
    threads: int = Field(1, ge=1)
    batch: int = Field(1, ge=1)
    cores: list[int] | None = Field(None, description="pin the agent to these cores")
    governor: str | None = Field(None, description="cpufreq governor to apply, e.g. 'performance'")
    governor_required: bool = Field(False, description="fail if the governor cannot be set")
    workdir: str = Field("~/.cache/frugalbench", description="cache folder on the board")
    vcgencmd: str | None = Field(None, description="vcgencmd path; default: found on the board's PATH")
    pmic: bool = Field(False, description="Pi 5: log vcgencmd pmic_read_adc as a secondary counter")
    pmic_period_ms: int = Field(200, ge=20)
    meter: dict[str, Any] | None = Field(None, description="meter table used when the suite says 'auto'")
    connect_timeout_s: float = Field(15.0, gt=0)
    reply_timeout_s: float = Field(60.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _merge_board(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("board"):
            return data
        path = resolve_board_file(str(data["board"]))
        try:
            profile = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"board profile {path}: {exc}") from None
        allowed = set(cls.model_fields) - {"name", "kind", "board"}
        unknown = sorted(set(profile) - allowed)
        if unknown:
            raise ValueError(f"board profile {path}: unknown keys {unknown} (allowed: {sorted(allowed)})")
        return {**profile, **data, "board": str(path)}

    @model_validator(mode="after")
    def _required(self) -> SshConfig:
        if not self.host or not self.user:
            raise ValueError(
                "an ssh target needs 'host' and 'user' (in the board profile or the suite entry)"
            )
        return self


@TARGETS.register("ssh")
class SshTarget(Target):
    """Runs variants on a Linux board through the pushed agent."""

    kind = "ssh"
    Config = SshConfig
    config: SshConfig

    def __init__(self, config: SshConfig) -> None:  # type: ignore[override]
        super().__init__(config)
        self._ssh: Any = None
        self._chan: Any = None
        self.agent: AgentClient | None = None
        self.pusher: Pusher | None = None
        self.board: dict[str, Any] = {}
        self.loaded: dict[str, Any] = {}
        self.notes: dict[str, Any] = {}
        self.clock: ClockSample | None = None
        self._variant: Variant | None = None
        self._artefact: ArtefactFile | None = None
        self._inputs: np.ndarray | None = None
        self._per_call_s: float | None = None
        self._lost = False
        self._restore_governor: str | None = None
        self.reconnects = 0

    @classmethod
    def availability(cls) -> str | None:
        try:
            import paramiko  # noqa: F401
        except ImportError:
            return "paramiko is not installed: pip install paramiko"
        return None

    @property
    def artefact(self) -> Artefact:
        """The file format of the configured board runtime (ONNX for ``ort``, else TFLite)."""
        return RUNTIME_ARTEFACT[self.config.runtime]

    def supports(self, variant: Variant) -> str | None:
        if variant.path(self.artefact.value) is None:
            return f"variant has no .{self.artefact.value} file, which runtime {self.config.runtime} needs"
        return None

    # ------------------------------------------------------------ lifecycle
    def open(self) -> None:
        if self.agent is not None:
            return
        from ..agent.session import SshParams, connect  # paramiko only when a board is used

        c = self.config
        params = SshParams(c.host, c.port, c.user, c.key, c.known_hosts, c.connect_timeout_s)
        self._ssh = connect(params)
        try:
            self._start(c)
        except BaseException:
            self._drop()
            raise
        self._lost = False

    def _start(self, c: SshConfig) -> None:
        from ..agent.session import Pusher, host_key_fingerprint, remote_path, start_agent

        sftp = self._ssh.open_sftp()
        self.pusher = Pusher(sftp, remote_path(c.workdir))
        agent_path = self.pusher.push_agent()
        self._chan, self.agent = start_agent(self._ssh, c.python, agent_path, c.reply_timeout_s)
        agent = self.agent
        reaped = agent.reap()  # an agent left running by a dropped link would share our cores
        if reaped:
            self.notes["reaped_stale_agents"] = self.notes.get("reaped_stale_agents", []) + reaped
            log.warning("%s: stopped %d stale agent(s) on the board: %s", c.name, len(reaped), reaped)
        self._check_runtime(agent.runtimes())
        if c.cores:
            self.notes["pinned"] = agent.pin(c.cores)
        if c.vcgencmd is not None:
            agent.set_vcgencmd(c.vcgencmd)
        self.notes.pop("governor_error", None)
        if c.governor:
            try:
                before = agent.state().get("governors") or []
                agent.governor(c.governor)
                if len(before) == 1 and before[0] != c.governor:
                    self._restore_governor = before[0]
            except AgentError as exc:
                if c.governor_required:
                    raise
                self.notes["governor_error"] = str(exc)
                log.warning("%s: %s", c.name, exc)
        self.notes.pop("pmic_error", None)
        if c.pmic:
            try:
                agent.pmic(c.pmic_period_ms)
            except AgentError as exc:  # a secondary figure: record why it is absent, go on
                self.notes["pmic_error"] = str(exc)
                log.warning("%s: %s", c.name, exc)
        self.board = agent.info()
        self.board["host_key"] = host_key_fingerprint(self._ssh)
        self.clock = agent.clock_offset()

    def _check_runtime(self, found: dict[str, str]) -> None:
        c = self.config
        wanted = RUNTIME_ACCEPTS[c.runtime]
        missing = []
        if found.get("numpy", "missing") == "missing":
            missing.append("numpy")
        if all(found.get(r, "missing") == "missing" for r in wanted):
            missing.append(PIP_NAME[c.runtime])
        if missing:
            fallback = (
                " (on a 32-bit OS where ai-edge-litert has no wheel, install tflite-runtime instead)"
                if c.runtime == "litert"
                else ""
            )
            raise TargetError(
                f"the board {c.host} lacks {', '.join(missing)} for {c.python}; install with: "
                f"{c.python} -m pip install {' '.join(missing)}{fallback}"
            )

    def load(self, variant: Variant, artefact: ArtefactFile) -> None:
        if artefact.kind is not self.artefact:
            raise TargetError(
                f"variant {variant.name}: runtime {self.config.runtime} loads {self.artefact.value} files, "
                f"was given {artefact.kind.value}"
            )
        self._twice("load", lambda: self._load(variant, artefact))

    def _load(self, variant: Variant, artefact: ArtefactFile) -> None:
        agent, pusher = self._need_agent(), self.pusher
        assert pusher is not None
        path = artefact.path
        remote, sha = pusher.push_model(Path(path), agent)
        c = self.config
        self.loaded = agent.load(c.runtime, c.threads, c.batch, remote)
        self.loaded.update(remote_path=remote, variant=variant.name, file=str(path))
        if self.loaded.get("sha256") != sha:
            raise TargetError(
                f"the board loaded {remote} with sha256 {self.loaded.get('sha256')}, expected {sha}"
            )
        self._variant, self._artefact = variant, artefact
        self._per_call_s = None
        if self._inputs is not None:
            agent.set_input(self._inputs)

    def set_inputs(self, x: np.ndarray) -> None:
        """Rows that timed windows cycle through (the eval set, at most 64 batches)."""
        rows = max(1, min(len(x), 64 * self.config.batch))
        self._inputs = np.ascontiguousarray(np.asarray(x, dtype=np.float32)[:rows])
        if (self.agent is not None or self._lost) and self._variant is not None:
            inputs = self._inputs
            self._twice("set_inputs", lambda: self._need_agent().set_input(inputs))

    def close(self) -> None:
        if self.agent is not None and not self._lost:
            if self._restore_governor:  # leave the board as we found it (best effort)
                with contextlib.suppress(TargetError):
                    self.agent.governor(self._restore_governor)
            self.agent.quit()
        self._restore_governor = None
        self._drop()

    def _drop(self) -> None:
        for obj in (self._chan, self.pusher.sftp if self.pusher else None, self._ssh):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # closing a dead link may fail any way; nothing to do
                    log.debug("close failed", exc_info=True)
        self._chan = self._ssh = self.agent = self.pusher = None

    def _need_agent(self) -> AgentClient:
        if self._lost:
            self._reconnect()
        if self.agent is None:
            raise StateError("the ssh target is not open: call open() first")
        return self.agent

    def _reconnect(self) -> None:
        """Open again (``_lost`` stays set if that fails, so the next call retries) and reload."""
        log.warning("%s: reconnecting to %s after a lost link", self.config.name, self.config.host)
        self._drop()
        self.reconnects += 1
        self.open()  # clears _lost on success
        if self._variant is not None and self._artefact is not None:
            self._load(self._variant, self._artefact)

    def _twice(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn``; after a lost link reconnect once and run it again (not for timed windows)."""
        try:
            return fn()
        except LinkLostError as exc:
            self._lose(exc)
        try:
            return fn()
        except LinkLostError as exc:
            self._lose(exc)
            raise TargetError(f"the link to {self.config.host} failed twice during {what}: {exc}") from None

    def _lose(self, exc: Exception) -> None:
        self._lost = True
        self._drop()
        log.warning("%s: link lost: %s", self.config.name, exc)

    # ------------------------------------------------------------ accuracy pass
    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self._variant is None:
            raise StateError("no model loaded: call load(variant) first")
        row_bytes = max(1, int(np.prod(x.shape[1:])) * 4)
        step = max(
            self.config.batch, PREDICT_CHUNK_BYTES // row_bytes // self.config.batch * self.config.batch
        )
        outs = [
            self._twice("predict", functools.partial(self._predict_chunk, x[i : i + step]))
            for i in range(0, len(x), step)
        ]
        return np.concatenate(outs) if outs else np.zeros((0,), dtype=np.float32)

    def _predict_chunk(self, chunk: np.ndarray) -> np.ndarray:
        return self._need_agent().predict(chunk)

    # ------------------------------------------------------------ timed windows
    def _calibrate(self, agent: AgentClient) -> float:
        k = 1
        while True:
            res = agent.infer(k, 0, self.config.reply_timeout_s)
            dt = (res.t1_us - res.t0_us) / 1e6
            if dt >= 0.05 or k >= 1_000_000:
                return max(dt / k, 1e-7)
            k = min(1_000_000, k * 10 if dt < 0.005 else math.ceil(k * 0.06 / max(dt, 1e-6)))

    def window(self, duration_s: float, *, warmup_s: float = 0.0) -> Window:
        if self._variant is None:
            raise StateError("no model loaded: call load(variant) first")
        try:
            agent = self._need_agent()
        except TargetError as exc:
            raise WindowInvalid(f"cannot reach the board {self.config.host} for this window: {exc}") from None
        try:
            return self._window(agent, duration_s, warmup_s)
        except LinkLostError as exc:
            self._lose(exc)
            raise WindowInvalid(
                f"link to {self.config.host} lost mid-window ({exc}); the window is discarded and re-run"
            ) from None

    def _window(self, agent: AgentClient, duration_s: float, warmup_s: float) -> Window:
        c = self.config
        if self._per_call_s is None:
            self._per_call_s = self._calibrate(agent)
        per_call = self._per_call_s
        n_calls = max(1, round(duration_s / per_call))
        n_warm = math.ceil(warmup_s / per_call) if warmup_s > 0 else 0
        before = agent.state()
        clk0 = agent.clock_offset()
        res = agent.infer(n_calls, n_warm, (duration_s + warmup_s) * 3 + c.reply_timeout_s)
        clk1 = agent.clock_offset()
        after = agent.state()
        laps = agent.laps_ns()
        pmic = agent.pmic_read() if c.pmic else None
        if len(laps) != n_calls:
            raise WindowInvalid(f"the agent timed {len(laps)} calls, expected {n_calls}")
        offset = (clk0.offset_s + clk1.offset_s) / 2
        self.clock = clk1
        dut_s = (res.t1_us - res.t0_us) / 1e6
        self._per_call_s = max(dut_s / n_calls, 1e-7)
        b = c.batch
        per_inf = laps.astype(np.float64) * 1e-9 / b
        lat = np.repeat(per_inf, b) if b > 1 else per_inf
        extra: dict[str, Any] = {
            "clock": "board time.monotonic_ns",
            "marker_method": "host-clock",
            "clock_offset_s": offset,
            "clock_rtt_s": max(clk0.rtt_s, clk1.rtt_s),
            "clock_drift_s": clk1.offset_s - clk0.offset_s,
            "board_t0_us": res.t0_us,
            "board_t1_us": res.t1_us,
            "n_calls": n_calls,
            "warmup_calls": n_warm,
            "batch": b,
            **_thermal(before, after),
        }
        if pmic is not None:
            extra.update(_pmic_energy(pmic, res.t0_us * 1000, res.t1_us * 1000))
        return Window(
            n=n_calls * b,
            t_start=res.t0_us / 1e6 - offset,
            t_end=res.t1_us / 1e6 - offset,
            latencies_s=lat,
            dut_s=dut_s,
            extra=extra,
        )

    # ------------------------------------------------------------ provenance
    def info(self) -> dict[str, Any]:
        c, b = self.config, self.board
        detected = b.get("board_model", "unknown")
        out: dict[str, Any] = {
            "target": c.name,
            "target_kind": "ssh",
            "board": detected if detected != "unknown" else (c.label or c.host),
            "board_model": detected,
            "board_model_source": b.get("board_model_source"),
            "board_label": c.label,
            "board_profile": c.board,
            "board_host": f"{c.user}@{c.host}:{c.port}",
            "host_key": b.get("host_key"),
            "isa": b.get("machine"),
            "cpu_features": b.get("cpu_features"),
            "cpu": b.get("cpu"),
            "cpu_count": b.get("cpu_count"),
            "kernel": b.get("kernel"),
            "os": b.get("os"),
            "python": b.get("python"),
            "numpy": b.get("numpy"),
            "governor": ",".join(b.get("governors") or []) or None,
            "governor_requested": c.governor,
            "cores": c.cores,
            "affinity": b.get("affinity"),
            "runtime": self.loaded.get("runtime", c.runtime),
            "runtime_version": self.loaded.get("runtime_version"),
            "threads": c.threads,
            "batch": c.batch,
            "agent_version": b.get("agent_version"),
            "agent_sha256": b.get("agent_sha256"),
            "clock": "board time.monotonic_ns",
            "clock_offset_s": self.clock.offset_s if self.clock else None,
            "clock_rtt_s": self.clock.rtt_s if self.clock else None,
            "reconnects": self.reconnects,
            **self.notes,
        }
        if c.expect_model:
            out["board_model_matches_profile"] = c.expect_model.lower() in detected.lower()
        return out

    def default_meter(self) -> dict[str, Any] | None:
        return dict(self.config.meter) if self.config.meter else None


def _max_temp(state: dict[str, Any]) -> float | None:
    temps = state.get("temps_c") or {}
    return max(temps.values()) if temps else None


def throttle_flags(value: int | None) -> list[str]:
    """Names of the throttling conditions set now (bits 0-3) in a ``get_throttled`` value."""
    if value is None:
        return []
    return [name for bit, name in THROTTLE_NAMES.items() if value & (1 << bit)]


def window_throttled(before: int | None, after: int | None) -> bool:
    """True if throttling was active at either end or a since-boot bit appeared during the window."""
    if before is None and after is None:
        return False
    b, a = before or 0, after or 0
    return bool((b | a) & THROTTLE_NOW) or bool((a & ~b) & THROTTLE_SINCE_BOOT)


def _thermal(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    tb, ta = before.get("throttled"), after.get("throttled")
    return {
        "temp_before_c": _max_temp(before),
        "temp_after_c": _max_temp(after),
        "temps_before_c": before.get("temps_c"),
        "temps_after_c": after.get("temps_c"),
        "throttled_before": None if tb is None else hex(tb),
        "throttled_after": None if ta is None else hex(ta),
        "throttled": window_throttled(tb, ta),
        "throttle_flags": sorted(set(throttle_flags(tb)) | set(throttle_flags(ta))),
        "governors": after.get("governors"),
    }


def _pmic_energy(pmic: dict[str, Any], t0_ns: int, t1_ns: int) -> dict[str, Any]:
    """Trapezoid energy of the PMIC samples clipped to the window (a secondary ``counter`` figure)."""
    t = np.asarray(pmic.get("t_ns") or [], dtype=np.float64)
    w = np.asarray(pmic.get("w") or [], dtype=np.float64)
    out: dict[str, Any] = {
        "pmic_samples": len(t),
        "pmic_energy_class": "counter",
        "pmic_boundary": "Raspberry Pi 5 PMIC rails (sum of V*I)",
    }
    if len(t) < 2:
        out["pmic_energy_j"] = None
        return out
    grid = np.concatenate([[t0_ns], t[(t > t0_ns) & (t < t1_ns)], [t1_ns]])
    p = np.interp(grid, t, w)  # held flat beyond the first/last sample
    out["pmic_energy_j"] = float(np.sum((p[1:] + p[:-1]) / 2 * np.diff(grid)) * 1e-9)
    out["pmic_mean_w"] = float(np.mean(w))
    return out


__all__ = ["SshConfig", "SshTarget", "throttle_flags", "window_throttled"]
