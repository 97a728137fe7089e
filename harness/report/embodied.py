"""Embodied carbon (scope 3) of a device: profile, Boavizta IoT lookup, share per 1000 inferences.

A profile file (TOML) names, per target of the suite, the device's manufacturing footprint, where the
figure comes from, an assumed lifetime and a duty (the fraction of that lifetime spent on inference)::

    [targets.pi5]
    embodied_kgco2e = 10.0
    source = "vendor product carbon footprint, 2024"
    lifetime_years = 5
    duty = 0.5

    [boards."Raspberry Pi 5"]             # every target on this board (label, model prefix, profile stem)
    embodied_kgco2e = 10.0
    source = "..."
    lifetime_years = 5
    duty = 0.5

    [targets.stm32]                       # or Boavizta's IoT functional blocks (Pirson & Bol 2021)
    boavizta_iot = { processing = "HSL-1", memory = "HSL-1", pcb = "HSL-1", power_supply = "HSL-1" }
    lifetime_years = 8
    duty = 1.0

``boavizta_iot`` reads the factors shipped inside the ``boaviztapi`` package (``pip install --no-deps
boaviztapi``: only its data files are read, the package is never imported). The report shows the
embodied share separately from the use-phase share; the two are never summed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import ConfigError

SECONDS_PER_YEAR = 365.25 * 86400


@dataclass(frozen=True)
class EmbodiedProfile:
    """Manufacturing footprint of one device with its source, lifetime and duty."""

    target: str
    kgco2e: float
    source: str
    lifetime_years: float
    duty: float

    def g_per_1000(self, throughput_ips: float | None) -> float | None:
        """Embodied gCO2e attributed to 1000 inferences at ``throughput_ips`` over the lifetime."""
        if not throughput_ips or throughput_ips <= 0:
            return None
        lifetime_inferences = self.lifetime_years * SECONDS_PER_YEAR * self.duty * throughput_ips
        return 1000.0 * self.kgco2e * 1000.0 / lifetime_inferences


def _boavizta_data_dir() -> Path | None:
    spec = importlib.util.find_spec("boaviztapi")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations))) / "data"
    return d if (d / "factors.yml").is_file() else None


@cache
def _boavizta_iot() -> tuple[dict[str, Any], str]:
    d = _boavizta_data_dir()
    if d is None:
        raise ConfigError(
            "boavizta_iot needs Boavizta's reference data: `pip install --no-deps boaviztapi` "
            "(only its data files are read), or give embodied_kgco2e and source instead"
        )
    text = (d / "factors.yml").read_text(encoding="utf-8").strip()
    # the file is a sequence of top-level JSON members separated by blank lines
    doc = json.loads("{" + re.sub(r"\n}\s*\n\s*\"", '\n},\n"', text) + "}")
    version = "unknown"
    meta = list(d.parent.parent.glob("boaviztapi-*.dist-info"))
    if meta:
        version = meta[0].name.removeprefix("boaviztapi-").removesuffix(".dist-info")
    return doc["IoT"], version


def boavizta_iot_kg(blocks: dict[str, str]) -> tuple[float, str]:
    """kgCO2e (manufacture + end of life) of an IoT device built from Boavizta functional blocks."""
    iot, version = _boavizta_iot()
    total = 0.0
    for block, level in blocks.items():
        levels = iot.get(block)
        if levels is None:
            raise ConfigError(f"unknown Boavizta IoT block {block!r}; known: {sorted(iot)}")
        f = levels.get(level)
        if f is None:
            raise ConfigError(f"Boavizta IoT block {block!r} has no level {level!r}; known: {sorted(levels)}")
        total += float(f["manufacture"]["gwp"]) + float(f["eol"]["gwp"])
    desc = ", ".join(f"{b} {lv}" for b, lv in sorted(blocks.items()))
    src = (
        f"Boavizta IoT functional blocks (boaviztapi {version} data/factors.yml, after Pirson & Bol 2021), "
        f"manufacture + end of life: {desc}"
    )
    return total, src


def _number(x: object) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise ConfigError(f"expected a finite number, got {x!r}")
    return float(x)


@dataclass(frozen=True)
class Profiles:
    """Profiles per suite target name and per board (label, model prefix, profile file stem or CPU)."""

    targets: dict[str, EmbodiedProfile]
    boards: dict[str, EmbodiedProfile]

    def find(self, target: str, provenance: dict[str, Any]) -> EmbodiedProfile | None:
        """The profile of a result: its target's entry first, else the first board entry that matches."""
        if target in self.targets:
            return self.targets[target]
        model = str(provenance.get("board_model") or "")
        names = {
            str(provenance.get("board_label") or ""),
            str(provenance.get("board") or ""),
            Path(str(provenance.get("board_profile") or "")).stem,
            str(provenance.get("cpu") or ""),
        } - {""}
        for key, prof in self.boards.items():
            if key in names or (model and model.startswith(key)):
                return prof
        return None


def _profile(where: str, name: str, t: dict[str, Any]) -> EmbodiedProfile:
    unknown = set(t) - {"embodied_kgco2e", "source", "lifetime_years", "duty", "boavizta_iot"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    try:
        if "boavizta_iot" in t:
            blocks = t["boavizta_iot"]
            if not isinstance(blocks, dict):
                raise ConfigError('boavizta_iot must be a table of block = "HSL-n"')
            kg, src = boavizta_iot_kg({str(k): str(v) for k, v in blocks.items()})
        elif "embodied_kgco2e" in t and t.get("source"):
            kg, src = _number(t["embodied_kgco2e"]), str(t["source"])
        else:
            raise ConfigError("give embodied_kgco2e with its source, or boavizta_iot blocks")
        life, duty = _number(t.get("lifetime_years", 0)), _number(t.get("duty", 0))
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    if kg < 0 or life <= 0 or not 0 < duty <= 1:
        raise ConfigError(
            f"{where}: need embodied_kgco2e >= 0, lifetime_years > 0 and duty in (0, 1] (stated assumptions)"
        )
    return EmbodiedProfile(name, kg, src, life, duty)


def load_profiles(path: str | Path) -> Profiles:
    """Parse an embodied-carbon profile file: ``[targets.NAME]`` and ``[boards."LABEL"]`` tables."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"embodied profile {path}: {e.strerror}; pass an existing TOML file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"embodied profile {path}: not valid TOML: {e}") from None
    unknown = set(data) - {"targets", "boards"}
    if unknown:
        raise ConfigError(
            f"embodied profile {path}: unknown tables {sorted(unknown)}; use [targets.X] or [boards.X]"
        )
    out = Profiles({}, {})
    for section in ("targets", "boards"):
        tables = data.get(section) or {}
        if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
            raise ConfigError(
                f"embodied profile {path}: expected [{section}.NAME] tables (see harness/report/embodied.py)"
            )
        for name, t in tables.items():
            getattr(out, section)[name] = _profile(f"{path}: {section}.{name}", name, t)
    return out
