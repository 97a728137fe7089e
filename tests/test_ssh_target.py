"""The ssh target against a REAL OpenSSH server on localhost (throw-away host and user keys).

The "board" is this machine: the agent runs under this venv's Python (onnxruntime + ai-edge-litert).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.agent import agent_sha256
from harness.errors import ConfigError, TargetError, WindowInvalid
from harness.ir.export.onnx_export import network_to_onnx_bytes
from harness.ir.export.tflite_export import network_to_tflite, network_to_tflite_int8
from harness.ir.layers import Dense
from harness.ir.model import Variant
from harness.ir.network import Network
from harness.ir.quant import calibrate
from harness.targets.artefact import ArtefactFile
from harness.targets.base import TARGETS, Target
from harness.targets.ssh import SshConfig, SshTarget

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(SSHD).exists() or not shutil.which("ssh-keygen"),
        reason="needs OpenSSH (apt-get install -y --no-install-recommends openssh-server)",
    ),
]


@dataclass
class Sshd:
    """A running sshd on 127.0.0.1 and the files a client needs."""

    port: int
    dir: Path
    user: str
    user_key: Path
    other_key: Path
    known_hosts: Path
    proc: subprocess.Popen[bytes]

    def entry(self, workdir: Path) -> dict[str, Any]:
        """The suite-entry keys that point an ssh target at this sshd (the agent under this Python)."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "key": str(self.user_key),
            "known_hosts": str(self.known_hosts),
            "python": sys.executable,
            "workdir": str(workdir),
        }

    def config(self, workdir: Path, **over: Any) -> SshConfig:
        table = {
            "name": "localboard",
            "kind": "ssh",
            "label": "localhost sshd",
            **self.entry(workdir),
            **over,
        }
        return SshConfig(**table)

    def log(self) -> str:
        p = self.dir / "log"
        return p.read_text(errors="replace") if p.exists() else ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def start_sshd(d: Path) -> Sshd:
    """sshd -D on a free localhost port with throw-away keys (see boardfarm.md, appendix)."""
    d.mkdir(parents=True, exist_ok=True)
    for name in ("hostkey", "userkey", "otherkey"):
        _keygen(d / name)
    auth = d / "authorized_keys"
    shutil.copy(d / "userkey.pub", auth)
    auth.chmod(0o600)
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'hostkey'}\n"
        f"AuthorizedKeysFile {auth}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"PidFile {d / 'sshd.pid'}\nStrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n"
        "Subsystem sftp internal-sftp\nLogLevel VERBOSE\n"
    )
    with contextlib.suppress(PermissionError):  # as root (CI); .ci/install creates it too
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-f", str(d / "sshd_config"), "-E", str(d / "log")])
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            log = (d / "log").read_text(errors="replace") if (d / "log").exists() else ""
            raise RuntimeError(f"sshd exited with {proc.returncode}: {log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("sshd did not listen within 20 s") from None
            time.sleep(0.05)
    kh = d / "known_hosts"
    kh.write_text(
        f"[127.0.0.1]:{port} {(d / 'hostkey.pub').read_text().split(' ')[0]} "
        f"{(d / 'hostkey.pub').read_text().split(' ')[1]}\n"
    )
    import getpass

    return Sshd(port, d, getpass.getuser(), d / "userkey", d / "otherkey", kh, proc)


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model cache for the suite tests of this module (the base model trains once)."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    s = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield s
    s.proc.terminate()
    try:
        s.proc.wait(10)
    except subprocess.TimeoutExpired:
        s.proc.kill()


# ---------------------------------------------------------------- a tiny variant


def tiny_net(seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    return Network(
        [
            Dense(
                rng.standard_normal((16, 12)).astype(np.float32) * 0.5,
                rng.standard_normal(12).astype(np.float32) * 0.1,
                "relu",
            ),
            Dense(
                rng.standard_normal((12, 4)).astype(np.float32) * 0.5,
                rng.standard_normal(4).astype(np.float32) * 0.1,
            ),
        ]
    )


def make_variant(folder: Path, name: str = "tiny", seed: int = 0, int8: bool = False) -> Variant:
    folder.mkdir(parents=True, exist_ok=True)
    net = tiny_net(seed)
    onnx_p, tfl_p = folder / f"{name}.onnx", folder / f"{name}.tflite"
    onnx_p.write_bytes(network_to_onnx_bytes(net))
    if int8:  # full-integer kernels behind a float interface
        calib = np.random.default_rng(7).standard_normal((200, 16)).astype(np.float32)
        tfl_p.write_bytes(network_to_tflite_int8(net, calibrate(net, calib)))
    else:
        tfl_p.write_bytes(network_to_tflite(net))
    return Variant(task="t", name=name, key=f"k{seed}", files={"onnx": onnx_p, "tflite": tfl_p}, meta={})


def load(t: Target, variant: Variant) -> None:
    """As the runner does: the variant's file of the kind the target declares, handed to load()."""
    t.load(variant, ArtefactFile(t.artefact, variant.files[t.artefact.value]))


def eval_set(n: int = 300, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 16)).astype(np.float32)
    y = np.argmax(tiny_net(0).forward(x + 0.7 * rng.standard_normal(x.shape).astype(np.float32)), axis=1)
    return x, y


def host_outputs(variant: Variant, runtime: str, batch: int, x: np.ndarray) -> np.ndarray:
    cpu = TARGETS.get("cpu")
    t = cpu(cpu.Config(name="host", kind="cpu", runtime=runtime, batch=batch))
    t.open()
    try:
        load(t, variant)
        return t.predict(x)
    finally:
        t.close()


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize(
    ("runtime", "batch", "int8"), [("ort", 1, False), ("litert", 4, False), ("litert", 1, True)]
)
def test_accuracy_over_board_equals_host(
    sshd: Sshd, tmp_path: Path, runtime: str, batch: int, int8: bool
) -> None:
    variant = make_variant(tmp_path / "v", int8=int8)
    x, y = eval_set()
    t = SshTarget(sshd.config(tmp_path / "board", runtime=runtime, batch=batch, threads=1))
    with t:
        load(t, variant)
        out = t.predict(x)
        t.set_inputs(x)
        w = t.window(0.2, warmup_s=0.05)
        info = t.info()
    ref = host_outputs(variant, runtime, batch, x)
    acc_board = float(np.mean(np.argmax(out, 1) == y))
    acc_host = float(np.mean(np.argmax(ref, 1) == y))
    assert out.shape == ref.shape == (300, 4)
    assert acc_board == acc_host
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    # the window is timed on the board clock and mapped onto the host clock
    assert w.n == w.extra["n_calls"] * batch and len(w.latencies_s) == w.n
    assert w.t_end > w.t_start and w.dut_s > 0
    assert abs(w.extra["clock_offset_s"]) >= 0 and w.extra["marker_method"] == "host-clock"
    assert w.extra["throttled"] is False
    assert info["target_kind"] == "ssh" and info["runtime"] == runtime
    assert info["runtime_version"] and info["kernel"] == os.uname().release
    assert info["host_key"].startswith("ssh-ed25519 SHA256:")


def test_window_is_on_host_clock(sshd: Sshd, tmp_path: Path) -> None:
    """The same machine: board monotonic ≈ host perf_counter (both CLOCK_MONOTONIC) → offset ≈ 0."""
    variant = make_variant(tmp_path / "v")
    t = SshTarget(sshd.config(tmp_path / "board"))
    with t:
        load(t, variant)
        before = time.perf_counter()
        w = t.window(0.3)
        after = time.perf_counter()
    assert before <= w.t_start <= w.t_end <= after
    # both clocks are CLOCK_MONOTONIC here, so the board's stamp lies inside each exchange: the
    # measured offset is bounded by half the round trip, whatever the load
    assert abs(w.extra["clock_offset_s"]) <= w.extra["clock_rtt_s"] / 2 + 1e-6


def test_files_are_cached_by_hash(sshd: Sshd, tmp_path: Path) -> None:
    variant = make_variant(tmp_path / "v")
    cfg = sshd.config(tmp_path / "board")
    with SshTarget(cfg) as t:
        load(t, variant)
        assert t.pusher is not None
        first = list(t.pusher.uploaded)
    assert len(first) == 2  # the agent and the model
    with SshTarget(cfg) as t:
        load(t, variant)
        assert t.pusher is not None
        assert t.pusher.uploaded == [] and len(t.pusher.skipped) == 2
        # a corrupted cached model is detected by its hash and uploaded again
        model = Path(t.loaded["remote_path"])
        model.write_bytes(b"garbage")
        load(t, variant)
        assert t.pusher.uploaded == [str(model)]
        assert t.predict(eval_set(8)[0]).shape == (8, 4)
    # so is a corrupted agent: it is pushed again before it runs
    agent_file = Path(first[0] if "board_agent" in first[0] else first[1])
    agent_file.write_text("raise SystemExit('tampered')\n")
    with SshTarget(cfg) as t:
        assert t.pusher is not None and t.pusher.uploaded == [str(agent_file)]
        assert t.board["agent_sha256"] == agent_sha256()


def test_unknown_host_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(TargetError, match=r"ssh-keyscan -p \d+ 127\.0\.0\.1 >>"):
        SshTarget(sshd.config(tmp_path / "b", known_hosts=str(empty))).open()
    with pytest.raises(TargetError, match="does not exist.*ssh-keyscan"):
        SshTarget(sshd.config(tmp_path / "b", known_hosts=str(tmp_path / "nope"))).open()
    assert not (tmp_path / "b").exists()  # nothing was pushed
    assert empty.read_text() == ""  # never auto-accepted


def test_wrong_host_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    other = (sshd.dir / "otherkey.pub").read_text().split()
    kh.write_text(f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}\n")
    with pytest.raises(TargetError, match="HOST KEY MISMATCH.*ssh-keygen -R"):
        SshTarget(sshd.config(tmp_path / "b", known_hosts=str(kh))).open()
    assert not (tmp_path / "b").exists()


def test_wrong_user_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"refused the key .*otherkey.*ssh-copy-id"):
        SshTarget(sshd.config(tmp_path / "b", key=str(sshd.other_key))).open()
    locked = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(locked)], check=True)
    with pytest.raises(TargetError, match=r"passphrase.*ssh-add"):
        SshTarget(sshd.config(tmp_path / "b", key=str(locked))).open()
    with pytest.raises(ConfigError, match="does not exist"):
        SshTarget(sshd.config(tmp_path / "b", key=str(tmp_path / "nokey"))).open()


