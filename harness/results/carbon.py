"""Grid emission factors (gCO2e/kWh) with their source, and CO2e per 1000 inferences.

CO2e per 1000 inferences = 1000 · E · PUE · FE, E in kWh. A suite gives a region (looked up here)
or its own factor and source. The regional table (and :class:`GridFactor`) lives in
:mod:`harness.results.carbon_data`, below this module.
"""

from __future__ import annotations

from ..errors import ConfigError
from . import carbon_data
from .carbon_data import GridFactor

J_PER_KWH = 3.6e6


# Only figures whose origin we can name. WORLD: CodeCarbon's documented world-average default.
_BUILTIN = {
    "WORLD": GridFactor(475.0, "CodeCarbon methodology, world average default (475 gCO2e/kWh)", "WORLD"),
}


def grid_factor(region: str | None, g_per_kwh: float | None = None, source: str | None = None) -> GridFactor:
    """The factor for ``region``, or the user's own figure (which must name its source)."""
    if g_per_kwh is not None:
        return GridFactor(g_per_kwh, source or "user-supplied", region or "user")
    key = (region or "WORLD").upper()
    table = dict(_BUILTIN)
    table.update(carbon_data.factors())
    if key not in table:
        raise ConfigError(
            f"no grid factor for region {region!r}; known: {', '.join(sorted(table))}. "
            "Set carbon.grid_factor_g_per_kwh and carbon.grid_factor_source in the suite instead."
        )
    return table[key]


def co2e_g_per_1000(energy_j: float | None, pue: float, factor_g_per_kwh: float) -> float | None:
    if energy_j is None:
        return None
    return 1000.0 * energy_j / J_PER_KWH * pue * factor_g_per_kwh
