"""The Markdown leaderboard: ranked table per task, then plots, techniques, budgets and carbon."""

from __future__ import annotations

from typing import Any

from ..results.rank import BoardRow, fronts
from ..results.record import Result
from .cells import cell, energy_text
from .columns import BOARD_COLUMNS, GRADE_RULE, LEGEND, NO_EXTRAS, Column, RowExtras, board_columns
from .sections import ReportData, skipped_groups


def _md_table(header: str, rows: list[list[str]]) -> list[str]:
    """A Markdown table; ``header`` cells end in ``>`` to right-align that column."""
    cells = [c.strip() for c in header.split("|")]
    names = [c.rstrip(">").strip() for c in cells]
    rule = ["---:" if c.endswith(">") else "---" for c in cells]
    out = ["| " + " | ".join(names) + " |", "|" + "|".join(rule) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def _md_escape(s: Any) -> str:
    return cell(s).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def markdown(
    board: list[BoardRow],
    skipped: list[Result],
    data: ReportData | None = None,
    images: dict[str, str] | None = None,
) -> str:
    """Markdown leaderboard; ``data`` adds the richer sections, ``images`` maps plot keys to PNG links."""
    lines = ["# frugalbench leaderboard", ""]
    lines.append(
        "Ranked by quality per joule (metric ÷ energy per inference) among variants that meet the task's "
        "minimum, within one measurement class; classes are never ranked against each other."
    )
    if data is not None:
        lines += [
            "",
            *[
                f"Run {r['id']} of suite {_md_escape(r['suite'])}: {cell(r['started'])}, git {_md_escape(r['git_rev'])}, "
                f"host {_md_escape(r['host'])}, {_md_escape(r['status'])}."
                for r in data.runs
            ],
        ]
    if data is not None:
        lines += ["", "How to read the tables:", ""]
        lines += [f"- **{_md_escape(h)}**: {_md_escape(d)}" for h, d in LEGEND]
        lines += [f"- {_md_escape(GRADE_RULE)}"]

    def extra(r: BoardRow) -> RowExtras:
        return data.extra(r) if data is not None else NO_EXTRAS

    fr = fronts(board)
    for task in sorted({r["task"] for r in board}):
        rows = [r for r in board if r["task"] == task]
        lines += [
            "",
            f"## {_md_escape(task)}",
            "",
            f"Metric **{rows[0]['metric']}**, minimum acceptable **{cell(rows[0]['min_accuracy'])}**.",
        ]
        if rows[0].get("performance_only"):
            lines += ["", "_Performance only (synthetic inputs): no accuracy, ranked by energy per inference._"]
        for cls in sorted({r["energy_class"] or "none" for r in rows}):
            grp = [r for r in rows if (r["energy_class"] or "none") == cls]
            lines += [
                "",
                f"### energy class: {cls}",
                "",
            ]
            lines += _md_table(
                " | ".join(c.header + (">" if c.numeric else "") for c in board_columns(grp)),
                [_board_cells(r, extra(r), board_columns(grp)) for r in grp if r["passes_gate"]],
            )
            below = [r for r in grp if not r["passes_gate"]]
            if below:
                lines += [
                    "",
                    "Below the minimum (not ranked): "
                    + ", ".join(
                        f"{_md_escape(r['variant'])}@{_md_escape(r['target'])} ({cell(r['accuracy'])})"
                        for r in below
                    ),
                ]
            f = fr.get((task, cls if cls != "none" else ""))
            if f:
                lines += [
                    "",
                    "Pareto front (accuracy × energy): " + ", ".join(map(_md_escape, f["accuracy_energy"])),
                ]
        notes = {r["energy_class"] for r in rows}
        if "estimate" in notes:
            lines += [
                "",
                "_estimate: no meter or counter on this machine; energy modelled from latency "
                "(Green Algorithms per-core power), so it ranks like latency. Not a measurement._",
            ]
        sparse = [r for r in rows if "prune" in (r["technique"] or "") and r["runtime"] in ("ort", "litert")]
        if sparse:
            lines += [
                "",
                "_Unstructured pruning shrinks stored size but dense runtimes (ORT, LiteRT) "
                "multiply the zeros: no speed-up is expected there._",
            ]
        if data is not None:
            lines += _md_sections(task, data, images or {})
        srcs = {(r["grid_source"], r["pue"]) for r in rows}
        for src, pue in sorted(srcs, key=str):
            lines += ["", f"CO2e = E × PUE ({cell(pue)}) × grid factor; factor source: {_md_escape(src)}."]
    if data is not None and data.run_budgets:
        lines += ["", "## Carbon budget of the run", ""]
        for b in data.run_budgets:
            parts = ", ".join(f"{k} {v:.3g} g" for k, v in sorted(b["by_class"].items()))
            verdict = "fits" if b["fits"] else "**exceeds**"
            lines.append(
                f"- run {b['run_id']} ({_md_escape(b['suite'])}): {b['spent_g']:.3g} gCO2e spent of "
                f"{b['budget_g']:.3g} g budget: {verdict} (by class: {parts})"
            )
    if skipped:
        lines += ["", "## Not measured", ""]
        for g in data.skipped_groups if data is not None else skipped_groups(skipped):
            jobs = g["jobs"]
            lines.append(
                f"- {g['status']} ({len(jobs)} job{'s' if len(jobs) != 1 else ''}): {_md_escape(g['reason'])}: "
                + ", ".join(map(_md_escape, jobs))
            )
    return "\n".join(lines) + "\n"


def _board_cells(r: BoardRow, x: RowExtras, cols: tuple[Column, ...] = BOARD_COLUMNS) -> list[str]:
    """One leaderboard row's Markdown cells; a CI above target and a budget not met are set in bold."""
    out = []

    def styled(text: str, style: str) -> str:
        return f"**{_md_escape(text)}**" if style in ("miss", "no") else _md_escape(text)

    for c in cols:
        v = c.cell(r, x)
        out.append(" / ".join(styled(t, s) for t, s in v.parts) if v.parts else styled(v.text, v.style))
    return out


def plot_key(p: dict[str, Any]) -> str:
    """The key of a plot row in the ``images`` mapping of :func:`markdown`."""
    return f"{p['task']}|{p['energy_class']}|{p['kind']}"


def _md_sections(task: str, data: ReportData, images: dict[str, str]) -> list[str]:
    lines: list[str] = []
    info = next((t for t in data.tasks if t["task"] == task), None)
    if info and info["why_min"]:
        lines += ["", f"Why this minimum: {_md_escape(info['why_min'])}"]
    pics = [p for p in data.plots if p["task"] == task and plot_key(p) in images]
    if pics:
        lines += ["", "### Pareto plots", ""]
        lines += [
            f"![{_md_escape(p['ylabel'])} × energy, {p['energy_class']}]({images[plot_key(p)]})" for p in pics
        ]
    tech = [x for x in data.techniques if x["task"] == task]
    if tech:
        lines += [
            "",
            "### Per technique (best variant, accuracy cost against the base model)",
            "",
        ]
        stages = any(x.get("fine_tune") for x in tech)  # a column only where a variant was fine-tuned
        lines += _md_table(
            "technique | class | best | rank> | quality> | base> | accuracy cost> | E/inference>"
            + (" | validation: base → projection → fine-tuned" if stages else ""),
            [
                [_md_escape(x["technique"]), _md_escape(x["energy_class"]), _md_escape(x["best"]),
                 cell(x["rank"]), cell(x["accuracy"]), cell(x["base_accuracy"]),
                 cell(x["accuracy_cost"], ".3g"), energy_text(x["energy_per_inference_j"]),
                 *([x.get("fine_tune") or "–"] if stages else [])]
                for x in tech
            ],
        )  # fmt: skip
    models = [x for x in data.models if x["task"] == task]
    if models:
        lines += ["", "### Per model across targets (where each variant runs, how fast, at what energy)", ""]
        lines += _md_table(
            "variant | target | hardware | status | class | p50 ms> | E/inference> | model bytes> | model RAM> | model flash> | board RAM> | board flash> | why not",
            [
                [_md_escape(x["variant"]), _md_escape(x["target"]), _md_escape(x["hardware"]),
                 _md_escape(x["status"]), _md_escape(x["energy_class"]), cell(x["latency_p50_ms"], ".3g"),
                 energy_text(x["energy_per_inference_j"]), cell(x["model_bytes"]), cell(x["ram_bytes"]),
                 cell(x["flash_bytes"]), cell(x["board_ram_bytes"]), cell(x["board_flash_bytes"]),
                 _md_escape(x["reason"])]
                for x in models
            ],
        )  # fmt: skip
    bud = [x for x in data.budgets if x["task"] == task]
    if bud:
        lines += [
            "",
            f"### Carbon budget: {cell(bud[0]['budget_g_per_1000'], '.3g')} gCO2e per 1000 inferences",
            "",
        ]
        fit = [x for x in bud if x["fits"]]
        over = [x for x in bud if x["fits"] is False]
        lines.append("Fit: " + (", ".join(_md_escape(x["id"]) for x in fit) or "none") + ".")
        if over:
            lines.append(
                "Over budget: "
                + ", ".join(f"{_md_escape(x['id'])} ({cell(x['co2e_g_per_1000'], '.3g')} g)" for x in over)
                + "."
            )
    emb = [x for x in data.embodied if x["task"] == task]
    if emb:
        lines += [
            "",
            "### Use phase and embodied carbon per 1000 inferences (shown apart, never summed)",
            "",
        ]
        lines += _md_table(
            "variant@target | use phase gCO2e> | class | embodied gCO2e> | device kgCO2e> | lifetime> | duty> | source",
            [
                [_md_escape(x["id"]), cell(x["use_g_per_1000"], ".3g"), _md_escape(x["use_class"]),
                 cell(x["embodied_g_per_1000"], ".3g"), cell(x["embodied_kgco2e"], ".3g"),
                 f"{cell(x['lifetime_years'])} y", cell(x["duty"]), _md_escape(x["source"])]
                for x in emb
            ],
        )  # fmt: skip
    labs = [x for x in data.labels if x["task"] == task]
    if labs:
        lines += [
            "",
            "Energy grades (A best to E; see how to read the tables): "
            + ", ".join(f"{_md_escape(x['id'])} {cell(x['grade'])}" for x in labs),
        ]
    return lines
