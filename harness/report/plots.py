"""Pareto plots: inline SVG written by our own code, and PNG files through matplotlib (optional extra).

Both take one plot row from :func:`harness.report.sections.plot_rows` (points, front ids, labels) and
compute nothing beyond screen coordinates. Energy (x) is on a log axis: variants differ by decades.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any

from ..errors import FrugalbenchError
from .cells import si_text

PALETTE = ("#1b6ca8", "#d1495b", "#2e933c", "#edae49", "#7b4b94", "#00798c", "#8c564b", "#5f6b6d")
W, H, ML, MR, MT, MB = 460, 300, 64, 16, 30, 46


class RendererMissing(FrugalbenchError):
    """An optional renderer (matplotlib) is not installed."""


def colour_map(techniques: list[str]) -> dict[str, str]:
    """A stable colour per technique (sorted order)."""
    return {t: PALETTE[i % len(PALETTE)] for i, t in enumerate(sorted(set(techniques)))}


def tick_text(v: float, unit: str) -> str:
    """A tick label: with an SI prefix for a unit ('20 µJ', '1.5 µs'), else three significant figures."""
    if unit == "J":
        return si_text(v, "J", largest="k", compact=True)
    if unit == "ms":  # latencies are stored in ms; the tick reads in the prefix that suits it
        return si_text(v * 1e-3, "s", largest="", smallest="n", compact=True)
    return f"{v:.3g}"


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks inside [lo, hi] on a log axis: decades, else 1-2-5, else 1..9 per decade, else linear
    steps, whichever first gives at least three (so an axis within one decade still reads)."""
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    for steps in ((1,), (1, 2, 5), tuple(range(1, 10))):
        ticks = [m * 10.0**k for k in decades for m in steps if lo <= m * 10.0**k <= hi]
        if len(ticks) >= 3:
            return ticks
    return _lin_ticks(lo, hi)


def _lin_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    start = math.ceil(lo / step) * step
    # rounded to significant figures, not decimals: energies go down to picojoules
    return [float(f"{start + i * step:.6g}") for i in range(int((hi - start) / step + 1e-9) + 1)]


class _Axis:
    def __init__(self, vals: list[float], log: bool, a: float, b: float, pad: float = 0.08) -> None:
        self.log = log
        f = (lambda v: math.log10(v)) if log else (lambda v: v)
        tv = [f(v) for v in vals if (v > 0 or not log)]
        lo, hi = (min(tv), max(tv)) if tv else (0.0, 1.0)
        if hi == lo:
            lo, hi = (
                lo - (0.5 if log else abs(lo) * 0.05 + 0.01),
                hi + (0.5 if log else abs(hi) * 0.05 + 0.01),
            )
        span = hi - lo
        self.lo, self.hi, self.a, self.b, self.f = lo - pad * span, hi + pad * span, a, b, f

    def __call__(self, v: float) -> float:
        return self.a + (self.f(v) - self.lo) / (self.hi - self.lo) * (self.b - self.a)

    def ticks(self) -> list[float]:
        """Tick values inside the axis range (at least two for any range)."""
        if self.log:
            return [t for t in _log_ticks(10**self.lo, 10**self.hi) if self.lo <= math.log10(t) <= self.hi]
        return [t for t in _lin_ticks(self.lo, self.hi) if self.lo <= t <= self.hi]

    def limits(self) -> tuple[float, float]:
        """The axis range in data units (for matplotlib)."""
        return (10**self.lo, 10**self.hi) if self.log else (self.lo, self.hi)


def _units(plot: dict[str, Any]) -> tuple[str, str]:
    """The units the x and y ticks read in: energy in J; latency in ms; a metric has none."""
    return "J", ("ms" if plot["kind"] == "latency_energy" else "")


