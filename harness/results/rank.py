"""Ranking: gate on the task's minimum, quality per joule within one measurement class, Pareto fronts.

Rows are plain dicts from the store; the output is the leaderboard rows that every report renders.
Classes (external, counter, simulated, estimate) are ranked separately, never against each other.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ..metrics import HIGHER_IS_BETTER, passes
from .carbon import co2e_g_per_1000

LEADERBOARD_KEYS = (
    "task",
    "variant",
    "technique",
    "target",
    "runtime",
    "metric",
    "accuracy",
    "min_accuracy",
    "passes_gate",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "throughput_ips",
    "energy_per_inference_j",
    "energy_class",
    "accuracy_per_joule",
    "co2e_g_per_1000",
    "params",
    "macs",
    "model_bytes",
    "rank",
)


def _ms(x: float | None) -> float | None:
    return None if x is None else x * 1e3


def leaderboard(results: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Leaderboard rows (done results only), sorted by task, class, rank; extra keys kept for reports."""
    rows = [r for r in results if r["status"] == "done"]
    base_acc: dict[tuple[str, str], float] = {}
    base_e: dict[tuple[str, str], float] = {}
    for r in rows:
        if r["technique"] == "fp32" and r["accuracy"] is not None:
            base_acc[(r["task"], r["target"])] = r["accuracy"]
            if r["energy_per_inference_j"]:
                base_e[(r["task"], r["target"])] = r["energy_per_inference_j"]
    out = []
    for r in rows:
        e = r["energy_per_inference_j"]
        metric = r["metric"] or "accuracy"
        ok = passes(metric, r["accuracy"], r["min_accuracy"])
        qpj = r["accuracy"] / e if (e and r["accuracy"] is not None and HIGHER_IS_BETTER[metric]) else None
        key = (r["task"], r["target"])
        ba = base_acc.get(key)
        be = base_e.get(key)
        breakeven = None
        same_class = r["produce_energy_class"] == r["energy_class"]  # never mix classes in one figure
        if same_class and r["produce_j"] and be and e and be > e and r["technique"] != "fp32":
            breakeven = r["produce_j"] / (be - e)  # inferences until the production energy is repaid
        prov = r.get("provenance") or {}
        out.append(
            {
                "task": r["task"],
                "variant": r["variant"],
                "technique": r["technique"],
                "target": r["target"],
                "runtime": r["runtime"],
                "metric": metric,
                "accuracy": r["accuracy"],
                "min_accuracy": r["min_accuracy"],
                "passes_gate": ok,
                "latency_p50_ms": _ms(r["latency_p50_s"]),
                "latency_p90_ms": _ms(r["latency_p90_s"]),
                "latency_p99_ms": _ms(r["latency_p99_s"]),
                "throughput_ips": r["throughput_ips"],
                "energy_per_inference_j": e,
                "energy_class": r["energy_class"],
                "accuracy_per_joule": qpj,
                "co2e_g_per_1000": co2e_g_per_1000(e, r["pue"] or 1.0, r["grid_g_per_kwh"] or 0.0),
                "params": r["params"],
                "macs": r["macs"],
                "model_bytes": r["model_bytes"],
                "rank": None,
                # beyond the required keys
                "base_accuracy": ba,
                "accuracy_cost": (ba - r["accuracy"])
                if ba is not None and r["accuracy"] is not None
                else None,
                "breakeven_inferences": breakeven,
                "energy_dyn_j": r["energy_dyn_j"],
                "p_idle_w": r["p_idle_w"],
                "latency_ci_rel": r["latency_ci_rel"],
                "energy_ci_rel": r["energy_ci_rel"],
                "marker_method": r["marker_method"],
                "meter": r["meter"],
                "boundary": r["boundary"],
                "instr_per_inference": r["instr_per_inference"],
                "fine_tuned": bool(r["fine_tuned"]),
                "epochs": r["epochs"],
                "model_bytes_gz": r["model_bytes_gz"],
                "produce_s": r["produce_s"],
                "produce_j": r["produce_j"],
                "produce_energy_class": r["produce_energy_class"],
                "grid_g_per_kwh": r["grid_g_per_kwh"],
                "grid_source": r["grid_source"],
                "pue": r["pue"],
                "threads": prov.get("threads"),
                "batch": prov.get("batch"),
                "isa": prov.get("isa"),
                "runtime_version": prov.get("runtime_version"),
                "git_rev": prov.get("git_rev"),
                "date": r.get("created"),
                "run_id": r.get("run_id"),
                "provenance": prov,
            }
        )
    groups: dict[tuple[str, str | None], list[dict[str, Any]]] = defaultdict(list)
    for row in out:
        if row["passes_gate"] and row["energy_per_inference_j"]:
            groups[(row["task"], row["energy_class"])].append(row)
    for grp in groups.values():
        if grp and grp[0]["accuracy_per_joule"] is not None:
            grp.sort(key=lambda x: -x["accuracy_per_joule"])
        else:  # lower-is-better metric (mae): rank by energy per inference among those that pass
            grp.sort(key=lambda x: x["energy_per_inference_j"])
        for i, row in enumerate(grp, 1):
            row["rank"] = i
    out.sort(
        key=lambda x: (
            x["task"],
            x["energy_class"] or "",
            x["rank"] is None,
            x["rank"] or 0,
            -(x["accuracy"] or 0),
        )
    )
    return out


def pareto_front(points: list[tuple[float, float]], *, maximize_y: bool) -> list[int]:
    """Indices of points not dominated, minimising x and maximising (or minimising) y."""
    front = []
    for i, (xi, yi) in enumerate(points):
        dominated = False
        for j, (xj, yj) in enumerate(points):
            if i == j:
                continue
            better_y = yj >= yi if maximize_y else yj <= yi
            strictly = xj < xi or (yj > yi if maximize_y else yj < yi)
            if xj <= xi and better_y and strictly:
                dominated = True
                break
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda k: points[k][0])


def fronts(board: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, list[str]]]:
    """Per (task, class): variant@target ids on the accuracy×energy and latency×energy fronts."""
    res: dict[tuple[str, str], dict[str, list[str]]] = {}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in board:
        if r["energy_per_inference_j"]:
            groups[(r["task"], r["energy_class"] or "")].append(r)
    for key, grp in groups.items():
        ids = [f"{r['variant']}@{r['target']}" for r in grp]
        hib = HIGHER_IS_BETTER.get(grp[0]["metric"], True)
        acc = pareto_front([(r["energy_per_inference_j"], r["accuracy"] or 0.0) for r in grp], maximize_y=hib)
        lat = pareto_front(
            [(r["energy_per_inference_j"], r["latency_p50_ms"] or 0.0) for r in grp], maximize_y=False
        )
        res[key] = {"accuracy_energy": [ids[i] for i in acc], "latency_energy": [ids[i] for i in lat]}
    return res
