"""``frugalbench setup``: install the Debian packages the quick suite's MCU target needs.

The emulated Cortex-M4 target needs QEMU and the arm-none-eabi cross compiler with newlib and make
(``qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi make``). Run as root where apt-get exists,
this installs those that are missing (``apt-get update`` first, non-interactive); otherwise it prints
one line with the exact command. Without them a run skips the MCU rows and says why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Annotated

import typer

from ..errors import FrugalbenchError
from ..mcu.build import APT_PACKAGES as TOOLCHAIN_PACKAGES

MCU_PACKAGES = ("qemu-system-arm", *TOOLCHAIN_PACKAGES)
# the programs those packages bring, for systems without dpkg
MCU_TOOLS = ("qemu-system-arm", "arm-none-eabi-gcc", "make")
APT_OPTS = ("-o", "DPkg::Lock::Timeout=600")


def _is_root() -> bool:
    return os.geteuid() == 0


def missing_packages(packages: tuple[str, ...] = MCU_PACKAGES) -> list[str] | None:
    """The packages of ``packages`` that dpkg does not list as installed; ``None`` without dpkg."""
    if shutil.which("dpkg-query") is None:
        return None
    missing = []
    for pkg in packages:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True, timeout=60
        )
        if proc.returncode != 0 or not proc.stdout.strip().endswith(" installed"):
            missing.append(pkg)
    return missing


def apt_command(missing: list[str]) -> str:
    """The one line a user runs to install ``missing``."""
    return f"sudo apt-get update && sudo apt-get install -y --no-install-recommends {' '.join(missing)}"


def _apt(args: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", *APT_OPTS, *args]
    typer.echo(f"running: {' '.join(cmd)}", err=True)
    proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise FrugalbenchError(
            f"{' '.join(cmd)} failed (exit {proc.returncode}); fix the apt error above and re-run "
            "frugalbench setup (runs still work: they skip the MCU target and say why)"
        )


def setup_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print what would be installed, install nothing")] = False,
) -> None:
    """Install the Debian packages of the quick suite's MCU target (QEMU, arm-none-eabi-gcc, newlib, make)."""
    missing = missing_packages()
    if missing is None:  # not Debian: name the programs, not packages
        absent = [t for t in MCU_TOOLS if shutil.which(t) is None]
        if absent:
            typer.echo(
                f"no dpkg here: install {', '.join(absent)} (and newlib for arm-none-eabi) with your package "
                "manager for the MCU target; runs skip it until then"
            )
        else:
            typer.echo(f"MCU target ready: {', '.join(MCU_TOOLS)} found")
        return
    if not missing:
        typer.echo(f"MCU target ready: {' '.join(MCU_PACKAGES)} installed")
        return
    why = (
        "would run" if dry_run
        else "not root: for the MCU target run" if not _is_root()
        else "apt-get not found: for the MCU target install" if shutil.which("apt-get") is None
        else None
    )
    if why:
        typer.echo(f"{why}: {apt_command(missing)}")
        return
    _apt(["update", "-qq"])
    _apt(["install", "-y", "-qq", "--no-install-recommends", *missing])
    still = missing_packages(tuple(missing)) or []
    if still:
        raise FrugalbenchError(f"apt-get did not install {' '.join(still)}; try: {apt_command(still)}")
    typer.echo(f"installed {' '.join(missing)}: MCU target ready")