def svg_plot(plot: dict[str, Any], colours: dict[str, str], *, plot_id: str = "") -> str:
    """An inline SVG scatter of ``plot['points']`` with the Pareto front drawn as a step line."""
    pts = [p for p in plot["points"] if p["x"] and p["x"] > 0 and p["y"] is not None]
    ylog = plot["kind"] == "latency_energy"
    if ylog:
        pts = [p for p in pts if p["y"] > 0]
    extra_y = [plot["min_y"]] if plot.get("min_y") is not None else []
    X = _Axis([p["x"] for p in pts], True, ML, W - MR)
    Y = _Axis([p["y"] for p in pts] + extra_y, ylog, H - MB, MT)
    xu, yu = _units(plot)
    title = f"{plot['task']} · {plot['energy_class'] or 'no class'} · {plot['ylabel']} × energy"
    out = [
        f'<svg class="plot" id="{escape(plot_id)}" data-kind="{escape(plot["kind"])}" '
        f'data-task="{escape(plot["task"])}" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<rect x="{ML}" y="{MT}" width="{W - ML - MR}" height="{H - MT - MB}" class="frame"/>',
        f'<text x="{ML}" y="18" class="ptitle">{escape(title if len(title) <= 60 else title[:59] + "…")}</text>',
    ]
    for t in X.ticks():
        x = X(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{MT}" y2="{H - MB}" class="grid"/>')
        out.append(
            f'<text x="{x:.1f}" y="{H - MB + 14}" class="tick" text-anchor="middle">{escape(tick_text(t, xu))}</text>'
        )
    for t in Y.ticks():
        y = Y(t)
        out.append(f'<line x1="{ML}" x2="{W - MR}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(
            f'<text x="{ML - 5}" y="{y + 4:.1f}" class="tick" text-anchor="end">{escape(tick_text(t, yu))}</text>'
        )
    out.append(
        f'<text x="{(ML + W - MR) / 2}" y="{H - 8}" class="axis" text-anchor="middle">'
        f"{escape(plot['xlabel'])} (log)</text>"
    )
    out.append(
        f'<text transform="translate(14 {(MT + H - MB) / 2}) rotate(-90)" class="axis" '
        f'text-anchor="middle">{escape(plot["ylabel"])}{" (log)" if ylog else ""}</text>'
    )
    if plot.get("min_y") is not None:
        y = Y(plot["min_y"])
        out.append(f'<line x1="{ML}" x2="{W - MR}" y1="{y:.1f}" y2="{y:.1f}" class="minline"/>')
        out.append(
            f'<text x="{W - MR - 4}" y="{y - 4:.1f}" class="tick" text-anchor="end">{escape(plot.get("min_label", "minimum"))}</text>'
        )
    by_id = {p["id"]: p for p in pts}
    front = [by_id[i] for i in plot["front"] if i in by_id]
    if front:
        hib = plot["kind"] == "accuracy_energy"
        coords: list[tuple[float, float]] = []
        for p in front:  # staircase: the best y reachable at each energy
            x, y = X(p["x"]), Y(p["y"])
            if coords:
                coords.append((x, coords[-1][1]))
            coords.append((x, y))
        coords.append((W - MR, coords[-1][1]))
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        out.append(
            f'<polyline class="front" data-n="{len(front)}" data-maximize="{str(hib).lower()}" '
            f'points="{path}"/>'
        )
    on_front = set(plot["front"])
    for p in pts:
        c = colours.get(p["technique"] or "", PALETTE[0])
        cls = "pt" + (" on-front" if p["id"] in on_front else "") + ("" if p["passes_gate"] else " below")
        tip = f"{p['id']} ({p['technique']}): E={tick_text(p['x'], xu)}, {plot['ylabel']}={tick_text(p['y'], yu)}"
        out.append(
            f'<circle class="{cls}" cx="{X(p["x"]):.1f}" cy="{Y(p["y"]):.1f}" r="{6 if p["id"] in on_front else 4.5}" '
            f'fill="{c}" data-id="{escape(p["id"])}" data-target="{escape(p["target"] or "")}" '
            f'data-technique="{escape(p["technique"] or "")}"><title>{escape(tip)}</title></circle>'
        )
    out.append("</svg>")
    return "".join(out)


def _png_axes(ax: Any, plot: dict[str, Any], pts: list[dict[str, Any]], ylog: bool) -> None:
    """The same ranges, ticks and tick labels as the SVG plot (matplotlib leaves a log axis within one
    decade without labels)."""
    from matplotlib.ticker import FixedLocator, NullLocator

    xu, yu = _units(plot)
    extra_y = [plot["min_y"]] if plot.get("min_y") is not None else []
    ys = [p["y"] for p in pts if p["y"] > 0 or not ylog] + extra_y
    for axis, A, unit, setlim in (
        (ax.xaxis, _Axis([p["x"] for p in pts], True, 0.0, 1.0), xu, ax.set_xlim),
        (ax.yaxis, _Axis(ys, ylog, 0.0, 1.0), yu, ax.set_ylim),
    ):
        setlim(*A.limits())
        ticks = A.ticks()
        axis.set_major_locator(FixedLocator(ticks))
        axis.set_ticklabels([tick_text(t, unit) for t in ticks])
        axis.set_minor_locator(NullLocator())


def png_plot(plot: dict[str, Any], colours: dict[str, str], path: Path) -> Path:
    """Write the same plot as a PNG file with matplotlib (the ``report`` extra)."""
    import matplotlib.pyplot as plt  # png_figure has checked that matplotlib is there

    fig = png_figure(plot, colours)
    try:
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


def png_figure(plot: dict[str, Any], colours: dict[str, str]) -> Any:
    """The matplotlib figure of :func:`png_plot` (the caller closes it)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RendererMissing(
            "PNG plots need matplotlib: `pip install 'frugalbench[report]'` (the HTML report needs nothing)"
        ) from None
    pts = [p for p in plot["points"] if p["x"] and p["x"] > 0 and p["y"] is not None]
    fig, ax = plt.subplots(figsize=(5.2, 3.4), dpi=100)
    try:
        for tech in sorted({p["technique"] or "" for p in pts}):
            sel = [p for p in pts if (p["technique"] or "") == tech]
            ax.scatter(
                [p["x"] for p in sel],
                [p["y"] for p in sel],
                s=28,
                c=colours.get(tech, PALETTE[0]),
                label=tech,
                zorder=3,
                edgecolors="white",
                linewidths=0.6,
            )
        if plot.get("min_y") is not None:
            ax.axhline(plot["min_y"], ls="--", color="#999999", lw=1, label=plot.get("min_label", "minimum"))
        ax.set_xscale("log")
        ylog = plot["kind"] == "latency_energy"
        if ylog:
            ax.set_yscale("log")
        _png_axes(ax, plot, pts, ylog)
        by_id = {p["id"]: p for p in pts}
        front = [by_id[i] for i in plot["front"] if i in by_id]
        if front:  # a staircase to the right edge, as in the SVG (one point still shows a line)
            ax.step(
                [p["x"] for p in front] + [ax.get_xlim()[1]],
                [p["y"] for p in front] + [front[-1]["y"]],
                where="post",
                color="#333333",
                lw=1.2,
                zorder=2,
                label="Pareto front",
            )
        ax.set_xlabel(plot["xlabel"] + " (log)")
        ax.set_ylabel(plot["ylabel"] + (" (log)" if ylog else ""))
        ax.set_title(
            f"{plot['task']} · {plot['energy_class'] or 'no class'} · {plot['ylabel']} × energy", fontsize=10
        )
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
    except BaseException:
        plt.close(fig)
        raise
    return fig
