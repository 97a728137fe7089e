#!/usr/bin/env python3
"""frugalbench board agent: pushed to a Linux board over SSH and driven over the SSH channel.

It speaks the EEMBC / MLPerf Tiny DUT line protocol (commands end with ``%``; replies are ``\\r\\n``
lines, messages start ``m-``, errors ``e-``, every reply ends with ``m-ready``): ``name%``,
``profile%``, ``help%``, ``timestamp%``, ``db load N%``, ``db <hex>%``, ``infer N W%`` (with
``m-lap-us-`` timestamps from the board's ``time.monotonic_ns``) and ``results%``. Linux extensions
start with ``x-`` (see ``HELP``); paths travel base64-encoded, tensors as base64 little-endian float32
with a shape such as ``128x64``, so no user data ever reaches a shell.

This file runs on the board with only the standard library, numpy and one inference runtime
(onnxruntime, ai-edge-litert or tflite-runtime). It must never import ``harness``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
import zlib

AGENT_VERSION = "1"
PROFILE = "frugalbench agent " + AGENT_VERSION
RUNTIME_MODULES = {"ort": "onnxruntime", "litert": "ai_edge_litert", "tflite-runtime": "tflite_runtime"}
RUNTIME_DISTS = {"ort": "onnxruntime", "litert": "ai-edge-litert", "tflite-runtime": "tflite-runtime"}
HELP = """\
name% profile% help% timestamp% results% db load N% db HEX% infer N W%
x-clock%                       m-clock-ns-<board monotonic ns>
x-runtimes%                    m-numpy-<version|missing>, m-runtime-<name>-<version|missing>
x-sha B64PATH%                 m-sha256-<hex> of a file on the board
x-pin 0,1,2%                   pin this process (and runtime threads created later) to cores
x-governor NAME%               set the cpufreq governor of every core
x-vcgencmd B64PATH%            where vcgencmd lives ('' disables throttle/PMIC readings)
x-load RUNTIME THREADS BATCH B64PATH%   load a model file; m-loaded-<b64 json>
x-input SHAPE B64F32%          inputs cycled over by infer (rows split into batches)
x-predict SHAPE B64F32%        m-pred-<shape>-<b64 f32> outputs for every row
x-laps%                        m-laps-ns-<u4z|i8z>-<b64 zlib> per-call ns of the last infer
x-state%                       m-state-<b64 json>: temperatures, throttling, governor
x-pmic PERIOD_MS%              sample vcgencmd pmic_read_adc during infer (0: off)
x-pmic-read%                   m-pmic-<b64 json> samples of the last infer
x-info%                        m-info-<b64 json>: board, CPU, kernel, versions
x-reap%                        stop older copies of this agent (dropped links)
x-quit%                        exit"""

np = None  # numpy, imported lazily so that a board without it still gets a clear message


class CommandError(Exception):
    """A command failed; the message goes back as ``e-[...]``."""


def b64e(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64d(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise CommandError("bad base64 payload: " + str(exc)) from None


def json_b64(obj: object) -> str:
    return b64e(json.dumps(obj, sort_keys=True).encode())


def dist_version(dist: str) -> str | None:
    try:
        from importlib import metadata

        return metadata.version(dist)
    except Exception:
        return None


def module_present(mod: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(mod) is not None
    except (ImportError, ValueError):
        return False


def need_numpy():
    global np
    if np is None:
        try:
            import numpy
        except ImportError:
            raise CommandError(
                "numpy is not installed for "
                + sys.executable
                + "; install it with: "
                + sys.executable
                + " -m pip install numpy"
            ) from None
        np = numpy
    return np


def parse_shape(text: str) -> tuple:
    try:
        shape = tuple(int(d) for d in text.split("x"))
    except ValueError:
        raise CommandError("bad shape " + repr(text) + " (expected e.g. 128x64)") from None
    if not shape or any(d < 0 for d in shape):
        raise CommandError("bad shape " + repr(text))
    return shape


def decode_f32(shape_text: str, payload: str):
    n = need_numpy()
    shape = parse_shape(shape_text)
    raw = b64d(payload)
    count = 1
    for d in shape:
        count *= d
    if len(raw) != 4 * count:
        raise CommandError(f"payload has {len(raw)} bytes, shape {shape_text} needs {4 * count}")
    return n.frombuffer(raw, dtype="<f4").reshape(shape)


def encode_f32(arr) -> str:
    n = need_numpy()
    a = n.ascontiguousarray(arr, dtype="<f4")
    return "x".join(str(d) for d in a.shape) + "-" + b64e(a.tobytes())


def read_text(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").replace("\x00", "").strip()
    except OSError:
        return None


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- board facts


def board_model() -> tuple:
    """(model, source): device tree, else DMI, else 'unknown'."""
    dt = read_text("/proc/device-tree/model")
    if dt:
        return dt, "device-tree"
    vendor = read_text("/sys/class/dmi/id/sys_vendor") or ""
    product = read_text("/sys/class/dmi/id/product_name") or ""
    dmi = (vendor + " " + product).strip()
    if dmi:
        return dmi, "dmi"
    return "unknown", "none"


def cpu_name() -> str:
    info = read_text("/proc/cpuinfo") or ""
    for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
        m = re.search(r"^" + re.escape(key) + r"\s*:\s*(.+)$", info, re.MULTILINE)
        if m:
            return m.group(1).strip()
    return platform.processor() or platform.machine() or "unknown"


def cpu_features() -> list:
    """ISA features that matter for inference kernels (NEON/ASIMD dot product, AVX2, VNNI...)."""
    info = read_text("/proc/cpuinfo") or ""
    m = re.search(r"^(?:Features|flags)\s*:\s*(.+)$", info, re.MULTILINE)
    if not m:
        return []
    keep = ("neon", "asimd", "asimddp", "i8mm", "sve", "avx2", "avx512f", "avx512_vnni", "avx_vnni", "fma")
    have = set(m.group(1).split())
    return [f for f in keep if f in have]


def os_name() -> str:
    text = read_text("/etc/os-release") or ""
    m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', text, re.MULTILINE)
    return m.group(1) if m else platform.system()


def cpu_dirs() -> list:
    base = "/sys/devices/system/cpu"
    try:
        names = os.listdir(base)
    except OSError:
        return []
    return sorted(
        (os.path.join(base, d) for d in names if re.fullmatch(r"cpu\d+", d)),
        key=lambda p: int(p[len(base) + 4 :]),
    )


def governors() -> dict:
    out = {}
    for d in cpu_dirs():
        g = read_text(os.path.join(d, "cpufreq", "scaling_governor"))
        if g:
            out[os.path.basename(d)] = g
    return out


def set_governor(name: str) -> list:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise CommandError("bad governor name " + repr(name))
    files = [os.path.join(d, "cpufreq", "scaling_governor") for d in cpu_dirs()]
    files = [f for f in files if os.path.exists(f)]
    if not files:
        raise CommandError("no cpufreq scaling_governor files on this board (cpufreq not exposed)")
    for f in files:
        try:
            with open(f, "w") as fh:
                fh.write(name)
        except OSError as exc:
            raise CommandError(
                f"cannot set governor {name} in {f}: {exc.strerror or exc} "
                f"(run the agent as root, or set it once with "
                f"'sudo cpupower frequency-set -g {name}')"
            ) from None
    return files


def temperatures() -> dict:
    out: dict[str, float] = {}
    base = "/sys/class/thermal"
    try:
        zones = sorted(z for z in os.listdir(base) if z.startswith("thermal_zone"))
    except OSError:
        return out
    for z in zones:
        t = read_text(os.path.join(base, z, "temp"))
        kind = read_text(os.path.join(base, z, "type")) or z
        try:
            out[kind if kind not in out else kind + "/" + z] = int(t or "") / 1000.0
        except (TypeError, ValueError):
            continue
    return out


def parse_throttled(text: str) -> int | None:
    """``throttled=0x50005`` → 0x50005."""
    m = re.search(r"throttled=(0x[0-9a-fA-F]+|\d+)", text or "")
    return int(m.group(1), 0) if m else None


def parse_pmic(text: str) -> float | None:
    """Sum of V·I over the rails that ``vcgencmd pmic_read_adc`` reports both for (watts)."""
    amps: dict[str, float] = {}
    volts: dict[str, float] = {}
    for m in re.finditer(
        r"^\s*(\S+?)_([AV])\s+(?:current|volt)\(\d+\)=([0-9.eE+-]+)\s*[AV]\s*$", text or "", re.MULTILINE
    ):
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        (amps if m.group(2) == "A" else volts)[m.group(1)] = value
    rails = set(amps) & set(volts)
    if not rails:
        return None
    return sum(amps[r] * volts[r] for r in rails)


def stale_agents(script: str) -> list:
    """Pids of other processes of this user running ``script`` (resolved against their cwd)."""
    out: list[int] = []
    me, uid = os.getpid(), os.getuid()
    try:
        pids = [int(d) for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return out
    for pid in pids:
        if pid == me:
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        for arg in argv[1:3]:  # python [-u] script
            path = os.path.join(cwd, arg.decode("utf-8", "surrogateescape"))
            if arg and not arg.startswith(b"-") and os.path.realpath(path) == script:
                out.append(pid)
                break
    return out


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Agent:
    """The command interpreter. ``handle`` maps one command to reply lines."""

    def __init__(self) -> None:
        self.vcgencmd = self._find_vcgencmd()
        self.runtime: Runner | None = None  # loaded runner
        self.model_name = "none"
        self.model_path = ""
        self.inputs: list = []
        self.db = bytearray()
        self.db_expect = 0
        self.last_out = None
        self.laps = None
        self.pmic_period = 0.0
        self.pmic_samples: tuple[list[int], list[float]] = ([], [])

    @staticmethod
    def _find_vcgencmd() -> str:
        for d in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin", "/opt/vc/bin"]:
            p = os.path.join(d, "vcgencmd")
            if d and os.access(p, os.X_OK):
                return p
        return ""

    def vc(self, *args: str) -> str | None:
        if not self.vcgencmd:
            return None
        try:
            res = subprocess.run(
                [self.vcgencmd, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout.decode("utf-8", "replace") if res.returncode == 0 else None

    # ----------------------------------------------------------------- dispatch
    def handle(self, line: str) -> list:
        parts = line.split()
        if not parts:
            raise CommandError("Unknown command: ")
        cmd, args = parts[0], parts[1:]
        if cmd == "db":
            return self.cmd_db(args)
        fn = getattr(self, "cmd_" + cmd.replace("-", "_"), None)
        if fn is None or cmd.startswith("_"):
            raise CommandError("Unknown command: " + line)
        return fn(*args)

    def cmd_name(self) -> list:
        return ["m-name-dut-[frugalbench-agent]"]

    def cmd_profile(self) -> list:
        return ["m-profile-[" + PROFILE + "]", "m-model-[" + self.model_name + "]"]

    def cmd_help(self) -> list:
        return HELP.splitlines()

    def cmd_timestamp(self) -> list:
        return [f"m-lap-us-{time.monotonic_ns() // 1000}"]

    def cmd_x_clock(self) -> list:
        return [f"m-clock-ns-{time.monotonic_ns()}"]

    def cmd_x_quit(self) -> list:
        raise SystemExit(0)

    def cmd_x_reap(self) -> list:
        """Stop older copies of this agent (same script, same user) left by a dropped link.

        Their session may outlive the link on the board for hours and keep running an ``infer``
        loop on the cores the next window uses.
        """
        mine = os.path.realpath(os.path.abspath(__file__))
        stale = []
        for pid in stale_agents(mine):
            with contextlib.suppress(OSError):
                os.kill(pid, 15)
                stale.append(pid)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and any(alive(p) for p in stale):
            time.sleep(0.02)
        for pid in stale:
            if alive(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, 9)
        return ["m-reaped-[" + ",".join(str(p) for p in stale) + "]"]

    def cmd_x_runtimes(self) -> list:
        out = ["m-numpy-" + ((dist_version("numpy") or "unknown") if module_present("numpy") else "missing")]
        for name, mod in RUNTIME_MODULES.items():
            ver = (dist_version(RUNTIME_DISTS[name]) or "unknown") if module_present(mod) else "missing"
            out.append("m-runtime-" + name + "-" + ver)
        return out

    def cmd_x_sha(self, path_b64: str = "") -> list:
        path = b64d(path_b64).decode("utf-8", "surrogateescape")
        if not os.path.isfile(path):
            raise CommandError("no such file: " + path)
        return ["m-sha256-" + sha256_file(path)]

    def cmd_x_pin(self, cores: str = "") -> list:
        try:
            wanted = {int(c) for c in cores.split(",") if c}
        except ValueError:
            raise CommandError("bad core list " + repr(cores)) from None
        if not hasattr(os, "sched_setaffinity"):
            raise CommandError("core pinning needs Linux sched_setaffinity")
        if not wanted:
            raise CommandError("empty core list")
        try:
            os.sched_setaffinity(0, wanted)
        except OSError as exc:
            have = sorted(os.sched_getaffinity(0))
            raise CommandError(
                f"cannot pin to cores {sorted(wanted)}: {exc.strerror}; this board allows {have}"
            ) from None
        return ["m-pinned-[" + ",".join(str(c) for c in sorted(os.sched_getaffinity(0))) + "]"]

    def cmd_x_governor(self, name: str = "") -> list:
        set_governor(name)
        return ["m-governor-[" + ",".join(sorted(set(governors().values()))) + "]"]

    def cmd_x_vcgencmd(self, path_b64: str = "") -> list:
        path = b64d(path_b64).decode("utf-8", "surrogateescape") if path_b64 else ""
        if path and not os.access(path, os.X_OK):
            raise CommandError("vcgencmd not executable at " + path)
        self.vcgencmd = path
        return ["m-vcgencmd-[" + (path or "none") + "]"]

    def cmd_x_load(self, runtime: str = "", threads: str = "1", batch: str = "1", path_b64: str = "") -> list:
        path = b64d(path_b64).decode("utf-8", "surrogateescape")
        try:
            n_threads, n_batch = int(threads), int(batch)
        except ValueError:
            raise CommandError("threads and batch must be integers") from None
        if n_threads < 1 or n_batch < 1:
            raise CommandError("threads and batch must be >= 1")
        if not os.path.isfile(path):
            raise CommandError("model file not found on the board: " + path)
        self.runtime = None
        self.inputs, self.last_out, self.laps = [], None, None
        runner = make_runner(runtime, path, n_threads, n_batch)
        self.runtime = runner
        self.model_path = path
        self.model_name = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(path))[:64] or "model"
        info = dict(runner.describe())
        info["sha256"] = sha256_file(path)
        return ["m-loaded-" + json_b64(info)]

    def _need_model(self):
        if self.runtime is None:
            raise CommandError("no model loaded (send x-load first)")
        return self.runtime

    def cmd_x_input(self, shape: str = "", payload: str = "") -> list:
        rt = self._need_model()
        x = decode_f32(shape, payload)
        self.inputs = rt.split_batches(x)
        return [f"m-input-{len(self.inputs)}"]

    def cmd_x_predict(self, shape: str = "", payload: str = "") -> list:
        rt = self._need_model()
        x = decode_f32(shape, payload)
        return ["m-pred-" + encode_f32(rt.predict(x))]

    def cmd_db(self, args: list) -> list:
        rt = self._need_model()
        if args and args[0] == "load":
            n = int(args[1]) if len(args) > 1 and args[1].isdigit() else 0
            if n <= 0:
                raise CommandError("Command 'db load' must be >0 bytes")
            self.db, self.db_expect = bytearray(), n
            return [f"m-[Expecting {n} bytes]"]
        if len(args) != 1:
            raise CommandError("Unknown command: db " + " ".join(args))
        hexd = args[0]
        if len(hexd) % 2:
            raise CommandError("Insufficent number of hex digits")
        try:
            self.db.extend(bytes.fromhex(hexd))
        except ValueError:
            raise CommandError("bad hex digits") from None
        if self.db_expect and len(self.db) >= self.db_expect:
            raw = bytes(self.db[: self.db_expect])
            n = need_numpy()
            row = n.frombuffer(raw[: len(raw) // 4 * 4], dtype="<f4")
            self.inputs = rt.split_batches(row.reshape(1, -1))
            self.db_expect = 0
            return ["m-load-done"]
        return []

    def cmd_infer(self, n_text: str = "", w_text: str = "10") -> list:
        rt = self._need_model()
        try:
            n_calls, n_warm = int(n_text), int(w_text)
        except ValueError:
            raise CommandError("Inference iterations must be >0") from None
        if n_calls <= 0:
            raise CommandError("Inference iterations must be >0")
        if not self.inputs:
            self.inputs = [rt.random_batch()]
        out = []
        emit = self.emit
        emit(f"m-warmup-start-{n_warm}")
        for i in range(max(0, n_warm)):
            rt.run(self.inputs[i % len(self.inputs)])
        emit("m-warmup-done")
        emit(f"m-infer-start-{n_calls}")
        sampler = PmicSampler(self, self.pmic_period) if self.pmic_period > 0 else None
        if sampler:
            sampler.start()
        laps, t_first, t_last = rt.timed(self.inputs, n_calls)
        if sampler:
            self.pmic_samples = sampler.stop()
        emit(f"m-lap-us-{t_first // 1000}")
        emit(f"m-lap-us-{t_last // 1000}")
        emit("m-infer-done")
        self.laps = laps
        self.last_out = rt.run(self.inputs[(n_calls - 1) % len(self.inputs)])
        out.append(self.results_line())
        return out

    def results_line(self) -> str:
        if self.last_out is None:
            raise CommandError("no inference has run yet")
        row = need_numpy().asarray(self.last_out, dtype="f8").reshape(len(self.last_out), -1)[0]
        return "m-results-[" + ",".join(f"{v:.3f}" for v in row) + "]"

    def cmd_results(self) -> list:
        return [self.results_line()]

    def cmd_x_laps(self) -> list:
        if self.laps is None:
            raise CommandError("no infer has run yet")
        n = need_numpy()
        laps = n.asarray(self.laps)
        # uint32 ns while every call is under 4.29 s, zlib-packed: a 60 s window of 20 µs calls is
        # 3 M laps, which would be 32 MB of base64 as raw int64
        dtype = "<u4" if len(laps) == 0 or (laps.min() >= 0 and laps.max() < 2**32) else "<i8"
        packed = zlib.compress(laps.astype(dtype).tobytes(), 1)
        return ["m-laps-ns-" + dtype[1:] + "z-" + b64e(packed)]

    def cmd_x_pmic(self, period_ms: str = "0") -> list:
        try:
            self.pmic_period = max(0.0, float(period_ms) / 1000.0)
        except ValueError:
            raise CommandError("bad PMIC period " + repr(period_ms)) from None
        if self.pmic_period and self.vc("pmic_read_adc") is None:
            self.pmic_period = 0.0
            raise CommandError("vcgencmd pmic_read_adc is not available on this board (Raspberry Pi 5 only)")
        return [f"m-pmic-period-ms-{round(self.pmic_period * 1000)}"]

    def cmd_x_pmic_read(self) -> list:
        t, w = self.pmic_samples
        return ["m-pmic-" + json_b64({"t_ns": t, "w": w})]

    def cmd_x_state(self) -> list:
        raw = self.vc("get_throttled")
        state = {
            "t_ns": time.monotonic_ns(),
            "temps_c": temperatures(),
            "throttled": parse_throttled(raw) if raw is not None else None,
            "governors": sorted(set(governors().values())),
        }
        return ["m-state-" + json_b64(state)]

    def cmd_x_info(self) -> list:
        model, source = board_model()
        agent_sha = sha256_file(os.path.abspath(__file__))
        info = {
            "board_model": model,
            "board_model_source": source,
            "cpu": cpu_name(),
            "machine": platform.machine(),
            "cpu_features": cpu_features(),
            "cpu_count": os.cpu_count(),
            "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "kernel": platform.release(),
            "kernel_version": platform.version(),
            "os": os_name(),
            "python": platform.python_version(),
            "python_path": sys.executable,
            "numpy": dist_version("numpy"),
            "governors": sorted(set(governors().values())),
            "vcgencmd": self.vcgencmd or None,
            "agent_version": AGENT_VERSION,
            "agent_sha256": agent_sha,
            "pid": os.getpid(),
            "ppid": os.getppid(),
        }
        if self.runtime is not None:
            info.update(self.runtime.describe())
        return ["m-info-" + json_b64(info)]

    # ----------------------------------------------------------------- I/O
    def emit(self, line: str) -> None:
        self.out.write((line + "\r\n").encode("utf-8", "replace"))
        self.out.flush()

    def serve(self, fd_in: int, out) -> int:
        self.out = out
        self.emit("m-timestamp-mode-performance")
        self.emit(f"m-lap-us-{time.monotonic_ns() // 1000}")
        self.emit("m-init-done")
        self.emit("m-ready")
        buf = bytearray()
        while True:
            chunk = os.read(fd_in, 1 << 16)
            if not chunk:
                return 0
            buf.extend(chunk)
            while True:
                end = buf.find(b"%")
                if end < 0:
                    break
                line = bytes(buf[:end]).decode("utf-8", "replace").strip()
                del buf[: end + 1]
                try:
                    for reply in self.handle(line):
                        self.emit(reply)
                except SystemExit:
                    self.emit("m-ready")
                    return 0
                except CommandError as exc:
                    self.emit("e-[" + str(exc).replace("\n", " ") + "]")
                except Exception as exc:  # report, keep serving
                    self.emit("e-[" + type(exc).__name__ + ": " + str(exc).replace("\n", " ") + "]")
                self.emit("m-ready")


class PmicSampler(threading.Thread):
    """Samples the Pi 5 PMIC rails during an ``infer`` (a secondary ``counter`` figure)."""

    def __init__(self, agent: Agent, period: float) -> None:
        super().__init__(daemon=True)
        self.agent, self.period = agent, period
        self.halt = threading.Event()
        self.t: list[int] = []
        self.w: list[float] = []

    def sample(self) -> None:
        watts = parse_pmic(self.agent.vc("pmic_read_adc") or "")
        if watts is not None:
            self.t.append(time.monotonic_ns())
            self.w.append(watts)

    def start(self) -> None:
        self.sample()  # one sample before the timed calls begin
        super().start()

    def run(self) -> None:
        # move this thread (and the vcgencmd it forks) off the cores the inference is pinned to
        if hasattr(os, "sched_setaffinity"):
            others = set(range(os.cpu_count() or 1)) - os.sched_getaffinity(0)
            if others:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(0, others)
        while not self.halt.wait(self.period):
            self.sample()

    def stop(self) -> tuple:
        self.halt.set()
        self.join()
        self.sample()
        return self.t, self.w


# --------------------------------------------------------------------------- runtimes


class Runner:
    """One loaded model: ``run`` a batch of exactly ``batch`` rows, ``timed`` loops, ``predict`` rows."""

    name = ""

    def __init__(self, path: str, threads: int, batch: int) -> None:
        self.path, self.threads, self.batch = path, threads, batch

    def feature_shape(self) -> tuple:
        raise NotImplementedError

    def run(self, x):
        raise NotImplementedError

    def version(self) -> str:
        return dist_version(RUNTIME_DISTS.get(self.name, self.name)) or "unknown"

    def describe(self) -> dict:
        return {
            "runtime": self.name,
            "runtime_version": self.version(),
            "threads": self.threads,
            "batch": self.batch,
            "input_shape": [self.batch, *self.feature_shape()],
        }

    def random_batch(self):
        n = need_numpy()
        rng = n.random.default_rng(0)
        return rng.standard_normal((self.batch, *self.feature_shape())).astype("f4")

    def split_batches(self, x) -> list:
        n = need_numpy()
        x = n.asarray(x, dtype="f4").reshape((-1, *self.feature_shape()))
        if len(x) == 0:
            raise CommandError("no input rows")
        out = []
        for i in range(0, len(x), self.batch):
            part = x[i : i + self.batch]
            if len(part) < self.batch:
                pad = n.zeros((self.batch - len(part), *part.shape[1:]), dtype="f4")
                part = n.concatenate([part, pad])
            out.append(n.ascontiguousarray(part))
        return out

    def predict(self, x):
        n = need_numpy()
        rows = len(x)
        if rows == 0:
            raise CommandError("no input rows")
        outs = [n.asarray(self.run(b)) for b in self.split_batches(x)]
        return n.concatenate(outs)[:rows]

    def timed(self, batches: list, n_calls: int) -> tuple:
        """``n_calls`` calls cycling over ``batches``: (per-call ns, first and last board ns).

        The per-call time brackets only the runtime call (as the local CPU target does); the two
        board timestamps bracket the whole loop (as MLPerf Tiny's ``m-lap-us`` do).
        """
        n = need_numpy()
        laps = n.empty(n_calls, dtype="i8")
        clock, run, k = time.monotonic_ns, self.run, len(batches)
        t_first = clock()
        for i in range(n_calls):
            b = batches[i % k]
            t0 = clock()
            run(b)
            laps[i] = clock() - t0
        return laps, t_first, clock()


class OrtRunner(Runner):
    name = "ort"

    def __init__(self, path: str, threads: int, batch: int) -> None:
        super().__init__(path, threads, batch)
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        try:
            self.sess = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise CommandError("onnxruntime cannot load " + path + ": " + str(exc)) from None
        inp = self.sess.get_inputs()[0]
        self.in_name = inp.name
        self.out_names = [self.sess.get_outputs()[0].name]
        self._features = tuple(d if isinstance(d, int) else -1 for d in inp.shape[1:])
        first = inp.shape[0] if inp.shape else None
        if isinstance(first, int) and first != batch:
            raise CommandError(f"this ONNX model has a fixed batch of {first}; use batch = {first}")
        if any(d < 0 for d in self._features):
            raise CommandError("only the batch dimension may be dynamic, got input shape " + str(inp.shape))

    def feature_shape(self) -> tuple:
        return self._features

    def run(self, x):
        return self.sess.run(self.out_names, {self.in_name: x})[0]

    def timed(self, batches: list, n_calls: int) -> tuple:
        n = need_numpy()
        laps = n.empty(n_calls, dtype="i8")
        feeds = [{self.in_name: b} for b in batches]  # prepared feeds, bound method: the tight loop
        clock, run, out, k = time.monotonic_ns, self.sess.run, self.out_names, len(feeds)
        t_first = clock()
        for i in range(n_calls):
            f = feeds[i % k]
            t0 = clock()
            run(out, f)
            laps[i] = clock() - t0
        return laps, t_first, clock()


class TfliteRunner(Runner):
    def __init__(self, module: str, name: str, path: str, threads: int, batch: int) -> None:
        super().__init__(path, threads, batch)
        self.name = name
        if module == "ai_edge_litert":
            from ai_edge_litert.interpreter import Interpreter
        else:
            from tflite_runtime.interpreter import Interpreter
        try:
            self.it = Interpreter(model_path=path, num_threads=threads)
            det = self.it.get_input_details()[0]
            self.in_idx = det["index"]
            self._features = tuple(int(d) for d in det["shape"][1:])
            if int(det["shape"][0]) != batch:
                self.it.resize_tensor_input(self.in_idx, [batch, *self._features])
            self.it.allocate_tensors()
        except CommandError:
            raise
        except Exception as exc:
            raise CommandError(name + " cannot load " + path + ": " + str(exc)) from None
        det = self.it.get_input_details()[0]
        self.in_dtype = det["dtype"]
        self.in_q = det.get("quantization", (0.0, 0))
        odet = self.it.get_output_details()[0]
        self.out_idx, self.out_dtype = odet["index"], odet["dtype"]
        self.out_q = odet.get("quantization", (0.0, 0))
        self.float_io = need_numpy().dtype(self.in_dtype) == need_numpy().float32

    def feature_shape(self) -> tuple:
        return self._features

    def _cast(self, x):
        n = need_numpy()
        if self.float_io:
            return x
        scale, zp = self.in_q
        info = n.iinfo(self.in_dtype)
        return n.clip(n.round(x / scale) + zp, info.min, info.max).astype(self.in_dtype)

    def timed(self, batches: list, n_calls: int) -> tuple:
        n = need_numpy()
        laps = n.empty(n_calls, dtype="i8")
        feeds = [self._cast(b) for b in batches]  # quantised once, outside the timed calls
        clock, set_tensor, invoke, idx, k = (
            time.monotonic_ns,
            self.it.set_tensor,
            self.it.invoke,
            self.in_idx,
            len(feeds),
        )
        t_first = clock()
        for i in range(n_calls):
            f = feeds[i % k]
            t0 = clock()
            set_tensor(idx, f)
            invoke()
            laps[i] = clock() - t0
        return laps, t_first, clock()

    def run(self, x):
        n = need_numpy()
        self.it.set_tensor(self.in_idx, self._cast(x))
        self.it.invoke()
        y = self.it.get_tensor(self.out_idx)
        if n.dtype(self.out_dtype) != n.float32:
            scale, zp = self.out_q
            y = (y.astype("f4") - zp) * scale
        return y


def make_runner(runtime: str, path: str, threads: int, batch: int) -> Runner:
    need_numpy()
    if runtime == "ort":
        if not module_present("onnxruntime"):
            raise CommandError(missing_runtime("ort"))
        return OrtRunner(path, threads, batch)
    if runtime in ("litert", "tflite-runtime"):
        order = ["litert", "tflite-runtime"] if runtime == "litert" else ["tflite-runtime", "litert"]
        for name in order:
            if module_present(RUNTIME_MODULES[name]):
                return TfliteRunner(RUNTIME_MODULES[name], name, path, threads, batch)
        raise CommandError(missing_runtime(runtime))
    raise CommandError("unknown runtime " + repr(runtime) + " (ort, litert or tflite-runtime)")


def missing_runtime(runtime: str) -> str:
    dist, py = RUNTIME_DISTS[runtime], sys.executable
    return f"{dist} is not installed for {py}; install it with: {py} -m pip install {dist}"


def main() -> int:
    return Agent().serve(sys.stdin.fileno(), sys.stdout.buffer)


if __name__ == "__main__":
    sys.exit(main())
