"""Facts about the host recorded with every result (ISA flags, CPU model, git revision)."""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

ISA_FLAGS = (
    "avx",
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "amx_int8",
    "fma",
    "neon",
    "asimd",
    "asimddp",
    "sve",
    "i8mm",
)


@functools.cache
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def isa_flags() -> list[str]:
    """The ISA extensions that change int8/fp32 speed (VNNI, dot-product...)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    found: set[str] = set()
    for line in text.splitlines():
        if line.lower().startswith(("flags", "features")):
            found.update(line.split(":", 1)[1].split())
    return [f for f in ISA_FLAGS if f in found]


@functools.cache
def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def host_summary() -> dict[str, object]:
    return {
        "host": platform.node(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "isa": isa_flags(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