def _python_without(tmp_path: Path, keep_numpy: bool) -> Path:
    """A venv without packages; optionally with numpy (only) visible through a .pth file."""
    venv = tmp_path / "bare venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    if keep_numpy:
        import numpy

        site = Path(
            subprocess.run(
                [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
        only = tmp_path / "only-numpy"
        only.mkdir()
        src = Path(numpy.__file__).parent
        (only / "numpy").symlink_to(src)
        for extra in src.parent.glob("numpy*"):
            if extra.name != "numpy":
                (only / extra.name).symlink_to(extra)
        (site / "only_numpy.pth").write_text(str(only) + "\n")
    return py


def test_no_runtime_on_board(sshd: Sshd, tmp_path: Path) -> None:
    py = _python_without(tmp_path, keep_numpy=True)
    with pytest.raises(TargetError, match=r"lacks onnxruntime .* -m pip install onnxruntime"):
        SshTarget(sshd.config(tmp_path / "b", python=str(py))).open()
    with pytest.raises(
        TargetError, match=r"lacks ai-edge-litert .*pip install ai-edge-litert.*tflite-runtime"
    ):
        SshTarget(sshd.config(tmp_path / "b", python=str(py), runtime="litert")).open()


def test_no_numpy_nor_python_on_board(sshd: Sshd, tmp_path: Path) -> None:
    py = _python_without(tmp_path, keep_numpy=False)
    with pytest.raises(TargetError, match=r"lacks numpy, onnxruntime .*pip install numpy onnxruntime"):
        SshTarget(sshd.config(tmp_path / "b", python=str(py))).open()
    with pytest.raises(TargetError, match="not found or is not executable.*set 'python'"):
        SshTarget(sshd.config(tmp_path / "b", python="/nonexistent/python3")).open()


def test_link_dropped_mid_window_is_invalid_then_rerun(sshd: Sshd, tmp_path: Path) -> None:
    variant = make_variant(tmp_path / "v")
    t = SshTarget(sshd.config(tmp_path / "board"))
    with t:
        load(t, variant)
        t.window(0.05)  # calibrated: the next window goes straight to its `infer`
        pid, sshd_child = t.board["pid"], t.board["ppid"]
        got: dict[str, BaseException] = {}

        def run() -> None:
            try:
                t.window(30.0)
            except BaseException as exc:  # collected for the assertion below
                got["exc"] = exc

        th = threading.Thread(target=run)
        th.start()
        time.sleep(1.0)
        os.kill(sshd_child, signal.SIGKILL)  # the per-connection sshd: the TCP link drops
        th.join(60)
        assert not th.is_alive()
        assert isinstance(got.get("exc"), WindowInvalid), got
        assert "re-run" in str(got["exc"])
        # the next window reconnects, reloads the variant and succeeds
        w = t.window(0.1)
        assert w.n > 0 and t.reconnects == 1
        assert t.board["pid"] != pid
        # the old agent, orphaned mid-loop, was stopped so that it does not share the cores
        assert t.notes["reaped_stale_agents"] == [pid]
        assert _state(pid) in ("gone", "Z")
        # outside a window (the accuracy pass) a dropped link is retried once after a reconnect
        os.kill(t.board["ppid"], signal.SIGKILL)
        x, _ = eval_set(50)
        np.testing.assert_allclose(t.predict(x), host_outputs(variant, "ort", 1, x), rtol=1e-5, atol=1e-5)
        assert t.reconnects == 2


METACHAR = "we ird $(touch PWNED1); `touch PWNED2` 'q\" & | > x % *"


def test_paths_with_shell_metacharacters(sshd: Sshd, tmp_path: Path) -> None:
    root = tmp_path / METACHAR
    variant = make_variant(root / "models dir", name=f"model {METACHAR}")
    x, _ = eval_set(20)
    cwd = Path.cwd()
    t = SshTarget(sshd.config(root / f"board {METACHAR}"))
    with t:
        load(t, variant)
        out = t.predict(x)
        w = t.window(0.05)
        assert t.info()["board_model"]
    assert out.shape == (20, 4) and w.n > 0
    assert (root / f"board {METACHAR}" / "models").is_dir()
    home = Path.home()
    for d in (tmp_path, root, cwd, home, Path("/")):
        assert not (d / "PWNED1").exists() and not (d / "PWNED2").exists()


def test_throttling_and_pmic_are_recorded(sshd: Sshd, tmp_path: Path) -> None:
    """A vcgencmd stand-in on the board reports throttling and PMIC rails as a Pi 5 does."""
    fake = tmp_path / "vcgencmd"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        "  get_throttled) echo throttled=0x50005 ;;\n"
        "  pmic_read_adc) printf '   VDD_CORE_A current(7)=2.00000000A\\n   VDD_CORE_V volt(15)=0.80000000V\\n"
        "     3V3_SYS_A current(1)=0.50000000A\\n     3V3_SYS_V volt(9)=3.30000000V\\n' ;;\n"
        "  *) exit 1 ;;\n"
        "esac\n"
    )
    fake.chmod(0o755)
    variant = make_variant(tmp_path / "v")
    t = SshTarget(sshd.config(tmp_path / "board", vcgencmd=str(fake), pmic=True, pmic_period_ms=50))
    with t:
        load(t, variant)
        w = t.window(0.3)
    assert w.extra["throttled"] is True
    assert w.extra["throttled_before"] == "0x50005"
    assert "under-voltage" in w.extra["throttle_flags"] and "throttled" in w.extra["throttle_flags"]
    assert w.extra["pmic_energy_class"] == "counter" and w.extra["pmic_samples"] >= 2
    # 2 A × 0.8 V + 0.5 A × 3.3 V = 3.25 W over the window
    assert w.extra["pmic_energy_j"] == pytest.approx(3.25 * w.dut_s, rel=0.02)


def _toml(value: Any) -> str:
    import json

    return json.dumps(value)  # JSON strings, numbers and lists are valid TOML


def test_suite_end_to_end_through_cli(sshd: Sshd, tmp_path: Path, model_cache: Path) -> None:
    """`frugalbench run SUITE` with the Pi 5 profile pointed at the localhost sshd: same kind of results
    as the local CPU target, the same accuracy, and provenance naming the board."""
    from harness.results.store import Store

    overrides = {**sshd.entry(tmp_path / "board"), "cores": [0], "pmic": False}
    ssh_entry = "\n".join(f"{k} = {_toml(v)}" for k, v in overrides.items())
    board = Path(__file__).resolve().parents[1] / "boards" / "raspberry-pi-5.toml"
    suite = tmp_path / "suite.toml"
    suite.write_text(
        f"""
[suite]
name = "ssh-e2e"
[run]
warmup_s = 0.02
window_s = 0.1
min_windows = 2
max_windows = 2
time_budget_s = 5
[meter]
kind = "estimate"
[[tasks]]
name = "digits"
recipe = "digits_mlp"
recipe_params = {{ hidden = [16], max_iter = 60 }}
metric = "accuracy"
min_accuracy = 0.5
[[variants]]
name = "fp32"
technique = "fp32"
[[targets]]
name = "cpu"
kind = "cpu"
runtime = "ort"
[[targets]]
name = "pi5"
kind = "ssh"
board = {_toml(str(board))}
{ssh_entry}
"""
    )
    db = tmp_path / "results.sqlite"
    exe = shutil.which("frugalbench") or str(Path(sys.executable).parent / "frugalbench")
    proc = subprocess.run(
        [exe, "run", str(suite), "--db", str(db), "--cache", str(model_cache), "--no-report"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with Store.open(db, create=False) as store:
        rows = {r.target: r.columns() for r in store.results()}  # records as their stored columns
        assert set(rows) == {"cpu", "pi5"}
        cpu, pi = rows["cpu"], rows["pi5"]
        assert cpu["status"] == pi["status"] == "done", (cpu.get("reason"), pi.get("reason"))
        assert pi["accuracy"] == cpu["accuracy"]  # same variant, same runtime
        assert pi["target_kind"] == "ssh" and pi["runtime"] == "ort"
        for key in ("latency_p50_s", "throughput_ips", "energy_per_inference_j", "n_windows"):
            assert pi[key] is not None and cpu[key] is not None, key
        prov = pi["provenance"]
        prov = prov if isinstance(prov, dict) else json.loads(prov)
        assert prov["board_label"] == "Raspberry Pi 5"
        assert prov["board_profile"] == str(board)
        assert prov["board_host"] == f"{sshd.user}@127.0.0.1:{sshd.port}"
        assert prov["board_model"]  # device tree / DMI / "unknown" on this machine
        assert prov["board_model_matches_profile"] == ("raspberry pi 5" in prov["board_model"].lower())
        assert prov["affinity"] == [0] and prov["cores"] == [0]  # pinned on the board
        assert prov["governor_requested"] == "performance"
        assert prov["governor"] == "performance" or prov["governor_error"]  # applied, or why not
        assert prov["kernel"] == os.uname().release
        wins = store.windows(pi["id"])
        assert len(wins) == 2 and all(w["valid"] for w in wins)
        extra = wins[0]["extra"]
        extra = extra if isinstance(extra, dict) else json.loads(extra)
        assert "clock_offset_s" in extra and extra["clock"] == "board time.monotonic_ns"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_runner_reruns_a_window_whose_link_dropped(sshd: Sshd, tmp_path: Path, model_cache: Path) -> None:
    """Through the real runner: the link drops inside a window; that window is stored as invalid,
    a new one is measured after a reconnect, and the result is complete and correct.

    The drop is triggered from inside the window, deterministically: the board's vcgencmd stand-in
    (sampled by the agent only while an ``infer`` runs) kills the per-connection sshd on its 2nd
    PMIC reading (the 1st is the check at connect time).
    """
    import shlex

    from harness.pipeline.runner import run_suite
    from harness.results.store import Store
    from harness.suite import load_suite

    count, agent_pid = tmp_path / "pmic-count", tmp_path / "agent-pid"
    fake = tmp_path / "vcgencmd"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        "  get_throttled) echo throttled=0x0 ;;\n"
        "  pmic_read_adc)\n"
        f"    n=$(( $(cat {shlex.quote(str(count))} 2>/dev/null || echo 0) + 1 )); echo $n > {shlex.quote(str(count))}\n"
        '    if [ "$n" = 2 ]; then\n'
        f"      echo $PPID > {shlex.quote(str(agent_pid))}\n"
        '      set -- $(cat /proc/$PPID/stat); kill -9 "$4"\n'  # the agent's parent: its sshd
        "    fi\n"
        "    printf '  VDD_CORE_A current(7)=1.00000000A\\n  VDD_CORE_V volt(15)=1.00000000V\\n' ;;\n"
        "  *) exit 1 ;;\n"
        "esac\n"
    )
    fake.chmod(0o755)
    entry = {**sshd.entry(tmp_path / "board-drop"), "vcgencmd": str(fake), "pmic": True, "pmic_period_ms": 20}
    suite = tmp_path / "suite.toml"
    suite.write_text(
        '[suite]\nname = "drop"\n[run]\nwarmup_s = 0.0\nwindow_s = 0.3\nmin_windows = 1\nmax_windows = 1\n'
        'time_budget_s = 30\n[meter]\nkind = "estimate"\n'
        '[[tasks]]\nname = "digits"\nrecipe = "digits_mlp"\nrecipe_params = { hidden = [16], max_iter = 60 }\n'
        'metric = "accuracy"\nmin_accuracy = 0.5\n[[variants]]\nname = "fp32"\ntechnique = "fp32"\n'
        '[[targets]]\nname = "board"\nkind = "ssh"\n'
        + "\n".join(f"{k} = {_toml(v)}" for k, v in entry.items())
    )
    db = tmp_path / "r.sqlite"
    run_suite(load_suite(suite), db, cache=model_cache)
    assert agent_pid.exists(), "the link was never dropped"
    with Store.open(db, create=False) as store:
        (row,) = [r.columns() for r in store.results()]
        assert row["status"] == "done", row.get("reason")
        wins = store.windows(row["id"])
        assert [w["valid"] for w in wins] == [0, 1]
        assert "lost mid-window" in wins[0]["problem"] and wins[0]["energy_j"] is None
        assert row["n_windows"] == 1 and row["n_inferences"] == wins[1]["n"]
        extra = wins[1]["extra"] if isinstance(wins[1]["extra"], dict) else json.loads(wins[1]["extra"])
        assert extra["pmic_energy_class"] == "counter" and extra["pmic_energy_j"] > 0
        prov = row["provenance"] if isinstance(row["provenance"], dict) else json.loads(row["provenance"])
        assert prov["reconnects"] == 1
    # the orphaned agent does not linger (it dies on its broken pipe, or the reconnect stops it)
    old = int(agent_pid.read_text())
    deadline = time.monotonic() + 10
    while _state(old) not in ("gone", "Z") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _state(old) in ("gone", "Z")


def test_board_meter_from_profile_measures_the_window(sshd: Sshd, tmp_path: Path) -> None:
    """meter = "auto" takes the board profile's USB meter (here a UM34C emulator on socket://): the
    board's window, mapped onto the host clock, integrates to the emulator's known power."""
    emu_mod = pytest.importorskip("harness.emulators.um34c")
    from harness.emulators.base import EmulatorServer
    from harness.emulators.profile import Profile
    from harness.meters.energy import window_energy
    from harness.pipeline.runner import make_meter

    watts = 3.0
    emulator = emu_mod.UmEmulator(profile=Profile(kind="constant", low_w=watts, voltage_v=5.1))
    with EmulatorServer(emulator) as emu:
        cfg = sshd.config(
            tmp_path / "board",
            board="boards/raspberry-pi-4.toml",
            cores=[0],
            meter={"kind": "um34c", "url": emu.url, "simulated": True},
        )
        with SshTarget(cfg) as target:
            load(target, make_variant(tmp_path / "v"))
            meter = make_meter({"kind": "auto"}, target)
            assert meter.info().energy_class == "simulated" and meter.info().marker_method == "host-clock"
            with meter:
                meter.start()
                time.sleep(0.6)  # the UM34C refreshes at 2 Hz: readings on both sides of the window
                w = target.window(1.0)
                time.sleep(0.6)
                trace = meter.stop()
    assert trace.valid, trace.problem
    energy = window_energy(trace, w.t_start, w.t_end)
    assert energy == pytest.approx(watts * (w.t_end - w.t_start), rel=0.01)


def test_board_check_command(sshd: Sshd, tmp_path: Path) -> None:
    """`frugalbench board check PROFILE --host ...` reports the board, or the actionable error."""
    from typer.testing import CliRunner

    from harness.cli.main import app

    e = sshd.entry(tmp_path / "board")
    args = ["board", "check", "boards/raspberry-pi-5.toml", "--host", e["host"], "--port", str(e["port"])]
    args += ["--user", e["user"], "--key", e["key"], "--python", e["python"], "--workdir", e["workdir"]]
    args += ["--cores", "0"]
    res = CliRunner().invoke(app, [*args, "--known-hosts", e["known_hosts"]])
    assert res.exit_code == 0, res.output
    assert "ok: check reachable" in res.output and os.uname().release in res.output
    empty = tmp_path / "kh"
    empty.write_text("")
    res = CliRunner().invoke(app, [*args, "--known-hosts", str(empty)])
    assert isinstance(res.exception, TargetError) and "ssh-keyscan" in str(res.exception)
