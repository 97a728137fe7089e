"""Reports of the leaderboard: text formats here, HTML in ``html.py``. Renderers compute nothing."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

from ..rank import LEADERBOARD_KEYS, fronts
from ..registry import Registry

FORMATS: Registry[Callable[[list[dict[str, Any]], list[dict[str, Any]]], str]] = Registry("report format")


def _fmt(x: Any, spec: str = ".4g") -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return format(x, spec)
    return str(x)


def _energy(j: float | None) -> str:
    if j is None:
        return "–"
    for unit, f in (("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9)):
        if j >= f:
            return f"{j / f:.3g} {unit}"
    return f"{j:.3g} J"


def _md_escape(s: Any) -> str:
    return _fmt(s).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


@FORMATS.register("md")
def markdown(board: list[dict[str, Any]], skipped: list[dict[str, Any]]) -> str:
    lines = ["# frugalbench leaderboard", ""]
    lines.append(
        "Ranked by quality per joule (metric ÷ energy per inference) among variants that meet the task's "
        "minimum, within one measurement class; classes are never ranked against each other."
    )
    fr = fronts(board)
    for task in sorted({r["task"] for r in board}):
        rows = [r for r in board if r["task"] == task]
        lines += [
            "",
            f"## {task}",
            "",
            f"Metric **{rows[0]['metric']}**, minimum acceptable **{_fmt(rows[0]['min_accuracy'])}**.",
        ]
        for cls in sorted({r["energy_class"] or "none" for r in rows}):
            grp = [r for r in rows if (r["energy_class"] or "none") == cls]
            lines += [
                "",
                f"### energy class: {cls}",
                "",
                "| rank | variant | technique | target | runtime | quality | quality/J | E/inference | "
                "p50 ms | p99 ms | inf/s | gCO2e/1000 | params | MACs | bytes | break-even inf. |",
                "|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for r in grp:
                if not r["passes_gate"]:
                    continue
                lines.append(
                    f"| {_fmt(r['rank'])} | {_md_escape(r['variant'])} | {_md_escape(r['technique'])} | "
                    f"{_md_escape(r['target'])} | {_md_escape(r['runtime'])} | {_fmt(r['accuracy'])} | "
                    f"{_fmt(r['accuracy_per_joule'], '.4g')} | {_energy(r['energy_per_inference_j'])} | "
                    f"{_fmt(r['latency_p50_ms'], '.4f')} | {_fmt(r['latency_p99_ms'], '.4f')} | "
                    f"{_fmt(r['throughput_ips'], '.0f')} | {_fmt(r['co2e_g_per_1000'], '.3g')} | "
                    f"{_fmt(r['params'])} | {_fmt(r['macs'])} | {_fmt(r['model_bytes'])} | "
                    f"{_fmt(r['breakeven_inferences'], '.3g')} |"
                )
            below = [r for r in grp if not r["passes_gate"]]
            if below:
                lines += [
                    "",
                    "Below the minimum (not ranked): "
                    + ", ".join(
                        f"{_md_escape(r['variant'])}@{_md_escape(r['target'])} ({_fmt(r['accuracy'])})"
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
        srcs = {(r["grid_source"], r["pue"]) for r in rows}
        for src, pue in sorted(srcs, key=str):
            lines += ["", f"CO2e = E × PUE ({_fmt(pue)}) × grid factor; factor source: {src}."]
    if skipped:
        lines += ["", "## Not measured", ""]
        for r in skipped:
            lines.append(
                f"- {_md_escape(r['task'])}/{_md_escape(r['variant'])} on {_md_escape(r['target'])}: "
                f"{r['status']}: {_md_escape(r['reason'])}"
            )
    return "\n".join(lines) + "\n"


@FORMATS.register("json")
def to_json(board: list[dict[str, Any]], skipped: list[dict[str, Any]]) -> str:
    return json.dumps(
        [{k: v for k, v in r.items() if k != "provenance"} | {"provenance": r["provenance"]} for r in board],
        indent=1,
        default=str,
    )


@FORMATS.register("csv")
def to_csv(board: list[dict[str, Any]], skipped: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    keys = [*LEADERBOARD_KEYS] + [
        k for k in (board[0] if board else {}) if k not in LEADERBOARD_KEYS and k != "provenance"
    ]
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in board:
        w.writerow(r)
    return buf.getvalue()
