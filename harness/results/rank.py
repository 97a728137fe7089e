"""Ranking: gate on the task's minimum, quality per joule within one measurement class, Pareto fronts.

Input: :class:`~harness.results.record.Result` records from the store; output: the leaderboard rows
(:class:`BoardRow`, keyed by the column names of the JSON and CSV reports) that every report renders.
Classes (external, counter, simulated, estimate) are ranked separately, never against each other.
A database holds every run; the leaderboard shows the latest done result per (task, variant, target)
(:func:`latest`), so a re-run after a failed run replaces its older figures instead of listing both.
A re-run under changed run rules or a changed gate (minimum, metric: both in the job key, so the
job is measured again) supersedes the older row the same way; ``all_runs`` keeps both, told apart
by ``run_id`` and ``min_accuracy``.
A task with several base models ranks all their variants together under its one minimum (such rows
carry ``base_model``); a performance-only task (synthetic data) has no accuracy on its board and is
ranked by energy per inference alone (its rows carry ``performance_only``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, NotRequired, TypedDict

from ..metrics import HIGHER_IS_BETTER, passes
from .carbon import co2e_g_per_1000
from .record import Result

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


class BoardRow(TypedDict):
    """One leaderboard row: the :data:`LEADERBOARD_KEYS` first, then what the reports show beside them.

    Its keys (in this order) are the JSON and CSV report's columns, so they stay as they are.
    """

    task: str
    variant: str
    technique: str | None
    target: str
    runtime: str | None
    metric: str
    accuracy: float | None
    min_accuracy: float | None
    passes_gate: bool
    latency_p50_ms: float | None
    latency_p90_ms: float | None
    latency_p99_ms: float | None
    throughput_ips: float | None
    energy_per_inference_j: float | None
    energy_class: str | None
    accuracy_per_joule: float | None
    co2e_g_per_1000: float | None
    params: int | None
    macs: int | None
    model_bytes: int | None
    rank: int | None
    base_accuracy: float | None
    accuracy_cost: float | None
    breakeven_inferences: float | None
    energy_dyn_j: float | None
    p_idle_w: float | None
    latency_ci_rel: float | None
    energy_ci_rel: float | None
    marker_method: str | None
    meter: str | None
    boundary: str | None
    instr_per_inference: float | None
    ram_bytes: int | None
    flash_bytes: int | None
    fine_tuned: bool
    epochs: int | None
    model_bytes_gz: int | None
    produce_s: float | None
    produce_j: float | None
    produce_energy_class: str | None
    grid_g_per_kwh: float | None
    grid_source: str | None
    pue: float | None
    threads: Any
    batch: Any
    isa: Any
    runtime_version: Any
    git_rev: Any
    date: float | None
    run_id: int | None
    provenance: dict[str, Any]
    base_model: NotRequired[str | None]  # only in tasks with several base models
    performance_only: NotRequired[bool]  # only in performance-only tasks
    # only for fine-tuned variants: argmax accuracy on the training split's validation rows of the base
    # model, of the compressed model before fine-tuning (the projection), and after fine-tuning
    val_accuracy_base: NotRequired[float | None]
    val_accuracy_projection: NotRequired[float | None]
    val_accuracy_finetuned: NotRequired[float | None]


def _ms(x: float | None) -> float | None:
    return None if x is None else x * 1e3


def identity(r: Result) -> tuple[str, str, str]:
    """What a leaderboard row is labelled by: (task, variant, target)."""
    return (r.task, r.variant, r.target)


def latest(results: Iterable[Result]) -> list[Result]:
    """The latest done result per (task, variant, target), latest by store id (else input order);
    returned in the order of the input."""
    done = [r for r in results if r.status == "done"]
    last: dict[tuple[str, str, str], int] = {}
    for i, r in enumerate(done):
        k = identity(r)
        j = last.get(k)
        if j is None or (r.id or 0) >= (done[j].id or 0):
            last[k] = i
    keep = set(last.values())
    return [r for i, r in enumerate(done) if i in keep]


def leaderboard(results: Iterable[Result], *, all_runs: bool = False) -> list[BoardRow]:
    """Leaderboard rows, sorted by task, class, rank; extra keys kept for reports.

    Default: the latest done result per (task, variant, target) (each row keeps its ``run_id``);
    ``all_runs``: every done result of every run (history: one label may then appear more than once).
    """
    rows = [r for r in results if r.status == "done"] if all_runs else latest(results)
    bases: dict[str, set[str | None]] = defaultdict(set)
    for r in rows:
        bases[r.task].add(r.base_model)
    base_acc: dict[tuple[str, str | None, str], float] = {}  # the fp32 of each base model
    base_e: dict[tuple[str, str | None, str], float] = {}
    for r in rows:
        if r.technique == "fp32" and r.accuracy is not None:
            base_acc[(r.task, r.base_model, r.target)] = r.accuracy
            if r.energy.per_inference_j:
                base_e[(r.task, r.base_model, r.target)] = r.energy.per_inference_j
    out: list[BoardRow] = []
    for r in rows:
        lat, en, mod, prod, co2 = r.latency, r.energy, r.model, r.production, r.carbon
        e = en.per_inference_j
        metric = r.metric or "accuracy"
        perf_only = bool((r.provenance or {}).get("performance_only"))
        acc = None if perf_only else r.accuracy  # synthetic data: the measured accuracy means nothing
        ok = perf_only or (r.min_accuracy is not None and passes(metric, acc, r.min_accuracy))
        qpj = acc / e if (e and acc is not None and HIGHER_IS_BETTER[metric]) else None
        key = (r.task, r.base_model, r.target)
        ba = None if perf_only else base_acc.get(key)
        be = base_e.get(key)
        breakeven = None
        same_class = prod.energy_class == en.measurement_class  # never mix classes in one figure
        if same_class and prod.joules and be and e and be > e and r.technique != "fp32":
            breakeven = prod.joules / (be - e)  # inferences until the production energy is repaid
        prov = r.provenance or {}
        row: BoardRow = {
            "task": r.task,
            "variant": r.variant,
            "technique": r.technique,
            "target": r.target,
            "runtime": r.runtime,
            "metric": metric,
            "accuracy": acc,
            "min_accuracy": r.min_accuracy,
            "passes_gate": ok,
            "latency_p50_ms": _ms(lat.p50_s),
            "latency_p90_ms": _ms(lat.p90_s),
            "latency_p99_ms": _ms(lat.p99_s),
            "throughput_ips": lat.throughput_ips,
            "energy_per_inference_j": e,
            "energy_class": en.measurement_class,
            "accuracy_per_joule": qpj,
            "co2e_g_per_1000": co2e_g_per_1000(e, co2.pue or 1.0, co2.grid_g_per_kwh or 0.0),
            "params": mod.params,
            "macs": mod.macs,
            "model_bytes": mod.model_bytes,
            "rank": None,
            # beyond the required keys
            "base_accuracy": ba,
            "accuracy_cost": (ba - acc) if ba is not None and acc is not None else None,
            "breakeven_inferences": breakeven,
            "energy_dyn_j": en.dyn_j,
            "p_idle_w": en.p_idle_w,
            "latency_ci_rel": lat.ci_rel,
            "energy_ci_rel": en.ci_rel,
            "marker_method": en.marker_method,
            "meter": en.meter,
            "boundary": en.boundary,
            "instr_per_inference": lat.instr_per_inference,
            "ram_bytes": mod.ram_bytes,
            "flash_bytes": mod.flash_bytes,
            "fine_tuned": bool(mod.fine_tuned),
            "epochs": mod.epochs,
            "model_bytes_gz": mod.model_bytes_gz,
            "produce_s": prod.seconds,
            "produce_j": prod.joules,
            "produce_energy_class": prod.energy_class,
            "grid_g_per_kwh": co2.grid_g_per_kwh,
            "grid_source": co2.grid_source,
            "pue": co2.pue,
            "threads": prov.get("threads"),
            "batch": prov.get("batch"),
            "isa": prov.get("isa"),
            "runtime_version": prov.get("runtime_version"),
            "git_rev": prov.get("git_rev"),
            "date": r.created,
            "run_id": r.run_id,
            "provenance": prov,
        }
        if len(bases[r.task]) > 1:
            row["base_model"] = r.base_model
        if perf_only:
            row["performance_only"] = True
        stages = (r.variant_meta or {}).get("accuracy_stages")
        if isinstance(stages, dict):
            row["val_accuracy_base"] = stages.get("base")
            row["val_accuracy_projection"] = stages.get("projection")
            row["val_accuracy_finetuned"] = stages.get("fine_tuned")
        out.append(row)
    groups: dict[tuple[str, str | None], list[BoardRow]] = defaultdict(list)
    for row in out:
        if row["passes_gate"] and row["energy_per_inference_j"]:
            groups[(row["task"], row["energy_class"])].append(row)
    for grp in groups.values():
        if grp and grp[0]["accuracy_per_joule"] is not None:
            grp.sort(key=lambda x: -(x["accuracy_per_joule"] or 0.0))  # set on every row of such a group
        else:  # lower-is-better metric (mae): rank by energy per inference among those that pass
            grp.sort(key=lambda x: x["energy_per_inference_j"] or 0.0)  # non-zero in every group
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


def fronts(board: list[BoardRow]) -> dict[tuple[str, str], dict[str, list[str]]]:
    """Per (task, class): variant@target ids on the accuracy×energy and latency×energy fronts."""
    res: dict[tuple[str, str], dict[str, list[str]]] = {}
    groups: dict[tuple[str, str], list[BoardRow]] = defaultdict(list)
    for r in board:
        if r["energy_per_inference_j"]:
            groups[(r["task"], r["energy_class"] or "")].append(r)
    for key, grp in groups.items():
        ids = [f"{r['variant']}@{r['target']}" for r in grp]
        hib = HIGHER_IS_BETTER.get(grp[0]["metric"], True)
        e = [r["energy_per_inference_j"] or 0.0 for r in grp]  # non-zero in every group
        acc = pareto_front([(x, r["accuracy"] or 0.0) for x, r in zip(e, grp, strict=True)], maximize_y=hib)
        lat = pareto_front(
            [(x, r["latency_p50_ms"] or 0.0) for x, r in zip(e, grp, strict=True)], maximize_y=False
        )
        res[key] = {"accuracy_energy": [ids[i] for i in acc], "latency_energy": [ids[i] for i in lat]}
    return res
