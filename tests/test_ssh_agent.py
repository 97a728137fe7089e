"""The board agent's line protocol (driven over pipes, no SSH), its parsers, and the ssh target config."""

from __future__ import annotations

import ast
import contextlib
import io
import os
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.agent import AGENT_FILE
from harness.agent import board_agent as ba
from harness.agent.client import AgentClient, AgentError, LinkLostError, b64, decode_f32, encode_f32
from harness.errors import ConfigError, FrugalbenchError
from harness.ir.export.onnx_export import network_to_onnx_bytes
from harness.ir.layers import Dense
from harness.ir.network import Network
from harness.suite import validate_target
from harness.targets.ssh import SshConfig, throttle_flags, window_throttled

ROOT = Path(__file__).resolve().parents[1]


class PipeStream:
    """The agent's stdin/stdout as the byte stream an SSH channel would be."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self.proc, self.timeout = proc, 10.0

    def sendall(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def recv(self, n: int) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        if not select.select([fd], [], [], self.timeout)[0]:
            raise TimeoutError
        return os.read(fd, n)

    def settimeout(self, t: float | None) -> None:
        self.timeout = 10.0 if t is None else t


@pytest.fixture
def agent_proc(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], AgentClient]]:
    """The agent copied away from the package and run isolated (-I): it cannot import harness."""
    script = tmp_path / "agent.py"
    shutil.copy(AGENT_FILE, script)
    proc = subprocess.Popen(
        [sys.executable, "-I", "-u", str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=tmp_path
    )
    client = AgentClient(PipeStream(proc), timeout_s=20)
    client.boot(20)
    yield proc, client
    proc.kill()
    proc.wait()


def _model(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    net = Network([Dense(rng.standard_normal((6, 3)).astype(np.float32), np.zeros(3, np.float32))])
    p = tmp_path / "m.onnx"
    p.write_bytes(network_to_onnx_bytes(net))
    return p


def _raw(proc: subprocess.Popen[bytes], cmd: bytes) -> list[bytes]:
    """Send one command, return the raw reply lines (with their CR LF) up to m-ready."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(cmd)
    proc.stdin.flush()
    lines = []
    while not lines or lines[-1] != b"m-ready\r\n":
        lines.append(proc.stdout.readline())
    return lines


def test_agent_imports_no_harness() -> None:
    tree = ast.parse(AGENT_FILE.read_text())
    mods = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m.startswith(("harness", ".")) or m == "" for m in mods), mods
    allowed_third_party = {"numpy", "onnxruntime", "ai_edge_litert.interpreter", "tflite_runtime.interpreter"}
    assert (
        mods - set(sys.stdlib_module_names) - {"importlib.metadata", "importlib.util"} <= allowed_third_party
    )


def test_mlperf_tiny_protocol_verbatim(
    agent_proc: tuple[subprocess.Popen[bytes], AgentClient], tmp_path: Path
) -> None:
    proc, client = agent_proc
    assert _raw(proc, b"name%") == [b"m-name-dut-[frugalbench-agent]\r\n", b"m-ready\r\n"]
    prof = _raw(proc, b"profile%")
    assert prof[0].startswith(b"m-profile-[") and prof[1] == b"m-model-[none]\r\n"
    assert _raw(proc, b"bogus%") == [b"e-[Unknown command: bogus]\r\n", b"m-ready\r\n"]
    assert _raw(proc, b"infer 1 0%")[0].startswith(b"e-[no model loaded")
    ts = _raw(proc, b"timestamp%")
    assert ts[0].startswith(b"m-lap-us-") and int(ts[0][9:]) > 0

    loaded = client.load("ort", 1, 1, str(_model(tmp_path)))
    assert loaded["input_shape"] == [1, 6] and loaded["runtime"] == "ort"
    assert _raw(proc, b"infer 0 1%") == [b"e-[Inference iterations must be >0]\r\n", b"m-ready\r\n"]
    reply = [ln.rstrip(b"\r\n") for ln in _raw(proc, b"infer 5 2%")]
    kinds = [ln.split(b"-")[0] + b"-" + ln.split(b"-")[1] for ln in reply]
    assert kinds == [
        b"m-warmup",
        b"m-warmup",
        b"m-infer",
        b"m-lap",
        b"m-lap",
        b"m-infer",
        b"m-results",
        b"m-ready",
    ]
    assert reply[0] == b"m-warmup-start-2" and reply[2] == b"m-infer-start-5"
    t0, t1 = int(reply[3][9:]), int(reply[4][9:])
    assert t1 >= t0
    assert reply[6].startswith(b"m-results-[") and reply[6].count(b",") == 2
    assert len(client.laps_ns()) == 5

    # db load / db <hex> as an MLPerf Tiny host sends inputs, then results of that input
    x = np.arange(6, dtype="<f4")
    assert _raw(proc, b"db load 0%")[0].startswith(b"e-[Command 'db load' must be >0")
    assert _raw(proc, b"db load 24%") == [b"m-[Expecting 24 bytes]\r\n", b"m-ready\r\n"]
    hexd = x.tobytes().hex()
    assert _raw(proc, f"db {hexd[:30]}%".encode()) == [b"m-ready\r\n"]
    assert _raw(proc, f"db {hexd[30:]}%".encode()) == [b"m-load-done\r\n", b"m-ready\r\n"]
    client.infer(1, 0, 10)
    res = client.command("results")[0]
    expected = client.predict(x[None, :])[0]
    assert res == "m-results-[" + ",".join(f"{v:.3f}" for v in expected) + "]"


