"""Board profiles (``boards/<name>.toml``): memory budget, clocks, emulator and energy model.

The profiles ship with the package: setup.py installs the checkout's ``boards/`` (profiles, meter profiles,
firmware sources) as the package ``frugalbench_boards``, found with ``importlib.resources``, so a board
name works from any folder; a path to a user's own profile works too.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError
from ..sysinfo import data_dir


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    flash_bytes: int = Field(gt=0)
    ram_bytes: int = Field(gt=0)
    model_ram_bytes: int = Field(gt=0, description="bytes the uploaded blob may take")
    db_bytes: int = Field(gt=0, description="input / batch buffer")
    act_max: int = Field(gt=0, description="widest activation vector")


class EnergyModel(BaseModel):
    """Simulated energy: ``E = instructions x CPI x power_w / clock_hz`` (class ``simulated``).

    The clock and CPI alone give the simulated latency on the named MCU; ``power_w`` (and so the
    energy) stays ``None`` where no datasheet or published measurement gives one: unknown, never 0.
    """

    model_config = ConfigDict(extra="forbid")
    mcu: str
    clock_hz: float = Field(gt=0)
    voltage_v: float | None = Field(None, gt=0)
    power_w: float | None = Field(None, gt=0)
    cycles_per_instruction: float = Field(1.0, gt=0)
    source: str
    #: current while the core sleeps in WFI (the bench twin's sleep level); None: the board has no figure
    sleep_current_a: float | None = Field(None, ge=0)
    sleep_source: str = ""

    @property
    def active_current_a(self) -> float | None:
        """Run current at ``clock_hz`` from the supply: ``power_w / voltage_v`` (None if either is unknown)."""
        if self.power_w is None or self.voltage_v is None:
            return None
        return self.power_w / self.voltage_v

    @property
    def joules_per_instruction(self) -> float | None:
        if self.power_w is None:
            return None
        return self.cycles_per_instruction * self.power_w / self.clock_hz

    def describe(self) -> str:
        jpi = self.joules_per_instruction
        if jpi is None or self.power_w is None:
            return (
                f"{self.mcu} at {self.clock_hz / 1e6:g} MHz, CPI {self.cycles_per_instruction:g}; "
                f"run power unknown, so no energy ({self.source})"
            )
        volts = f", {self.voltage_v:g} V" if self.voltage_v is not None else ""
        return (
            f"{self.mcu} at {self.clock_hz / 1e6:g} MHz{volts}: {self.power_w * 1e3:g} mW run power, "
            f"CPI {self.cycles_per_instruction:g} -> {jpi * 1e12:.1f} pJ/instruction ({self.source})"
        )


class BoardProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    label: str = ""
    firmware_board: str
    emulator: str | None = None
    qemu_machine: str = Field("mps2-an386", description="qemu-system-arm -M value (its default CPU is used)")
    icount_shift: int = Field(0, ge=0, le=10)
    baud: int = Field(115200, gt=0)
    tick_hz: int = Field(gt=0)
    cpu: str = "cortex-m4f"
    isa: str = "armv7e-m (thumb-2, DSP, FPv4-SP)"
    budget: Budget
    energy: EnergyModel | None = None
    meter: dict[str, Any] | None = None
    path: str = ""

    @property
    def emulated(self) -> bool:
        return self.emulator == "qemu"


def boards_dir() -> Path:
    """The packaged board profiles, meter profiles and firmware sources (the checkout's ``boards/``)."""
    return data_dir("frugalbench_boards", "boards")


def known_boards() -> list[str]:
    """Names of the packaged board profiles."""
    return sorted(x.stem for x in boards_dir().glob("*.toml"))


def find_board_file(name_or_path: str) -> Path | None:
    """A board profile file: a path as given (absolute or from the working folder), else a packaged
    profile by name (``qemu-mps2-an386``) or by its path in the checkout (``boards/raspberry-pi-5.toml``)."""
    p = Path(name_or_path).expanduser()
    if (p.suffix == ".toml" or p.is_absolute()) and p.is_file():
        return p
    if p.is_absolute():
        return None
    rel = p.relative_to("boards") if p.parts[:1] == ("boards",) and len(p.parts) > 1 else p
    c = boards_dir() / (rel if p.suffix == ".toml" else f"{rel}.toml")
    return c if c.is_file() else None


def resolve_board(name_or_path: str) -> Path:
    """``qemu-mps2-an386`` -> the packaged ``qemu-mps2-an386.toml``; a path is taken as is."""
    found = find_board_file(name_or_path)
    if found is None:
        raise ConfigError(
            f"board profile {name_or_path!r} not found; known boards: {', '.join(known_boards())} "
            "(or give the path of a profile file)"
        )
    return found


def load_board(name_or_path: str) -> BoardProfile:
    path = resolve_board(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return BoardProfile(**data, path=str(path))
    except (OSError, tomllib.TOMLDecodeError, ValidationError, TypeError) as e:
        raise ConfigError(f"board profile {path}: {e}") from None
