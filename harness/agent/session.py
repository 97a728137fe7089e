"""SSH to a board with Paramiko: strict host-key checking, content-addressed pushes, agent start.

Nothing here ever builds a shell command from user data except the one command that starts the
agent, whose two words (interpreter and script path) are quoted with :func:`shlex.quote`. Files
travel over SFTP; everything else goes through the agent's line protocol.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import shlex
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from ..errors import ConfigError, TargetError
from . import agent_bytes, agent_sha256
from .client import AgentClient


@dataclass(frozen=True)
class SshParams:
    """Where and as whom to connect."""

    host: str
    port: int
    user: str
    key: str | None
    known_hosts: str
    connect_timeout_s: float = 15.0


def remote_path(path: str) -> str:
    """A board path usable by both SFTP and the login shell: ``~/x`` → ``x`` (relative to home)."""
    if path == "~":
        return "."
    if path.startswith("~/"):
        return path[2:] or "."
    if path.startswith("~"):
        raise ConfigError(f"board path {path!r}: '~user' paths are not supported; use an absolute path")
    return path


def shell_word(path: str) -> str:
    """Quote one board path for the login shell (``~/`` becomes ``"$HOME"/``)."""
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def _keyscan_hint(p: SshParams, kh: Path) -> str:
    target = p.host if p.port == 22 else f"[{p.host}]:{p.port}"
    return (
        f"check the board's fingerprint (on the board: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), "
        f"then add it with: ssh-keyscan -p {p.port} {shlex.quote(p.host)} >> {shlex.quote(str(kh))}  "
        f"(the entry is {target!r})"
    )


def connect(p: SshParams) -> paramiko.SSHClient:
    """Open an SSH connection; unknown or changed host keys are refused, never accepted."""
    kh = Path(p.known_hosts).expanduser()
    if not kh.is_file():
        raise TargetError(
            f"known_hosts file {kh} does not exist, so the board {p.host}:{p.port} cannot be verified; "
            + _keyscan_hint(p, kh)
        )
    key = str(Path(p.key).expanduser()) if p.key else None
    if key and not Path(key).is_file():
        raise ConfigError(f"SSH key file {key} does not exist; set 'key' in the board profile or the suite")
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(str(kh))
    except (OSError, paramiko.SSHException) as exc:
        raise TargetError(f"cannot read known_hosts file {kh}: {exc}") from None
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            hostname=p.host,
            port=p.port,
            username=p.user,
            key_filename=key,
            allow_agent=key is None,
            look_for_keys=key is None,
            timeout=p.connect_timeout_s,
            banner_timeout=p.connect_timeout_s,
            auth_timeout=p.connect_timeout_s,
        )
    except paramiko.BadHostKeyException as exc:
        client.close()
        entry = p.host if p.port == 22 else f"[{p.host}]:{p.port}"
        raise TargetError(
            f"HOST KEY MISMATCH for {p.host}:{p.port}: the board presented a {exc.key.get_name()} key "
            f"SHA256:{_fingerprint(exc.key)} but {kh} expects SHA256:{_fingerprint(exc.expected_key)}. "
            "This is either a reinstalled board or someone in the middle; refusing to connect. "
            f"If the board was reinstalled, remove the old entry with: ssh-keygen -R {shlex.quote(entry)} "
            f"-f {shlex.quote(str(kh))}, then " + _keyscan_hint(p, kh)
        ) from None
    except paramiko.PasswordRequiredException:
        client.close()
        raise TargetError(
            f"the SSH key {key} is protected by a passphrase; load it into ssh-agent (ssh-add "
            f"{shlex.quote(str(key))}) and leave 'key' unset so the agent's keys are used, or use a key "
            "without a passphrase for the benchmark host"
        ) from None
    except paramiko.AuthenticationException:
        client.close()
        which = f"the key {key}" if key else "the SSH agent's and default keys"
        pub = f"{key}.pub" if key else "~/.ssh/id_ed25519.pub"
        raise TargetError(
            f"the board {p.host}:{p.port} refused {which} for user {p.user!r}; install the public key "
            f"on the board with: ssh-copy-id -i {shlex.quote(pub)} -p {p.port} "
            f"{shlex.quote(p.user + '@' + p.host)}  (or set 'key'/'user' in the board profile)"
        ) from None
    except paramiko.SSHException as exc:
        client.close()
        if "not found in known_hosts" in str(exc):
            raise TargetError(
                f"the board {p.host}:{p.port} is not in {kh} (host keys are never accepted "
                "automatically); " + _keyscan_hint(p, kh)
            ) from None
        raise TargetError(f"SSH to {p.host}:{p.port} failed: {exc}") from None
    except OSError as exc:
        client.close()
        raise TargetError(
            f"cannot reach the board at {p.host}:{p.port}: {exc}; check that it is powered, on the "
            "network and runs sshd (host/port in the board profile)"
        ) from None
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(10)  # notice a dead board during long windows, not only at the timeout
    return client


def _fingerprint(key: paramiko.PKey) -> str:
    import base64

    return base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def host_key_fingerprint(client: paramiko.SSHClient) -> str:
    transport = client.get_transport()
    if transport is None:
        return ""
    key = transport.get_remote_server_key()
    return f"{key.get_name()} SHA256:{_fingerprint(key)}"


@dataclass
class Pusher:
    """Content-addressed uploads into ``workdir`` on the board (skipped when the sha256 matches)."""

    sftp: paramiko.SFTPClient
    workdir: str
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def mkdirs(self, path: str) -> None:
        parts = [q for q in path.split("/") if q not in ("", ".")]
        cur = "/" if path.startswith("/") else ""
        for part in parts:
            cur = posixpath.join(cur, part) if cur else part
            try:
                if not stat.S_ISDIR(self.sftp.stat(cur).st_mode or 0):
                    raise TargetError(f"{cur} on the board exists and is not a directory; change 'workdir'")
            except FileNotFoundError:
                try:
                    self.sftp.mkdir(cur)
                except OSError as exc:
                    raise TargetError(f"cannot create {cur} on the board: {exc}; change 'workdir'") from None

    def put(self, data: bytes, remote: str) -> None:
        """Write ``data`` to ``remote`` atomically (temp file + rename)."""
        self.mkdirs(posixpath.dirname(remote) or ".")
        tmp = f"{remote}.part-{time.monotonic_ns()}"
        try:
            self.sftp.putfo(io.BytesIO(data), tmp, file_size=len(data), confirm=True)
            self.sftp.posix_rename(tmp, remote)
        except OSError as exc:
            raise TargetError(f"cannot upload {remote} to the board: {exc}") from None
        self.uploaded.append(remote)

    def remote_sha256(self, remote: str) -> str | None:
        h = hashlib.sha256()
        try:
            with self.sftp.open(remote, "rb") as f:
                f.prefetch()
                for block in iter(lambda: f.read(1 << 16), b""):
                    h.update(block)
        except OSError:
            return None
        return h.hexdigest()

    def push_agent(self) -> str:
        """Upload the agent unless the board already holds this exact version; returns its path."""
        sha = agent_sha256()
        remote = posixpath.join(self.workdir, "agent", f"board_agent-{sha[:16]}.py")
        if self.remote_sha256(remote) == sha:
            self.skipped.append(remote)
        else:
            self.put(agent_bytes(), remote)
            if self.remote_sha256(remote) != sha:
                raise TargetError(
                    f"the agent uploaded to {remote} does not hash back; board disk full or failing?"
                )
        return remote

    def push_model(self, local: Path, client: AgentClient) -> tuple[str, str]:
        """Upload a model file unless the board holds the same bytes; returns (remote path, sha256)."""
        data = Path(local).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        ext = "".join(Path(local).suffixes[-1:]) or ".bin"
        ext = ext if ext.replace(".", "").isalnum() else ".bin"
        remote = posixpath.join(self.workdir, "models", sha + ext)
        if client.sha256(remote) == sha:
            self.skipped.append(remote)
            return remote, sha
        self.put(data, remote)
        got = client.sha256(remote)
        if got != sha:
            raise TargetError(
                f"model uploaded to {remote} hashes to {got}, expected {sha}; board disk failing?"
            )
        return remote, sha


def start_agent(
    client: paramiko.SSHClient, python: str, agent_path: str, timeout_s: float
) -> tuple[paramiko.Channel, AgentClient]:
    """Start ``python agent_path`` in an SSH exec channel and wait for its banner."""
    transport = client.get_transport()
    if transport is None:
        raise TargetError("the SSH connection closed before the agent could start")
    chan = transport.open_session()
    chan.exec_command(f"exec {shell_word(python)} -u {shell_word(agent_path)}")
    agent = AgentClient(chan, timeout_s=timeout_s)
    try:
        agent.boot(timeout_s)
    except TargetError as exc:
        raise TargetError(_start_failure(chan, python, exc)) from None
    return chan, agent


def _start_failure(chan: paramiko.Channel, python: str, exc: Exception) -> str:
    err = b""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        if chan.recv_stderr_ready():
            err += chan.recv_stderr(1 << 16)
        elif chan.exit_status_ready() and not chan.recv_stderr_ready():
            break
        else:
            time.sleep(0.02)
    status = chan.recv_exit_status() if chan.exit_status_ready() else None
    text = err.decode("utf-8", "replace").strip()[-800:]
    if status in (126, 127):
        return (
            f"the Python interpreter {python!r} was not found or is not executable on the board "
            f"({text or 'exit ' + str(status)}); set 'python' in the board profile to the board's "
            "python3 (e.g. /usr/bin/python3 or a venv's bin/python)"
        )
    return f"the board agent failed to start under {python!r}: {exc}; its stderr: {text or '(empty)'}"
