"""Facts about the host recorded with every result (ISA flags, CPU model, git revision, CPU state, versions).

The CPU state (:func:`cpu_state`: cpufreq governor, current and maximum frequency per core, load
average) is read from ``/sys/devices/system/cpu/cpu*/cpufreq`` and :func:`os.getloadavg`; what cannot
be read is None, never guessed. :func:`package_versions` names the installed versions of the packages
that change the figures (None for one that is not installed).
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import ConfigError

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


CPU_SYSFS = Path("/sys/devices/system/cpu")
# the distributions whose versions are recorded with a local measurement
PACKAGES = ("numpy", "onnxruntime", "ai-edge-litert", "frugalbench")
# the keys of :func:`cpu_state`
CPU_STATE_KEYS = ("governor", "cpu_freq_cur_mhz", "cpu_freq_max_mhz", "load_avg")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def _mhz(path: Path) -> float | None:
    """A cpufreq value (kHz in the file) in MHz; None when unreadable or not a number."""
    text = _read(path)
    try:
        return None if text is None else int(text) / 1000
    except ValueError:
        return None


def cpu_state(cores: Iterable[int] | None = None, *, root: Path = CPU_SYSFS) -> dict[str, Any]:
    """The governor, frequencies and load now, for ``cores`` (default: the cores this process may run on).

    ``governor``: the distinct cpufreq governors of those cores, comma-separated; ``cpu_freq_cur_mhz`` and
    ``cpu_freq_max_mhz``: per core (``"cpu3"``), from ``scaling_cur_freq`` and ``cpuinfo_max_freq``;
    ``load_avg``: the 1, 5 and 15 minute load averages. Each is None where the system does not expose it
    (no cpufreq in most VMs and containers); a core whose file is unreadable maps to None.
    """
    if cores is None:
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    ids = sorted(set(cores))
    governors = {g for c in ids if (g := _read(root / f"cpu{c}/cpufreq/scaling_governor"))}
    cur = {f"cpu{c}": _mhz(root / f"cpu{c}/cpufreq/scaling_cur_freq") for c in ids}
    top = {f"cpu{c}": _mhz(root / f"cpu{c}/cpufreq/cpuinfo_max_freq") for c in ids}
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        load = None
    return {
        "governor": ",".join(sorted(governors)) or None,
        "cpu_freq_cur_mhz": cur if any(v is not None for v in cur.values()) else None,
        "cpu_freq_max_mhz": top if any(v is not None for v in top.values()) else None,
        "load_avg": load,
    }


@functools.cache
def package_versions() -> dict[str, str | None]:
    """Installed version of each of :data:`PACKAGES` (None for one that is not installed)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def data_dir(package: str, checkout_folder: str) -> Path:
    """A data package's folder on disk (``frugalbench_suites`` = the checkout's ``benches/``,
    ``frugalbench_boards`` = ``boards/``), found with importlib.resources so that an installed wheel
    works from any folder."""
    import importlib.resources

    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError:
        # an editable install made before the data packages existed: read the checkout's folder
        fallback = Path(__file__).resolve().parents[1] / checkout_folder
        if fallback.is_dir():
            return fallback
        raise ConfigError(
            f"frugalbench's data package {package} is not installed; reinstall frugalbench "
            "(pip install frugalbench, or pip install -e . in a checkout)"
        ) from None
    if not isinstance(root, Path):  # e.g. a zipped install: make and tomllib need real files
        raise ConfigError(f"{package} is not a folder on disk ({root}); install frugalbench unzipped")
    return root
