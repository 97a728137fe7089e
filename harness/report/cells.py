"""How one value reads in a report cell: numbers, yes/no, missing values (–), figures with a unit.

Figures with a unit (durations, energies, counts) get the SI prefix that keeps the number between 1
and 1000 and three significant figures, trailing zeros kept: ``1.50 µs``, ``20.0 µJ``, ``681 k``.
"""

from __future__ import annotations

from typing import Any

# (factor, prefix), largest first; the unit with the factor 1 is the plain unit
_SI = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p"))


def cell(x: Any, spec: str = ".4g") -> str:
    """``x`` as text: ``–`` for unknown (None), yes/no for booleans, floats with ``spec``."""
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return format(x, spec)
    return str(x)


def sig3(x: float) -> str:
    """``x`` with three significant figures, trailing zeros kept (``1.50``, ``20.0``, ``123``)."""
    s = f"{x:#.3g}"
    if "e" in s:
        return s
    return s.rstrip(".")


def si_text(
    x: float | None, unit: str, *, largest: str = "G", smallest: str = "p", compact: bool = False
) -> str:
    """``x`` (in ``unit``) with the SI prefix that keeps the figure in [1, 1000), three significant
    figures (``compact``: trailing zeros dropped, for axis ticks); prefixes limited to ``largest`` ..
    ``smallest``; ``–`` if unknown; ``0 unit`` for zero."""
    if x is None:
        return "–"
    if x == 0:
        return f"0 {unit}".strip()
    allowed = _SI[_index(largest) : _index(smallest) + 1]
    mag = abs(float(f"{x:.3g}"))  # rounded first: 999.7 reads 1.00 k, not 1.00e+03
    num = (lambda v: f"{v:.3g}") if compact else sig3
    f, p = next(((f, p) for f, p in allowed if mag >= f), allowed[-1])
    return f"{num(x / f)} {p}{unit}".strip()


def _index(prefix: str) -> int:
    return next(i for i, (_, p) in enumerate(_SI) if p == prefix)


def energy_text(j: float | None) -> str:
    """Joules with the prefix (kJ .. pJ) that keeps the figure at 1 or above, three significant figures."""
    return si_text(j, "J", largest="k")


def duration_text(s: float | None) -> str:
    """Seconds as s, ms, µs or ns, three significant figures; ``–`` if unknown."""
    return si_text(s, "s", largest="", smallest="n")


def ms_text(ms: float | None) -> str:
    """A duration given in milliseconds (as the leaderboard stores latencies), read as :func:`duration_text`."""
    return duration_text(None if ms is None else ms * 1e-3)


def count_text(x: float | None) -> str:
    """A count or rate with k, M, G for thousands and up, three significant figures (``681 k``)."""
    if x is not None and 0 < abs(x) < 1:
        return sig3(x)
    return si_text(x, "", smallest="")


def percent_text(rel: float | None) -> str:
    """A relative figure (0.27) as a percentage with two significant figures at least (``27 %``)."""
    if rel is None:
        return "–"
    pct = 100 * rel
    return f"{pct:.2g} %" if pct >= 10 else f"{pct:.2f} %" if pct < 1 else f"{pct:.1f} %"
