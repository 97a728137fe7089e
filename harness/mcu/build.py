"""Build the firmware with ``make -C boards/firmware BOARD=...`` (incremental, serialised by a lock)."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

from ..errors import TargetUnavailable

REPO = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = REPO / "boards" / "firmware"
TOOLS = ("arm-none-eabi-gcc", "make")
APT_HINT = "apt-get install -y --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi make"


def toolchain_missing() -> str | None:
    """``None`` if the cross toolchain is installed, else what is missing and how to install it."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not found; install with: {APT_HINT}"
    return None


def boards() -> list[str]:
    return sorted(p.name for p in (FIRMWARE_DIR / "boards").iterdir() if (p / "board.c").exists())


def build_firmware(
    board: str, *, portable: bool = False, model_blob: Path | None = None, timeout_s: float = 300.0
) -> Path:
    """Build (or bring up to date) the firmware for ``board``; returns the ELF path.

    ``model_blob`` builds a model into flash (run at boot without upload, e.g. for the MLCommons runner).
    """
    if board not in boards():
        raise TargetUnavailable(f"no firmware board layer {board!r}; available: {', '.join(boards())}")
    why = toolchain_missing()
    if why:
        raise TargetUnavailable(why)
    out = (
        FIRMWARE_DIR
        / "build"
        / (board + ("-portable" if portable else "") + ("-model" if model_blob else ""))
    )
    out.mkdir(parents=True, exist_ok=True)
    cmd = ["make", "-s", "-C", str(FIRMWARE_DIR), f"BOARD={board}", f"PORTABLE={int(portable)}"]
    if model_blob is not None:
        cmd.append(f"MODEL_BLOB={Path(model_blob).resolve()}")
    with open(FIRMWARE_DIR / "build" / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise TargetUnavailable(
            f"firmware build failed ({' '.join(cmd)}):\n{(proc.stdout + proc.stderr)[-2000:]}"
        )
    return out / "fw.elf"
