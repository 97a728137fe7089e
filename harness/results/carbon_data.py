"""Grid emission factors per country and region, from the data that ships inside CodeCarbon.

``harness/results/carbon_grid.json`` is a derived table, built once from the ``codecarbon`` wheel (3.3.2) with
``python -m harness.results.carbon_data PATH`` (PATH = an unpacked ``codecarbon`` package folder) and committed,
so a run needs neither CodeCarbon nor a network. Every entry keeps the file it came from, the
CodeCarbon version and the data year, and the report prints them. Sources inside CodeCarbon 3.3.2:

- ``data/private_infra/carbon_intensity_per_source.json``: the world average (475 gCO2e/kWh, IEA 2019);
- ``data/private_infra/global_energy_mix.json``: per-country ``carbon_intensity`` (gCO2e/kWh) with a
  ``year`` per country (mostly 2022-2023), compiled by CodeCarbon from Our World in Data's energy data;
- ``data/private_infra/2023/usa_emissions.json``: US states, EPA eGRID2023 (lbs/MWh, converted);
- ``data/private_infra/nordic_emissions.json``: Swedish and Norwegian bidding zones (ENTSO-E, 2025);
- ``data/private_infra/2023/china_provincial_emissions.json``: Chinese provinces (MEE/NBS 2023, CO2 only).

Keys are upper case: ISO 3166 alpha-3 country codes (``FRA``), upper-case country names (``FRANCE``),
``USA-CA`` for US states, ``SE3``/``NO1`` for Nordic zones, ``CN-BJ`` for Chinese provinces.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import ConfigError

TABLE = Path(__file__).with_name("carbon_grid.json")
LB_PER_MWH_TO_G_PER_KWH = 453.59237 / 1000.0


@dataclass(frozen=True)
class GridFactor:
    """One grid emission factor in gCO2e/kWh, the text naming its source, and its region key."""

    g_per_kwh: float
    source: str
    region: str


@cache
def _load() -> dict[str, Any]:
    try:
        return json.loads(TABLE.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"grid factor table {TABLE} is missing or corrupt ({e}); reinstall frugalbench or rebuild it "
            "with `python -m harness.results.carbon_data PATH/TO/codecarbon`"
        ) from None


def factors() -> dict[str, GridFactor]:
    """All regional factors, keyed by upper-case region code or name (see the module docstring)."""
    data = _load()
    out: dict[str, GridFactor] = {}
    for key, e in data["factors"].items():
        src = data["sources"][e["src"]]
        text = f"{src['origin']}, {e['name']} {e['year']} (CodeCarbon {data['codecarbon_version']}: {src['file']})"
        gf = GridFactor(float(e["g_per_kwh"]), text, key)
        out[key] = gf
        for alias in e.get("aliases", []):
            out.setdefault(alias, gf)
    return out


def table_info() -> dict[str, Any]:
    """Provenance of the shipped table: CodeCarbon version and the source files with their origins."""
    data = _load()
    return {"codecarbon_version": data["codecarbon_version"], "sources": data["sources"]}


def build_table(codecarbon_dir: Path, version: str) -> dict[str, Any]:
    """Derive our table from an unpacked ``codecarbon`` package folder (the one holding ``data/``)."""
    infra = codecarbon_dir / "data" / "private_infra"
    sources = {
        "world": {
            "file": "data/private_infra/carbon_intensity_per_source.json",
            "origin": "IEA via CodeCarbon (world_average)",
        },
        "owid": {
            "file": "data/private_infra/global_energy_mix.json",
            "origin": "Our World in Data energy data via CodeCarbon (per-country carbon intensity)",
        },
        "egrid": {
            "file": "data/private_infra/2023/usa_emissions.json",
            "origin": "EPA eGRID2023 total output CO2e rate via CodeCarbon",
        },
        "nordic": {
            "file": "data/private_infra/nordic_emissions.json",
            "origin": "ENTSO-E generation mix per bidding zone via CodeCarbon",
        },
        "china": {
            "file": "data/private_infra/2023/china_provincial_emissions.json",
            "origin": "China MEE/NBS provincial factors via CodeCarbon (CO2 only)",
        },
    }
    fac: dict[str, dict[str, Any]] = {}
    per_source = json.loads((infra / "carbon_intensity_per_source.json").read_text(encoding="utf-8"))
    if "world_average" in per_source:  # the same 475 g/kWh as harness.results.carbon's default, with its origin
        fac["WORLD"] = {
            "g_per_kwh": float(per_source["world_average"]),
            "year": 2019,
            "name": "world average (IEA Global Energy & CO2 Status Report)",
            "src": "world",
        }
    mix = json.loads((infra / "global_energy_mix.json").read_text(encoding="utf-8"))
    for iso, e in sorted(mix.items()):
        if e.get("carbon_intensity") is None:
            continue
        name = str(e.get("country_name", iso))
        fac[iso.upper()] = {
            "g_per_kwh": round(float(e["carbon_intensity"]), 3),
            "year": e.get("year"),
            "name": name,
            "src": "owid",
            "aliases": [name.upper()],
        }
    usa = json.loads((infra / "2023" / "usa_emissions.json").read_text(encoding="utf-8"))
    year = usa.get("_source", {}).get("year")
    for state, e in sorted(usa.items()):
        if state.startswith("_"):
            continue
        fac[f"USA-{e['regionCode'].upper()}"] = {
            "g_per_kwh": round(float(e["emissions"]) * LB_PER_MWH_TO_G_PER_KWH, 3),
            "year": year,
            "name": state.title(),
            "src": "egrid",
        }
    for fname, src in (
        ("nordic_emissions.json", "nordic"),
        ("2023/china_provincial_emissions.json", "china"),
    ):
        d = json.loads((infra / fname).read_text(encoding="utf-8"))
        for code, e in sorted(d["data"].items()):
            fac[code.upper()] = {
                "g_per_kwh": float(e["emission_factor"]),
                "year": e.get("year", d.get("metadata", {}).get("year")),
                "name": e.get("description", code),
                "src": src,
            }
    return {"codecarbon_version": version, "sources": sources, "factors": fac}


def main(argv: list[str]) -> int:
    """``python -m harness.results.carbon_data PATH/TO/codecarbon [VERSION]``: rebuild the shipped table."""
    if not argv:
        print(__doc__)
        return 2
    folder = Path(argv[0])
    version = argv[1] if len(argv) > 1 else "unknown"
    table = build_table(folder, version)
    TABLE.write_text(json.dumps(table, indent=0, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {TABLE}: {len(table['factors'])} regions from CodeCarbon {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
