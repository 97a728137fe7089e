"""Everything a report shows beyond the leaderboard rows, computed once here as plain rows.

Renderers (Markdown, HTML, labels) take a :class:`ReportData` and compute nothing: the per-technique
summary, carbon budgets, embodied shares, label grades and plot points are all derived here.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ..metrics import HIGHER_IS_BETTER
from ..results.carbon import J_PER_KWH
from ..results.rank import BoardRow, fronts, leaderboard
from ..results.record import Result
from .columns import GRADE_MIN_ROWS, GRADE_MIN_SPREAD, NO_EXTRAS, RowExtras
from .embodied import Profiles, load_profiles
from .spread import WindowSpread, window_spread

GRADES = ("A", "B", "C", "D", "E")


@dataclass
class ReportData:
    """Plain rows for the renderers; see :func:`build` for how each list is made."""

    board: list[BoardRow]
    skipped: list[Result] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    fronts: dict[tuple[str, str], dict[str, list[str]]] = field(default_factory=dict)
    techniques: list[dict[str, Any]] = field(default_factory=list)
    budgets: list[dict[str, Any]] = field(default_factory=list)
    run_budgets: list[dict[str, Any]] = field(default_factory=list)
    embodied: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)
    grid_sources: list[dict[str, Any]] = field(default_factory=list)
    plots: list[dict[str, Any]] = field(default_factory=list)
    extras: dict[tuple[str, str], RowExtras] = field(default_factory=dict)
    skipped_groups: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    spreads: dict[tuple[int | None, str, str], WindowSpread] = field(default_factory=dict)

    def extra(self, r: BoardRow) -> RowExtras:
        """The :class:`RowExtras` of a leaderboard row (all unknown when not computed)."""
        return self.extras.get((r["task"], row_id(r)), NO_EXTRAS)

    def spread(self, r: BoardRow) -> WindowSpread | None:
        """The spread of a leaderboard row's window medians (None when its windows were not read)."""
        return self.spreads.get((r["run_id"], r["task"], row_id(r)))


def row_id(r: BoardRow) -> str:
    """The id of a leaderboard row within its task: ``variant@target`` (as in :func:`rank.fronts`)."""
    return f"{r['variant']}@{r['target']}"


