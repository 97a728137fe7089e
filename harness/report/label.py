"""Energy label card per model + target, in the spirit of appliance and AI Energy Score labels.

The grade (A best .. E) is relative within one task and one measurement class: the range of
log10(energy per inference) is cut into five equal bands (AI Energy Score cuts its linear range into
five 20 % bands; edge variants span decades, hence the log), and only where the group is large and
spread enough for bands to mean something (:data:`harness.report.columns.GRADE_RULE`); otherwise the
grade is None and the card shows no grade. It is computed in
:func:`harness.report.sections.label_rows`; here the card is only drawn, as SVG or PNG.
"""

from __future__ import annotations

import re
from html import escape
from pathlib import Path
from typing import Any

from .cells import energy_text
from .columns import GRADE_MIN_ROWS, GRADE_MIN_SPREAD
from .plots import RendererMissing

GRADE_COLOURS = {"A": "#1a9641", "B": "#a6d96a", "C": "#e6c229", "D": "#fdae61", "E": "#d7191c"}
CW, CH = 320, 176


def short(text: str, n: int) -> str:
    """``text`` cut to ``n`` characters with an ellipsis (the full text stays in the data)."""
    return text if len(text) <= n else text[: n - 1] + "…"


def _foot(lab: dict[str, Any]) -> str:
    if lab["grade"] is None:
        why = (
            f"no grade ({lab['n_in_group']} in class; needs {GRADE_MIN_ROWS}+, {GRADE_MIN_SPREAD:g}× spread)"
        )
    else:
        why = f"grade within {lab['n_in_group']} variants of this task and class"
    return f"{why} · {lab['date'] or ''}"


def _lines(lab: dict[str, Any]) -> list[tuple[str, str]]:
    acc = "–" if lab["accuracy"] is None else f"{lab['accuracy']:.4g}"
    co2 = "–" if lab["co2e_g_per_1000"] is None else f"{lab['co2e_g_per_1000']:.3g} g"
    return [
        ("energy / inference", energy_text(lab["energy_per_inference_j"])),
        ("CO2e / 1000 inferences", co2),
        (lab["metric"] or "accuracy", acc + ("" if lab["passes_gate"] else " (below minimum)")),
        ("measurement", lab["energy_class"] or "–"),
    ]


def svg_label(lab: dict[str, Any]) -> str:
    """A standalone SVG card (fonts: system sans-serif; no external resources)."""
    g = lab["grade"]
    out = [
        f'<svg class="label" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CW} {CH}" width="{CW}" '
        f'height="{CH}" data-id="{escape(lab["id"])}" data-grade="{g or ""}" font-family="sans-serif">',
        f'<rect x="0.5" y="0.5" width="{CW - 1}" height="{CH - 1}" rx="8" fill="#ffffff" stroke="#333333"/>',
        f'<rect x="0.5" y="0.5" width="{CW - 1}" height="26" rx="8" fill="#1f2d3d"/>',
        f'<rect x="0.5" y="18" width="{CW - 1}" height="9" fill="#1f2d3d"/>',
        f'<text x="10" y="18" font-size="12" font-weight="bold" fill="#ffffff">'
        f"frugalbench energy label · {escape(short(lab['task'], 26))}</text>",
        f'<text x="10" y="44" font-size="13" font-weight="bold" fill="#111111">'
        f"{escape(short(lab['variant'], 26))}</text>",
        f'<text x="10" y="59" font-size="10" fill="#444444">on '
        f"{escape(short(lab['target'] + ' (' + str(lab['hardware']) + ')', 36))}</text>",
    ]
    for i, grade in enumerate(GRADE_COLOURS):
        y = 34 + i * 15
        w = 28 + i * 7
        x = CW - 88
        stroke = ' stroke="#000000" stroke-width="2"' if grade == g else ""
        out.append(f'<rect x="{x}" y="{y}" width="{w}" height="13" fill="{GRADE_COLOURS[grade]}"{stroke}/>')
        out.append(
            f'<text x="{x + 4}" y="{y + 10}" font-size="10" font-weight="bold" fill="#ffffff">{grade}</text>'
        )
        if grade == g:
            out.append(f'<text x="{x + w + 4}" y="{y + 11}" font-size="13" font-weight="bold">◀</text>')
    for i, (k, v) in enumerate(_lines(lab)):
        y = 80 + i * 16
        out.append(f'<text x="10" y="{y}" font-size="10" fill="#555555">{escape(k)}</text>')
        out.append(
            f'<text x="140" y="{y}" font-size="11" font-weight="bold" fill="#111111">{escape(v)}</text>'
        )
    if g is None:
        out.append(
            f'<text x="{CW - 88}" y="{34 + 5 * 15 + 10}" font-size="10" fill="#444444">no grade</text>'
        )
    foot = _foot(lab)
    out.append(f'<text x="10" y="{CH - 10}" font-size="8" fill="#666666">{escape(foot)}</text>')
    out.append("</svg>")
    return "".join(out)