def test_agent_errors_are_replies_not_crashes(
    agent_proc: tuple[subprocess.Popen[bytes], AgentClient],
) -> None:
    proc, client = agent_proc
    with pytest.raises(AgentError, match="model file not found"):
        client.load("ort", 1, 1, "/nonexistent/model.onnx")
    with pytest.raises(AgentError, match="unknown runtime"):
        client.command(f"x-load tvm 1 1 {b64(str(AGENT_FILE))}")
    with pytest.raises(AgentError, match="bad base64"):
        client.command("x-sha !!!")
    assert client.sha256("/nonexistent") is None
    assert client.name() == "dut-[frugalbench-agent]"  # still serving
    rts = client.runtimes()
    assert rts["numpy"] != "missing" and rts["ort"] != "missing"
    clk = client.clock_offset()
    assert clk.rtt_s > 0
    client.quit()
    assert proc.wait(10) == 0


def test_client_reports_a_dead_agent(agent_proc: tuple[subprocess.Popen[bytes], AgentClient]) -> None:
    proc, client = agent_proc
    proc.kill()
    proc.wait()
    with pytest.raises(LinkLostError):
        client.command("name")


class BytesStream:
    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def sendall(self, data: bytes) -> None:
        pass

    def recv(self, n: int) -> bytes:
        return self.data.read(min(n, 7))

    def settimeout(self, t: float | None) -> None:
        pass


PREFIXES = [
    "m-name-",
    "m-numpy-",
    "m-runtime-ort-",
    "m-state-",
    "m-laps-ns-",
    "m-laps-ns-u4z-",
    "m-clock-ns-",
    "m-info-",
    "m-pmic-",
    "e-[",
    "m-ready",
    "",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PREFIXES), st.binary(max_size=40)), max_size=5))
def test_client_never_crashes_on_garbage(parts: list[tuple[str, bytes]]) -> None:
    data = b"\r\n".join(p.encode() + tail for p, tail in parts)
    for method in ("name", "runtimes", "state", "laps_ns", "clock", "info", "pmic_read"):
        client = AgentClient(BytesStream(data + b"\r\nm-ready\r\n"))
        with contextlib.suppress(FrugalbenchError):  # anything else escaping is a bug
            getattr(client, method)()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "name",
                "profile",
                "help",
                "results",
                "timestamp",
                "db",
                "db load",
                "infer",
                "infer 1",
                "db zz",
                "x-laps",
                "x-input",
                "x-predict 2x2 AAAA",
                "x-sha ",
                "x-load ort",
                "",
                "  ",
                "\r\n",
                "x-nope",
                "_private",
            ]
        ),
        max_size=12,
    ),
    st.text(alphabet="abcz0129 x\r\n", max_size=20),
)
def test_agent_answers_every_command_with_m_ready(cmds: list[str], junk: str) -> None:
    data = "%".join([*cmds, junk]) + "%"
    r, w = os.pipe()
    os.write(w, data.encode())
    os.close(w)
    out = io.BytesIO()
    assert ba.Agent().serve(r, out) == 0
    os.close(r)
    lines = out.getvalue().split(b"\r\n")
    assert lines.count(b"m-ready") == data.count("%") + 1  # + the boot banner's
    assert b"Traceback" not in out.getvalue()


@settings(max_examples=200)
@given(st.integers(0, 2**32 - 1))
def test_parse_throttled_roundtrip(value: int) -> None:
    assert ba.parse_throttled(f"throttled={value:#x}\n") == value
    assert ba.parse_throttled("garbage") is None


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"[A-Z0-9]{2,6}(_[A-Z]{1,4})?", fullmatch=True),
        st.tuples(st.floats(0, 5), st.floats(0, 6)),
        min_size=1,
        max_size=8,
    )
)
def test_parse_pmic_sums_v_times_i(rails: dict[str, tuple[float, float]]) -> None:
    text = ""
    for i, (name, (a, v)) in enumerate(rails.items()):
        text += f"  {name}_A current({i})={a:.8f}A\n  {name}_V volt({i + 8})={v:.8f}V\n"
    text += "  EXT5V_V volt(24)=5.10000000V\n"  # a rail with no current: ignored
    expected = sum(round(a, 8) * round(v, 8) for a, v in rails.values())
    assert ba.parse_pmic(text) == pytest.approx(expected, abs=1e-9)
    assert ba.parse_pmic("no rails here") is None


