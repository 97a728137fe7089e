"""How one value reads in a report cell: numbers, yes/no, missing values (–), energies with a unit."""

from __future__ import annotations

from typing import Any


def cell(x: Any, spec: str = ".4g") -> str:
    """``x`` as text: ``–`` for unknown (None), yes/no for booleans, floats with ``spec``."""
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return format(x, spec)
    return str(x)


def energy_text(j: float | None) -> str:
    """Joules with the largest unit (J, mJ, µJ, nJ) that keeps the figure at 1 or above; ``–`` if unknown."""
    if j is None:
        return "–"
    for unit, f in (("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9)):
        if j >= f:
            return f"{j / f:.3g} {unit}"
    return f"{j:.3g} J"