def iso_time(ts: float | None) -> str | None:
    """A UNIX time as 'YYYY-MM-DD HH:MM UTC' (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso_datetime(ts: float | None) -> str | None:
    """A UNIX time as ISO 8601 date and time in UTC to the second, 'YYYY-MM-DDTHH:MM:SSZ' (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def extras_rows(
    board: list[BoardRow], results: list[Result], runs: list[dict[str, Any]], budgets: list[dict[str, Any]]
) -> dict[tuple[str, str], RowExtras]:
    """Per (task, row id): the budget verdict, the result's valid windows and its run's CI target."""
    n_windows = {(r.run_id, r.task, r.variant, r.target): r.latency.n_windows for r in results}
    ci_target = {run["id"]: _settings(run).get("run", {}).get("ci_target") for run in runs}
    fits = {(b["task"], b["id"]): b["fits"] for b in budgets}
    out: dict[tuple[str, str], RowExtras] = {}
    for r in board:
        key = (r["task"], row_id(r))
        out[key] = {
            "fits": fits.get(key),
            "n_windows": n_windows.get((r["run_id"], r["task"], r["variant"], r["target"])),
            "ci_target": ci_target.get(r["run_id"]),
        }
    return out


# the host facts every locally measured result records (``sysinfo.host_summary``), bar the name
HOST_KEYS = ("machine", "cpu", "isa", "kernel", "python")


def run_provenance(run: dict[str, Any], results: list[Result]) -> dict[str, Any]:
    """What a run's provenance adds to its stored row: end time, CI target, host summary, version.

    The host summary is the name the run stored plus the :data:`HOST_KEYS` of a result of this run
    measured on that host; the frugalbench version is the one its results recorded (None when they
    recorded none: results from before versions were recorded, or from targets that do not).
    """
    prov = [r.provenance for r in results if r.run_id == run["id"] and r.provenance]
    local = next((p for p in prov if p.get("host") == run["host"]), None)
    versions = sorted({v for p in prov if (v := (p.get("packages") or {}).get("frugalbench"))})
    return {
        "started_utc": iso_datetime(run["started"]),
        "ended_utc": iso_datetime(run["finished"]),
        "ci_target": _settings(run).get("run", {}).get("ci_target"),
        "host_summary": {"name": run["host"]} | ({k: local.get(k) for k in HOST_KEYS} if local else {}),
        "frugalbench_version": ", ".join(versions) or None,
    }


def spread_rows(
    results: list[Result], window_p50s: dict[int, list[float]]
) -> dict[tuple[int | None, str, str], WindowSpread]:
    """Per (run id, task, row id) of a done result: the spread of its valid windows' median latencies."""
    return {
        (r.run_id, r.task, f"{r.variant}@{r.target}"): window_spread(window_p50s[r.id])
        for r in results
        if r.status == "done" and r.id is not None and r.id in window_p50s
    }


def skipped_groups(skipped: list[Result]) -> list[dict[str, Any]]:
    """Results not measured, grouped by (status, reason) in order of first appearance, jobs listed once."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in skipped:
        groups.setdefault((r.status, r.reason or ""), []).append(f"{r.task}/{r.variant} on {r.target}")
    return [{"status": st, "reason": why or None, "jobs": jobs} for (st, why), jobs in groups.items()]


# the mcu target's budget refusals (harness/targets/mcu.py check_budget): the model does not fit the board
# (v1 blobs) and harness/mcu/footprint.py check_fits (operator graphs: RAM, flash, arena, scratch)
_DOES_NOT_FIT = re.compile(
    r"bytes but board \S+ has \d+ bytes of model RAM|-wide activation but board|input buffer is"
    r"|the model does not fit \S+:"
)


def model_rows(board: list[BoardRow], skipped: list[Result]) -> list[dict[str, Any]]:
    """One model across targets ("which core for my model"): for every (task, variant) run or tried on
    more than one target, where it runs (latency, energy, model bytes, the model's peak RAM and flash
    there) and where it does not fit (the refusal, sizes included) or failed, with each board's RAM and
    flash; runs first and fastest first."""
    rows: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in board:
        prov = r["provenance"] or {}
        rows[(r["task"], r["variant"])].append(
            {
                "target": r["target"],
                "hardware": prov.get("board_label") or prov.get("board") or prov.get("cpu") or r["target"],
                "status": "runs",
                "energy_class": r["energy_class"],
                "latency_p50_ms": r["latency_p50_ms"],
                "energy_per_inference_j": r["energy_per_inference_j"],
                "model_bytes": r["model_bytes"],
                "ram_bytes": r["ram_bytes"],
                "flash_bytes": r["flash_bytes"],
                "board_ram_bytes": prov.get("board_ram_bytes"),
                "board_flash_bytes": prov.get("board_flash_bytes"),
                "passes_gate": r["passes_gate"],
                "reason": None,
            }
        )
    for x in skipped:
        fits = x.status == "failed" and bool(x.reason and _DOES_NOT_FIT.search(x.reason))
        prov = x.provenance or {}
        rows[(x.task, x.variant)].append(
            {
                "target": x.target,
                "hardware": prov.get("board_label") or prov.get("board") or x.target,
                "status": "does not fit" if fits else x.status,
                "energy_class": None,
                "latency_p50_ms": None,
                "energy_per_inference_j": None,
                "model_bytes": prov.get("model_blob_bytes"),  # a refused graph: what it needed
                "ram_bytes": prov.get("ram_bytes"),
                "flash_bytes": prov.get("flash_bytes"),
                "board_ram_bytes": prov.get("board_ram_bytes"),
                "board_flash_bytes": prov.get("board_flash_bytes"),
                "passes_gate": None,
                "reason": x.reason,
            }
        )
    out = []
    for (task, variant), rs in sorted(rows.items()):
        if len({x["target"] for x in rs}) < 2:
            continue
        rs.sort(
            key=lambda x: (x["status"] != "runs", x["latency_p50_ms"] is None, x["latency_p50_ms"] or 0.0)
        )
        out += [{"task": task, "variant": variant, **x} for x in rs]
    return out


def _settings(run: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(run.get("settings") or "{}")
    except ValueError:
        return {}


def task_rows(board: list[BoardRow], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per task: metric, minimum, why, per-1000 budget (from the latest run's suite settings)."""
    declared: dict[str, dict[str, Any]] = {}
    for run in runs:
        for t in _settings(run).get("tasks", []):
            declared[t["name"]] = t
    out = []
    for task in sorted({r["task"] for r in board}):
        first = next(r for r in board if r["task"] == task)
        d = declared.get(task, {})
        out.append(
            {
                "task": task,
                "metric": first["metric"],
                "min_accuracy": first["min_accuracy"],
                "higher_is_better": HIGHER_IS_BETTER.get(first["metric"], True),
                "why_min": d.get("why_min", ""),
                "budget_g_per_1000": d.get("budget_g_per_1000"),
                "n_rows": sum(1 for r in board if r["task"] == task),
                "n_ranked": sum(1 for r in board if r["task"] == task and r["rank"] is not None),
                "best": [
                    {
                        "id": row_id(r),
                        "energy_class": r["energy_class"] or "",
                        "accuracy": r["accuracy"],
                        "accuracy_per_joule": r["accuracy_per_joule"],
                        "energy_per_inference_j": r["energy_per_inference_j"],
                        "latency_p50_ms": r["latency_p50_ms"],
                    }
                    for r in board
                    if r["task"] == task and r["rank"] == 1
                ],
            }
        )
    return out


def _stages(r: BoardRow) -> str | None:
    """``base → projection → fine-tuned`` validation accuracy of a fine-tuned variant, else None."""
    keys = ("val_accuracy_base", "val_accuracy_projection", "val_accuracy_finetuned")
    vals = [r.get(k) for k in keys]
    if all(v is None for v in vals):
        return None
    return " → ".join("–" if v is None else f"{v:.3f}" for v in vals)


def technique_rows(board: list[BoardRow]) -> list[dict[str, Any]]:
    """Best variant per (task, class, technique): the best-ranked one, else the most accurate."""
    groups: dict[tuple[str, str, str], list[BoardRow]] = defaultdict(list)
    for r in board:
        groups[(r["task"], r["energy_class"] or "", r["technique"] or "")].append(r)
    out = []
    for (task, cls, tech), rows in sorted(groups.items()):
        ranked = [r for r in rows if r["rank"] is not None]
        best = (
            min(ranked, key=lambda r: r["rank"] or 0)
            if ranked
            else max(rows, key=lambda r: r["accuracy"] or 0)
        )
        out.append(
            {
                "task": task,
                "energy_class": cls,
                "technique": tech,
                "best": row_id(best),
                "rank": best["rank"],
                "accuracy": best["accuracy"],
                "base_accuracy": best["base_accuracy"],
                "accuracy_cost": best["accuracy_cost"],
                "energy_per_inference_j": best["energy_per_inference_j"],
                "accuracy_per_joule": best["accuracy_per_joule"],
                "n_variants": len(rows),
                "passes_gate": best["passes_gate"],
                "fine_tune": _stages(best),
            }
        )
    return out


def budget_rows(board: list[BoardRow], tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Which rows fit their task's CO2e-per-1000-inferences budget (tasks with a budget only)."""
    budget = {t["task"]: t["budget_g_per_1000"] for t in tasks if t["budget_g_per_1000"] is not None}
    out = []
    for r in board:
        b = budget.get(r["task"])
        if b is None:
            continue
        g = r["co2e_g_per_1000"]
        out.append(
            {
                "task": r["task"],
                "id": row_id(r),
                "energy_class": r["energy_class"],
                "co2e_g_per_1000": g,
                "budget_g_per_1000": b,
                "fits": None if g is None else g <= b,
                "passes_gate": r["passes_gate"],
            }
        )
    return out


def run_budget_rows(
    results: list[Result], runs: list[dict[str, Any]], window_energy_j: dict[int, float]
) -> list[dict[str, Any]]:
    """Per run with a ``carbon.budget_g``: CO2e of its measured windows per energy class, and the verdict."""
    out = []
    for run in runs:
        budget = _settings(run).get("carbon", {}).get("budget_g")
        if budget is None:
            continue
        by_class: dict[str, float] = defaultdict(float)
        for r in results:
            if r.run_id != run["id"] or r.status != "done":
                continue
            windows_j = window_energy_j.get(r.id, 0.0) if r.id is not None else 0.0
            e = windows_j + (r.production.joules or 0.0)
            g = e / J_PER_KWH * (r.carbon.pue or 1.0) * (r.carbon.grid_g_per_kwh or 0.0)
            by_class[r.energy.measurement_class or "none"] += g
        spent = sum(by_class.values())
        out.append(
            {
                "run_id": run["id"],
                "suite": run["suite"],
                "budget_g": budget,
                "spent_g": spent,
                "by_class": dict(by_class),
                "fits": spent <= budget,
            }
        )
    return out


def embodied_rows(board: list[BoardRow], profiles: Profiles) -> list[dict[str, Any]]:
    """Use-phase and embodied gCO2e per 1000 inferences side by side (never summed)."""
    out = []
    for r in board:
        p = profiles.find(r["target"], r["provenance"] or {})
        if p is None:
            continue
        out.append(
            {
                "task": r["task"],
                "id": row_id(r),
                "target": r["target"],
                "use_g_per_1000": r["co2e_g_per_1000"],
                "use_class": r["energy_class"],
                "embodied_g_per_1000": p.g_per_1000(r["throughput_ips"]),
                "embodied_kgco2e": p.kgco2e,
                "lifetime_years": p.lifetime_years,
                "duty": p.duty,
                "throughput_ips": r["throughput_ips"],
                "source": p.source,
            }
        )
    return out


def gradable(energies: list[float]) -> bool:
    """Whether a (task, class) group can be graded: enough rows, and a spread wide enough for 5 bands."""
    return len(energies) >= GRADE_MIN_ROWS and max(energies) >= GRADE_MIN_SPREAD * min(energies)


def label_rows(board: list[BoardRow]) -> list[dict[str, Any]]:
    """One label per row: grade A-E from 5 equal bands of log10(E/inference) within (task, class);
    grade None where the group is not :func:`gradable`."""
    groups: dict[tuple[str, str], list[BoardRow]] = defaultdict(list)
    for r in board:
        if r["energy_per_inference_j"]:
            groups[(r["task"], r["energy_class"] or "")].append(r)
    out = []
    for (task, cls), rows in sorted(groups.items()):
        logs = [math.log10(r["energy_per_inference_j"] or 0.0) for r in rows]  # non-zero in every group
        lo, hi = min(logs), max(logs)
        graded = gradable([r["energy_per_inference_j"] or 0.0 for r in rows])
        for r, x in zip(rows, logs, strict=True):
            band = min(4, int(5 * (x - lo) / (hi - lo))) if graded else None
            prov = r["provenance"] or {}
            out.append(
                {
                    "task": task,
                    "id": row_id(r),
                    "variant": r["variant"],
                    "target": r["target"],
                    "technique": r["technique"],
                    "runtime": r["runtime"],
                    "hardware": prov.get("board") or prov.get("cpu") or r["target"],
                    "metric": r["metric"],
                    "accuracy": r["accuracy"],
                    "passes_gate": r["passes_gate"],
                    "energy_per_inference_j": r["energy_per_inference_j"],
                    "co2e_g_per_1000": r["co2e_g_per_1000"],
                    "energy_class": cls,
                    "grade": None if band is None else GRADES[band],
                    "n_in_group": len(rows),
                    "date": iso_time(r["date"]),
                    "grid_source": r["grid_source"],
                }
            )
    return out


def plot_rows(board: list[BoardRow], fr: dict[tuple[str, str], dict[str, list[str]]]) -> list[dict[str, Any]]:
    """Per (task, class) and kind: the points (x = E/inference) and the ids on the front, in x order."""
    out = []
    groups: dict[tuple[str, str], list[BoardRow]] = defaultdict(list)
    for r in board:
        if r["energy_per_inference_j"]:
            groups[(r["task"], r["energy_class"] or "")].append(r)
    for (task, cls), rows in sorted(groups.items()):
        f = fr.get((task, cls), {})
        kinds: tuple[tuple[str, Literal["accuracy", "latency_p50_ms"], str], ...] = (
            ("accuracy_energy", "accuracy", rows[0]["metric"]),
            ("latency_energy", "latency_p50_ms", "latency p50"),
        )
        for kind, ykey, ylabel in kinds:
            pts = [
                {
                    "id": row_id(r),
                    "x": r["energy_per_inference_j"],
                    "y": r[ykey],
                    "technique": r["technique"],
                    "target": r["target"],
                    "passes_gate": r["passes_gate"],
                }
                for r in rows
                if r[ykey] is not None
            ]
            out.append(
                {
                    "task": task,
                    "energy_class": cls,
                    "kind": kind,
                    "xlabel": "energy per inference",
                    "ylabel": ylabel,
                    "min_y": rows[0]["min_accuracy"] if kind == "accuracy_energy" else None,
                    "min_label": "minimum" if HIGHER_IS_BETTER.get(rows[0]["metric"], True) else "maximum",
                    "points": pts,
                    "front": list(f.get(kind, [])),
                }
            )
    return out


def grid_rows(board: list[BoardRow]) -> list[dict[str, Any]]:
    seen = sorted({(r["grid_g_per_kwh"], r["grid_source"], r["pue"]) for r in board}, key=str)
    return [{"g_per_kwh": g, "source": s, "pue": p} for g, s, p in seen]


def build(
    results: list[Result],
    runs: list[dict[str, Any]] | None = None,
    *,
    window_energy_j: dict[int, float] | None = None,
    window_p50s: dict[int, list[float]] | None = None,
    profiles: Profiles | None = None,
) -> ReportData:
    """All report rows from stored results (``Store.results()``) and runs (``Store.runs()``);
    ``window_p50s``: per result id, the median latency (s) of each valid window, in window order."""
    runs = runs or []
    board = leaderboard(results)
    skipped = [r for r in results if r.status != "done"]
    fr = fronts(board)
    tasks = task_rows(board, runs)
    run_ids = {r.run_id for r in results}
    budgets = budget_rows(board, tasks)
    return ReportData(
        board=board,
        skipped=skipped,
        runs=[
            {
                "id": r["id"],
                "suite": r["suite"],
                "started": iso_time(r["started"]),
                "status": r["status"],
                "git_rev": r["git_rev"],
                "host": r["host"],
                **run_provenance(r, results),
            }
            for r in runs
            if r["id"] in run_ids
        ],
        tasks=tasks,
        fronts=fr,
        techniques=technique_rows(board),
        budgets=budgets,
        run_budgets=run_budget_rows(results, [r for r in runs if r["id"] in run_ids], window_energy_j or {}),
        embodied=embodied_rows(board, profiles or Profiles({}, {})),
        labels=label_rows(board),
        grid_sources=grid_rows(board),
        plots=plot_rows(board, fr),
        extras=extras_rows(board, results, runs, budgets),
        skipped_groups=skipped_groups(skipped),
        models=model_rows(board, skipped),
        spreads=spread_rows(results, window_p50s or {}),
    )


def from_board(board: list[BoardRow], skipped: list[Result] | None = None) -> ReportData:
    """Report rows when only leaderboard rows are at hand (no runs, budgets or embodied profiles)."""
    fr = fronts(board)
    return ReportData(
        board=board,
        skipped=skipped or [],
        tasks=task_rows(board, []),
        fronts=fr,
        techniques=technique_rows(board),
        labels=label_rows(board),
        grid_sources=grid_rows(board),
        plots=plot_rows(board, fr),
        extras=extras_rows(board, [], [], []),
        skipped_groups=skipped_groups(skipped or []),
        models=model_rows(board, skipped or []),
    )


def from_db(db: str | Path, run_id: int | None = None, embodied: str | Path | None = None) -> ReportData:
    """Read a results database (and an optional embodied-carbon profile file) into report rows."""
    from ..results.store import Store

    with Store.open(db, create=False) as store:
        results = store.results(run_id=run_id)
        runs = store.runs()
        energy = {
            rid: float(e or 0.0)
            for rid, e in store.conn.execute(
                "SELECT result_id, SUM(energy_j) FROM windows WHERE valid=1 GROUP BY result_id"
            )
        }
        p50s = {  # the median latency of each valid window, per done result
            r.id: [w["latency_p50_s"] for w in store.windows(r.id) if w["valid"] and w["latency_p50_s"]]
            for r in results
            if r.status == "done" and r.id is not None
        }
    profiles = load_profiles(embodied) if embodied else Profiles({}, {})
    return build(results, runs, window_energy_j=energy, window_p50s=p50s, profiles=profiles)
