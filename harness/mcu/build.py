"""Build the MCU firmware into the per-user cache, keyed by a hash of everything the build reads.

The sources ship with the package (``frugalbench_boards/firmware``, the checkout's ``boards/firmware``)
and are never written to: each build runs ``make`` on a private copy in a temporary folder of the cache
and is renamed, complete, to ``<cache>/firmware/<board>[-portable][-model]-<hash>/`` (``fw.elf``,
``fw.bin``, ``fw.map``). The hash covers the sources, the board, the options, the model blob and the
compiler version, so a changed input builds anew and an unchanged one is reused. Concurrent builds never
see each other's files; a lock per hash keeps two processes from building the same firmware twice.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import TargetUnavailable
from .board import boards_dir

TOOLS = ("arm-none-eabi-gcc", "make")
APT_PACKAGES = ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "make")
APT_HINT = f"frugalbench setup (or: apt-get install -y --no-install-recommends {' '.join(APT_PACKAGES)})"
# what a build reads, relative to the firmware folder (the same files pyproject.toml ships)
SOURCES = ("Makefile", "src/*.[ch]", "src/*.ld", "boards/*/*.[ch]", "boards/*/*.ld", "boards/*/*.mk")
OUTPUTS = ("fw.elf", "fw.bin", "fw.map")
# make variables the Makefile takes from the environment (``?=``): a build sets them itself or not at all
_ENV_DROP = ("CROSS", "OPT", "MODEL_BLOB", "BUILD", "BOARD", "PORTABLE")


def firmware_dir() -> Path:
    """The firmware sources (read only)."""
    return boards_dir() / "firmware"


def cache_root() -> Path:
    """``<cache>/firmware``; ``<cache>`` follows :func:`harness.pipeline.variants.default_cache_dir`
    (``$FRUGALBENCH_CACHE``, else ``$XDG_CACHE_HOME/frugalbench``, else ``~/.cache/frugalbench``)."""
    env = os.environ.get("FRUGALBENCH_CACHE")
    base = (
        Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "frugalbench"
    )
    return base / "firmware"


def toolchain_missing() -> str | None:
    """``None`` if the cross toolchain is installed, else what is missing and how to install it."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not found; install with: {APT_HINT}"
    return None


def boards() -> list[str]:
    """The firmware's board layers (``boards/firmware/boards/<name>/board.c``)."""
    return sorted(p.name for p in (firmware_dir() / "boards").iterdir() if (p / "board.c").exists())


def source_files() -> dict[str, bytes]:
    """Every file the build reads, by its path relative to the firmware folder."""
    root = firmware_dir()
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for pattern in SOURCES
        for p in sorted(root.glob(pattern))
        if p.is_file()
    }


@functools.cache
def _compiler_version(cc: str) -> str:
    proc = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
    return proc.stdout.splitlines()[0] if proc.stdout else ""


def build_key(files: dict[str, bytes], board: str, portable: bool, blob: bytes | None) -> str:
    """16 hex digits of SHA-256 over the sources, the board, the options, the blob and the compiler."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\0{len(files[name])}\0".encode())
        h.update(files[name])
    blob_digest = hashlib.sha256(blob).hexdigest() if blob is not None else "-"
    h.update(f"{board}\0{int(portable)}\0{blob_digest}\0{_compiler_version(TOOLS[0])}".encode())
    return h.hexdigest()[:16]


def build_firmware(
    board: str, *, portable: bool = False, model_blob: Path | None = None, timeout_s: float = 300.0
) -> Path:
    """Build ``board``'s firmware (or reuse the cached build of the same inputs); returns the ELF path.

    ``model_blob`` builds a model into flash (run at boot without upload, e.g. for the MLCommons runner).
    """
    if board not in boards():
        raise TargetUnavailable(f"no firmware board layer {board!r}; available: {', '.join(boards())}")
    why = toolchain_missing()
    if why:
        raise TargetUnavailable(why)
    files = source_files()
    blob = Path(model_blob).read_bytes() if model_blob is not None else None
    name = board + ("-portable" if portable else "") + ("-model" if blob is not None else "")
    root = cache_root()
    final = root / f"{name}-{build_key(files, board, portable, blob)}"
    if (final / "fw.elf").is_file():
        return final / "fw.elf"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (final / "fw.elf").is_file():  # another process may have built it while we waited
            _build(files, board, portable, blob, final, timeout_s)
    return final / "fw.elf"


def _build(
    files: dict[str, bytes], board: str, portable: bool, blob: bytes | None, final: Path, timeout_s: float
) -> None:
    """Run make on a private copy of ``files`` and rename the outputs to ``final`` in one step."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        src = tmp / "src"
        for rel, data in files.items():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes(data)
        cmd = [
            "make",
            "-s",
            f"-j{min(4, os.cpu_count() or 1)}",
            "-C",
            str(src),
            f"BOARD={board}",
            f"PORTABLE={int(portable)}",
            "BUILD=out",
        ]
        if blob is not None:
            (src / "model.blob").write_bytes(blob)
            cmd.append("MODEL_BLOB=model.blob")
        env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired:
            raise TargetUnavailable(f"firmware build took over {timeout_s:g} s ({' '.join(cmd)})") from None
        if proc.returncode != 0:
            raise TargetUnavailable(
                f"firmware build failed ({' '.join(cmd)}):\n{(proc.stdout + proc.stderr)[-2000:]}"
            )
        out = tmp / "fw"
        out.mkdir()
        for fn in OUTPUTS:
            os.replace(src / "out" / fn, out / fn)
        try:
            os.rename(out, final)  # atomic: readers see the whole build or none of it
        except OSError:
            if not (final / "fw.elf").is_file():  # not a build that won a race: a real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