@given(st.integers(0, 0xFFFFF), st.integers(0, 0xFFFFF))
def test_window_throttled_rules(before: int, after: int) -> None:
    now = bool((before | after) & 0xF)
    appeared = bool((after & ~before) & 0xF0000)
    assert window_throttled(before, after) == (now or appeared)
    assert window_throttled(None, None) is False
    assert set(throttle_flags(after)) <= {
        "under-voltage",
        "arm-frequency-capped",
        "throttled",
        "soft-temperature-limit",
    }


@given(
    st.lists(st.integers(1, 5), min_size=1, max_size=3).flatmap(
        lambda shape: st.lists(
            st.floats(-1e6, 1e6, width=32), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))
        ).map(lambda v: np.array(v, "f4").reshape(shape))
    )
)
def test_tensor_codec_roundtrip(x: np.ndarray) -> None:
    shape, payload = encode_f32(x).split(" ")
    back = ba.decode_f32(shape, payload)  # host → agent
    np.testing.assert_array_equal(back, x)
    np.testing.assert_array_equal(decode_f32(ba.encode_f32(back)), x)  # agent → host


# ---------------------------------------------------------------- config and board profiles


@pytest.mark.parametrize("board", sorted(p.name for p in (ROOT / "boards").glob("raspberry-pi-*.toml")))
def test_board_profiles_validate(board: str) -> None:
    cfg = validate_target({"name": "b", "kind": "ssh", "board": f"boards/{board}"}, where="test")
    assert isinstance(cfg, SshConfig)
    assert cfg.label.startswith("Raspberry Pi") and cfg.meter and cfg.meter["url"]
    assert cfg.runtime in ("ort", "litert", "tflite-runtime") and cfg.known_hosts


def test_suite_overrides_win_and_unknown_keys_are_refused(tmp_path: Path) -> None:
    cfg = SshConfig(
        name="pi5",
        kind="ssh",
        board="boards/raspberry-pi-5.toml",
        host="10.0.0.5",
        port=2222,
        threads=4,
        batch=8,
        runtime="litert",
    )
    assert (cfg.host, cfg.port, cfg.threads, cfg.batch, cfg.runtime) == ("10.0.0.5", 2222, 4, 8, "litert")
    assert cfg.pmic is True and cfg.label == "Raspberry Pi 5"
    with pytest.raises(ConfigError, match=r"threads"):
        validate_target(
            {"name": "p", "kind": "ssh", "board": "boards/raspberry-pi-5.toml", "threads": 0}, where="suite"
        )
    with pytest.raises(ConfigError, match="hots"):
        validate_target({"name": "p", "kind": "ssh", "host": "h", "user": "u", "hots": 1}, where="suite")
    bad = tmp_path / "bad.toml"
    bad.write_text('host = "h"\nuser = "u"\nfrobnicate = 1\n')
    with pytest.raises(ConfigError, match=r"bad\.toml.*frobnicate"):
        validate_target({"name": "p", "kind": "ssh", "board": str(bad)}, where="suite")
    with pytest.raises(ConfigError, match="not found"):
        validate_target({"name": "p", "kind": "ssh", "board": "boards/nope.toml"}, where="suite")
    with pytest.raises(ConfigError, match="'host' and 'user'"):
        validate_target({"name": "p", "kind": "ssh"}, where="suite")


@settings(max_examples=40, deadline=None)
@given(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=30)
)
def test_shell_word_survives_a_real_shell(path: str) -> None:
    """The one shell command we build (starting the agent) quotes paths so that sh sees them verbatim."""
    from harness.agent.session import shell_word

    for p, expected in ((path, path), ("~/" + path, "/home/fb/" + path)):
        out = subprocess.run(
            ["sh", "-c", f"printf '%s' {shell_word(p)}"],
            capture_output=True,
            env={"HOME": "/home/fb", "PATH": os.environ.get("PATH", "")},
            check=True,
        ).stdout
        assert out.decode("utf-8", "surrogateescape") == expected


def test_remote_paths() -> None:
    from harness.agent.session import remote_path

    assert remote_path("~/.cache/fb") == ".cache/fb" and remote_path("/abs/x") == "/abs/x"
    assert remote_path("~") == "."
    with pytest.raises(ConfigError, match="~user"):
        remote_path("~pi/x")
