"""Board profiles (``boards/<name>.toml``): memory budget, clocks, emulator and energy model."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BOARDS_DIR = PROJECT_ROOT / "boards"


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    flash_bytes: int = Field(gt=0)
    ram_bytes: int = Field(gt=0)
    model_ram_bytes: int = Field(gt=0, description="bytes the uploaded blob may take")
    db_bytes: int = Field(gt=0, description="input / batch buffer")
    act_max: int = Field(gt=0, description="widest activation vector")


class EnergyModel(BaseModel):
    """Simulated energy: ``E = instructions x CPI x power_w / clock_hz`` (class ``simulated``)."""

    model_config = ConfigDict(extra="forbid")
    mcu: str
    clock_hz: float = Field(gt=0)
    voltage_v: float = Field(gt=0)
    power_w: float = Field(gt=0)
    cycles_per_instruction: float = Field(1.0, gt=0)
    source: str

    @property
    def joules_per_instruction(self) -> float:
        return self.cycles_per_instruction * self.power_w / self.clock_hz

    def describe(self) -> str:
        return (
            f"{self.mcu} at {self.clock_hz / 1e6:g} MHz, {self.voltage_v:g} V: {self.power_w * 1e3:g} mW run power, "
            f"CPI {self.cycles_per_instruction:g} -> {self.joules_per_instruction * 1e12:.1f} pJ/instruction ({self.source})"
        )


class BoardProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    label: str = ""
    firmware_board: str
    emulator: str | None = None
    qemu_machine: str = "mps2-an386"
    icount_shift: int = Field(0, ge=0, le=10)
    baud: int = Field(115200, gt=0)
    tick_hz: int = Field(gt=0)
    cpu: str = "cortex-m4f"
    budget: Budget
    energy: EnergyModel | None = None
    meter: dict[str, Any] | None = None
    path: str = ""

    @property
    def emulated(self) -> bool:
        return self.emulator == "qemu"


def resolve_board(name_or_path: str) -> Path:
    """``qemu-mps2-an386`` -> ``boards/qemu-mps2-an386.toml``; a path is taken as is."""
    p = Path(name_or_path).expanduser()
    cands = [p] if p.suffix == ".toml" else [BOARDS_DIR / f"{name_or_path}.toml"]
    if not p.is_absolute():
        cands += [Path.cwd() / p, PROJECT_ROOT / p]
    for c in cands:
        if c.is_file():
            return c
    known = sorted(x.stem for x in BOARDS_DIR.glob("*.toml"))
    raise ConfigError(f"board profile {name_or_path!r} not found; known boards: {', '.join(known)}")


def load_board(name_or_path: str) -> BoardProfile:
    path = resolve_board(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return BoardProfile(**data, path=str(path))
    except (OSError, tomllib.TOMLDecodeError, ValidationError, TypeError) as e:
        raise ConfigError(f"board profile {path}: {e}") from None