def png_label(lab: dict[str, Any], path: Path) -> Path:
    """The same card as a PNG (matplotlib, the ``report`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import FancyBboxPatch, Rectangle
    except ImportError:
        raise RendererMissing("PNG labels need matplotlib: `pip install 'frugalbench[report]'`") from None
    dpi = 150
    fig = plt.figure(figsize=(CW / 100, CH / 100), dpi=dpi)
    try:
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, CW)
        ax.set_ylim(CH, 0)
        ax.axis("off")
        ax.add_patch(
            FancyBboxPatch(
                (1, 1), CW - 2, CH - 2, boxstyle="round,pad=0,rounding_size=8", fc="white", ec="#333333"
            )
        )
        ax.add_patch(Rectangle((1, 1), CW - 2, 26, fc="#1f2d3d", ec="none"))
        ax.text(
            10,
            18,
            f"frugalbench energy label · {short(lab['task'], 26)}",
            color="white",
            fontsize=8,
            weight="bold",
        )
        ax.text(10, 44, short(lab["variant"], 26), fontsize=9, weight="bold")
        ax.text(
            10, 59, "on " + short(f"{lab['target']} ({lab['hardware']})", 36), fontsize=6.5, color="#444444"
        )
        for i, grade in enumerate(GRADE_COLOURS):
            y, w, x = 34 + i * 15, 28 + i * 7, CW - 88
            sel = grade == lab["grade"]
            ax.add_patch(
                Rectangle(
                    (x, y),
                    w,
                    13,
                    fc=GRADE_COLOURS[grade],
                    ec="black" if sel else "none",
                    lw=1.5 if sel else 0,
                )
            )
            ax.text(x + 4, y + 10, grade, color="white", fontsize=6.5, weight="bold")
            if sel:
                ax.text(x + w + 4, y + 11, "<", fontsize=9, weight="bold")
        for i, (k, v) in enumerate(_lines(lab)):
            y = 80 + i * 16
            ax.text(10, y, k, fontsize=6.5, color="#555555")
            ax.text(140, y, v, fontsize=7, weight="bold")
        ax.text(10, CH - 10, _foot(lab), fontsize=5, color="#666666")
        fig.savefig(path, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return path


def file_stem(lab: dict[str, Any]) -> str:
    """A safe file name for a label: task_variant_target with anything odd replaced by '-'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{lab['task']}_{lab['variant']}_{lab['target']}").strip("-")


def write_labels(labels: list[dict[str, Any]], folder: Path, *, png: bool = True) -> list[Path]:
    """Write every label as SVG (and PNG when matplotlib is present) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for lab in labels:
        stem = file_stem(lab)
        p = folder / f"{stem}.svg"
        p.write_text(svg_label(lab), encoding="utf-8")
        out.append(p)
        if png:
            out.append(png_label(lab, folder / f"{stem}.png"))
    return out
