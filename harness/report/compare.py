"""Compare two sets of results (two databases, or two runs of one): what changed, and is it real.

Results are paired by (task, variant, target) and must share their configuration (variant key, base
model, runtime, threads, batch, the target's table); a pair whose configuration differs is listed as
*changed*, with what changed, and never judged. Each side is the latest done result per
(task, variant, target) of what it was given (a whole database, or one run).

A measured figure (latency p50, measured energy) is a regression only when both hold:

* the change is beyond the 95 % CI of both medians (the intervals do not overlap), and
* it is larger than the practical ``threshold`` (default :data:`DEFAULT_THRESHOLD`): a within-run CI
  does not hold the run-to-run variation of a shared machine, which the threshold covers;
* where the windows are at hand, the best window (lowest window median; lowest window energy per
  inference) moved beyond the threshold too: contention from other processes only adds time, and on
  a shared host it inflates whole windows (seen: 5.7 µs windows beside 8.5-9.0 µs ones in one result);
* and the change is larger than ``spread_factor`` × the spread the host showed in these very results
  (the largest ratio of a result's slowest to its fastest window, over both sides,
  :func:`observed_spread`), since a busy spell can slow every window of a result as much as it slowed
  some windows of another. On a quiet host the spread is small and the threshold decides.

A zero-width interval on a measured figure (identical window medians, e.g. at the timer's
resolution) says nothing about the run-to-run spread: the threshold alone then decides.
A deterministic figure (instruction-counted MCU latency, ``simulated`` energy) has no sampling noise:
it is a regression when it grows by more than ``exact_tolerance`` (default
:data:`DEFAULT_EXACT_TOLERANCE`). ``estimate`` energy is a model of
latency (cores × W per core × p50), so it is shown but never judged on its own. Energy figures of
different measurement classes are never compared. Accuracy comes from a fixed evaluation set, so it
has no sampling CI: a drop larger than ``accuracy_tolerance`` is a regression, and so is a variant
that met the task's minimum before and does not now.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Any, Literal

from ..metrics import HIGHER_IS_BETTER, passes
from ..results.rank import identity, latest
from ..results.record import Result
from ..results.store import WindowRange

REGRESSION, IMPROVEMENT, WITHIN, NO_CI, NOT_COMPARABLE, UNCHANGED = (
    "regression",
    "improvement",
    "within CI",
    "no CI",
    "not comparable",
    "within tolerance",
)
BELOW_THRESHOLD = "below threshold"  # outside both CIs, but smaller than the run-to-run threshold
BEST_WINDOW_WITHIN = "best window within threshold"  # the median moved, the uncontended windows did not
FOLLOWS_LATENCY = "estimate (follows latency)"  # estimate energy: never judged on its own
CONFIG_CHANGED = "configuration changed"

#: Default practical threshold for measured figures (relative change). Measured on the 2-core shared
#: development host (quick suite, CPU targets, six same-code runs into six databases, 15 pairs, 12
#: measured results each): where neither result shows contention between its windows (within 5 %),
#: latency p50 moved by 1.0 % (median) and 2.7 % (90th percentile); 10 % sits above that.
DEFAULT_THRESHOLD = 0.10
#: How far beyond the spread between windows seen in the compared results a change must go: a busy
#: spell can slow every window of a result (then its windows agree) by more than it slowed some
#: windows of another. Measured (same runs): a whole result at +65 % while the largest spread
#: between windows of the pair was 61 %; the spreads of the 15 pairs were 61-109 %.
DEFAULT_SPREAD_FACTOR = 1.5
#: Default tolerance of deterministic figures (instruction-counted latency, simulated energy): rounding
#: of the stored figure stays far below it, a changed kernel does not.
DEFAULT_EXACT_TOLERANCE = 0.005

#: The configuration fields two results must share to be compared (see :func:`configuration`).
CONFIG_FIELDS = ("variant_key", "base_key", "runtime", "threads", "batch", "target_kind", "target_config")


@dataclass(frozen=True)
class Change:
    """One metric of one matched result: old and new value, relative change and the verdict."""

    metric: str
    old: float | None
    new: float | None
    rel: float | None
    old_ci: float | None
    new_ci: float | None
    verdict: str
    old_best: float | None = None  # best window (see the module docstring), where known
    new_best: float | None = None


@dataclass(frozen=True)
class Compared:
    """One (task, variant, target): matched on both sides (with its three changes), added, removed, or
    present on both sides under a changed configuration (``differences``: field -> (old, new))."""

    task: str
    variant: str
    target: str
    status: Literal["matched", "added", "removed", "changed"]
    changes: tuple[Change, ...] = ()  # quality, latency p50, energy per inference (matched, changed)
    energy_class: tuple[str | None, str | None] | None = None  # (old, new) measurement class
    regression: bool = False
    run_ids: tuple[int | None, int | None] = (None, None)
    differences: tuple[tuple[str, Any, Any], ...] = ()


#: Per stored result id of one side: the range of its windows (``Store.window_ranges()``).
Ranges = Mapping[int, WindowRange]


@dataclass(frozen=True)
class Rules:
    """What makes a change a regression (see the module docstring)."""

    threshold: float = DEFAULT_THRESHOLD
    exact_tolerance: float = DEFAULT_EXACT_TOLERANCE
    accuracy_tolerance: float = 0.0
    latency_spread: float = 0.0  # observed_spread() of the compared results
    energy_spread: float = 0.0
    spread_factor: float = DEFAULT_SPREAD_FACTOR

    def limit(self, metric: str) -> float:
        """The smallest relative change of ``metric`` that can be a regression: the threshold, or
        ``spread_factor`` × the spread the compared results show, where that is larger."""
        spread = self.latency_spread if metric == "latency_p50_s" else self.energy_spread
        return max(self.threshold, self.spread_factor * spread)


def observed_spread(sides: list[tuple[list[Result], Ranges]]) -> tuple[float, float]:
    """The largest (slowest / fastest window - 1) of latency, then of energy per inference, over the
    measured results of every side (instruction-counted and simulated figures have no spread)."""
    lat, en = 0.0, 0.0
    for results, ranges in sides:
        for r in results:
            w = ranges.get(r.id) if r.id is not None else None
            if w is None:
                continue
            if r.latency.instr_per_inference is None and w.latency_min_s and w.latency_max_s:
                lat = max(lat, w.latency_max_s / w.latency_min_s - 1)
            if (
                r.energy.measurement_class not in ("simulated", "estimate")
                and w.energy_min_j
                and w.energy_max_j
            ):
                en = max(en, w.energy_max_j / w.energy_min_j - 1)
    return lat, en


def configuration(r: Result) -> dict[str, Any]:
    """The configuration of a result: what must be equal for two results to be compared."""
    prov = r.provenance or {}
    tab = prov.get("target_config")
    return {
        "variant_key": r.variant_key,
        "base_key": (r.variant_meta or {}).get("base_key"),
        "runtime": r.runtime,
        "threads": prov.get("threads", (tab or {}).get("threads")),
        "batch": prov.get("batch", (tab or {}).get("batch")),
        "target_kind": r.target_kind,
        "target_config": json.dumps(tab, sort_keys=True, default=str) if tab is not None else None,
    }


def differences(a: Result, b: Result) -> tuple[tuple[str, Any, Any], ...]:
    """The configuration fields that differ between ``a`` and ``b``: (field, old, new)."""
    ca, cb = configuration(a), configuration(b)
    return tuple((k, ca[k], cb[k]) for k in CONFIG_FIELDS if ca[k] != cb[k])


def judge_lower_better(
    old: float | None,
    new: float | None,
    ci_old: float | None,
    ci_new: float | None,
    *,
    threshold: float = 0.0,
) -> str:
    """Verdict for a lower-is-better measured figure given relative CI half-widths of both medians:
    a regression (improvement) needs non-overlapping intervals and a change beyond ``threshold``."""
    if old is None or new is None or old <= 0:
        return NOT_COMPARABLE
    if ci_old is None or ci_new is None:
        return NO_CI
    worse = new * (1 - ci_new) > old * (1 + ci_old)
    better = new * (1 + ci_new) < old * (1 - ci_old)
    if not (worse or better):
        return WITHIN
    if abs(new - old) / old <= threshold:
        return BELOW_THRESHOLD
    return REGRESSION if worse else IMPROVEMENT


def judge_exact(old: float | None, new: float | None, tolerance: float) -> str:
    """Verdict for a deterministic lower-is-better figure: a change beyond ``tolerance`` (relative)."""
    if old is None or new is None or old <= 0:
        return NOT_COMPARABLE
    rel = (new - old) / old
    if rel > tolerance:
        return REGRESSION
    if rel < -tolerance:
        return IMPROVEMENT
    return UNCHANGED


def _rel(old: float | None, new: float | None) -> float | None:
    return None if not old or new is None else (new - old) / old


def confirm_by_best(verdict: str, old_best: float | None, new_best: float | None, threshold: float) -> str:
    """A regression or improvement of a measured median stands only if the best window moved beyond
    ``threshold`` in the same direction too (kept as is where a best window is unknown)."""
    if verdict not in (REGRESSION, IMPROVEMENT) or not old_best or new_best is None:
        return verdict
    rel = (new_best - old_best) / old_best
    moved = rel > threshold if verdict == REGRESSION else rel < -threshold
    return verdict if moved else BEST_WINDOW_WITHIN


def _range(r: Result, ranges: Ranges | None) -> WindowRange | None:
    return None if ranges is None or r.id is None else ranges.get(r.id)


def _latency(a: Result, b: Result, rules: Rules, ranges: tuple[Ranges | None, Ranges | None]) -> Change:
    la, lb, ca, cb = a.latency.p50_s, b.latency.p50_s, a.latency.ci_rel, b.latency.ci_rel
    wa, wb = _range(a, ranges[0]), _range(b, ranges[1])
    ba, bb = (wa.latency_min_s if wa else None), (wb.latency_min_s if wb else None)
    limit = rules.limit("latency_p50_s")
    counted = a.latency.instr_per_inference is not None and b.latency.instr_per_inference is not None
    if counted:
        verdict = judge_exact(la, lb, rules.exact_tolerance)
    else:
        verdict = judge_lower_better(la, lb, ca, cb, threshold=limit)
        verdict = confirm_by_best(verdict, ba, bb, limit)
    return Change("latency_p50_s", la, lb, _rel(la, lb), ca, cb, verdict, ba, bb)


def _energy(a: Result, b: Result, rules: Rules, ranges: tuple[Ranges | None, Ranges | None]) -> Change:
    ea, eb, ca, cb = a.energy.per_inference_j, b.energy.per_inference_j, a.energy.ci_rel, b.energy.ci_rel
    wa, wb = _range(a, ranges[0]), _range(b, ranges[1])
    ba, bb = (wa.energy_min_j if wa else None), (wb.energy_min_j if wb else None)
    limit = rules.limit("energy_per_inference_j")
    cls_a, cls_b = a.energy.measurement_class, b.energy.measurement_class
    if cls_a != cls_b:
        verdict = NOT_COMPARABLE
    elif cls_a == "estimate":
        verdict = FOLLOWS_LATENCY if ea is not None and eb is not None else NOT_COMPARABLE
    elif cls_a == "simulated":
        verdict = judge_exact(ea, eb, rules.exact_tolerance)
    else:
        verdict = judge_lower_better(ea, eb, ca, cb, threshold=limit)
        verdict = confirm_by_best(verdict, ba, bb, limit)
    return Change("energy_per_inference_j", ea, eb, _rel(ea, eb), ca, cb, verdict, ba, bb)


def _quality(a: Result, b: Result, rules: Rules) -> Change:
    metric = b.metric or "accuracy"
    hib = HIGHER_IS_BETTER.get(metric, True)
    verdict = NOT_COMPARABLE
    if a.accuracy is not None and b.accuracy is not None:
        worse = (a.accuracy - b.accuracy) if hib else (b.accuracy - a.accuracy)
        lost_gate = _passes(metric, a) and not _passes(metric, b)
        tol = rules.accuracy_tolerance
        verdict = REGRESSION if (worse > tol or lost_gate) else (IMPROVEMENT if -worse > tol else UNCHANGED)
    return Change(metric, a.accuracy, b.accuracy, _rel(a.accuracy, b.accuracy), None, None, verdict)


def compare(
    old: list[Result],
    new: list[Result],
    *,
    accuracy_tolerance: float = 0.0,
    rules: Rules | None = None,
    windows: tuple[Ranges | None, Ranges | None] = (None, None),
) -> list[Compared]:
    """One :class:`Compared` per (task, variant, target) of either side, sorted by that key.

    Each side is reduced to its latest done result per (task, variant, target) first.
    ``accuracy_tolerance`` is kept for callers that only set it; ``rules`` overrides it. ``windows``: the
    window ranges of the old and the new side (``Store.window_ranges()``), by result id; the host's
    spread is not computed here but taken from ``rules`` (see :func:`observed_spread`).
    """
    rules = rules or Rules(accuracy_tolerance=accuracy_tolerance)
    o = {identity(r): r for r in latest(old)}
    n = {identity(r): r for r in latest(new)}
    rows: list[Compared] = []
    for k in sorted(set(o) | set(n)):
        a, b = o.get(k), n.get(k)
        if a is None or b is None:
            r = b if a is None else a
            assert r is not None
            ids = (None, r.run_id) if a is None else (r.run_id, None)
            rows.append(Compared(*k, status="added" if a is None else "removed", run_ids=ids))
            continue
        classes = (a.energy.measurement_class, b.energy.measurement_class)
        diff = differences(a, b)
        if diff:
            shown = tuple(
                Change(c.metric, c.old, c.new, c.rel, c.old_ci, c.new_ci, CONFIG_CHANGED)
                for c in (
                    _quality(a, b, rules),
                    _latency(a, b, rules, windows),
                    _energy(a, b, rules, windows),
                )
            )
            rows.append(
                Compared(
                    *k,
                    status="changed",
                    changes=shown,
                    energy_class=classes,
                    run_ids=(a.run_id, b.run_id),
                    differences=diff,
                )
            )
            continue
        changes = (_quality(a, b, rules), _latency(a, b, rules, windows), _energy(a, b, rules, windows))
        rows.append(
            Compared(
                *k,
                status="matched",
                changes=changes,
                energy_class=classes,
                regression=any(c.verdict == REGRESSION for c in changes),
                run_ids=(a.run_id, b.run_id),
            )
        )
    return rows


def _passes(metric: str, r: Result) -> bool:
    return r.min_accuracy is not None and passes(metric, r.accuracy, r.min_accuracy)


def to_json(rows: list[Compared], old_name: str, new_name: str, rules: Rules) -> str:
    """The comparison as JSON: per matched result old/new/change/verdict per metric, then the added,
    removed and changed (configuration) lists; ``regressions`` counts the matched ones flagged."""

    def ident(r: Compared) -> dict[str, Any]:
        return {"task": r.task, "variant": r.variant, "target": r.target}

    def metrics(r: Compared) -> dict[str, dict[str, Any]]:
        return {
            c.metric: {
                "old": c.old,
                "new": c.new,
                "change": c.rel,
                "old_ci_rel": c.old_ci,
                "new_ci_rel": c.new_ci,
                "old_best": c.old_best,
                "new_best": c.new_best,
                "verdict": c.verdict,
            }
            for c in r.changes
        }

    doc = {
        "old": old_name,
        "new": new_name,
        "rules": {
            "threshold": rules.threshold,
            "exact_tolerance": rules.exact_tolerance,
            "accuracy_tolerance": rules.accuracy_tolerance,
            "spread_factor": rules.spread_factor,
            "latency_spread": rules.latency_spread,
            "energy_spread": rules.energy_spread,
            "latency_limit": rules.limit("latency_p50_s"),
            "energy_limit": rules.limit("energy_per_inference_j"),
        },
        "regressions": sum(r.regression for r in rows),
        "matched": [
            {
                **ident(r),
                "old_run": r.run_ids[0],
                "new_run": r.run_ids[1],
                "energy_class": list(r.energy_class or (None, None)),
                "regression": r.regression,
                "metrics": metrics(r),
            }
            for r in rows
            if r.status == "matched"
        ],
        "added": [{**ident(r), "new_run": r.run_ids[1]} for r in rows if r.status == "added"],
        "removed": [{**ident(r), "old_run": r.run_ids[0]} for r in rows if r.status == "removed"],
        "changed": [
            {
                **ident(r),
                "old_run": r.run_ids[0],
                "new_run": r.run_ids[1],
                "differences": {f: {"old": o, "new": n} for f, o, n in r.differences},
                "metrics": metrics(r),
            }
            for r in rows
            if r.status == "changed"
        ],
    }
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def _v(x: float | None, metric: str) -> str:
    if x is None:
        return "–"
    if metric == "latency_p50_s":
        return f"{x * 1e3:.4g} ms"
    if metric == "energy_per_inference_j":
        for unit, f in (("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9)):
            if x >= f:
                return f"{x / f:.4g} {unit}"
    return f"{x:.4g}"


def _ci(c: float | None) -> str:
    return "" if c is None else f" ±{100 * c:.1f}%"


def _span(c: Change) -> str:
    return f"{_v(c.old, c.metric)}{_ci(c.old_ci)} → {_v(c.new, c.metric)}{_ci(c.new_ci)}"


def _delta(c: Change) -> str:
    return ("" if c.rel is None else f"{100 * c.rel:+.1f}%: ") + c.verdict


def _cell(c: Change) -> str:
    return f"{_span(c)} ({_delta(c)})"


def _where(r: Compared) -> str:
    return f"{r.task}/{r.variant}@{r.target}"


def _md(s: str) -> str:
    return s.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _diff_text(r: Compared) -> str:
    return ", ".join(f"{f} {o} → {n}" for f, o, n in r.differences)


def rule_text(rules: Rules) -> str:
    """The regression rule in one paragraph (every format states it)."""
    lat = rules.limit("latency_p50_s")
    return (
        "A measured figure regresses when it moves beyond the 95 % CI of both medians (intervals do not "
        f"overlap; a zero-width CI counts as none) and by more than the practical threshold, "
        f"{100 * rules.threshold:g} %, or {rules.spread_factor:g} × the spread between windows these "
        f"results show, if larger ({100 * rules.latency_spread:.1f} % for latency: latency limit "
        f"{100 * lat:.1f} %), and so has "
        "its best window where windows are stored; a deterministic one (instruction-counted, simulated) "
        f"by more than {100 * rules.exact_tolerance:g} %. Estimate energy follows latency and is not "
        "judged on its own; accuracy: a drop beyond the tolerance or a lost minimum. Results whose "
        "configuration changed are listed, not judged."
    )


def markdown(rows: list[Compared], old_name: str, new_name: str, rules: Rules | None = None) -> str:
    """The comparison as Markdown (what a CI job posts)."""
    rules = rules or Rules()
    reg = [r for r in rows if r.regression]
    changed = [r for r in rows if r.status == "changed"]
    lines = [
        "# frugalbench comparison",
        "",
        f"Old: `{_md(old_name)}`, new: `{_md(new_name)}`. {rule_text(rules)}",
        "",
        f"**{len(reg)} regression(s)** in {sum(r.status == 'matched' for r in rows)} matched results"
        + (f"; {len(changed)} with a changed configuration." if changed else "."),
        "",
        *[
            f"- REGRESSION {_md(_where(r))}: "
            + "; ".join(f"{c.metric} {_md(_cell(c))}" for c in r.changes if c.verdict == REGRESSION)
            for r in reg
        ],
        *[f"- CHANGED {_md(_where(r))}: {_md(_diff_text(r))}" for r in changed],
        *([""] if reg or changed else []),
        "| task | variant | target | quality | latency p50 | energy / inference | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.status in ("added", "removed"):
            lines.append(f"| {_md(r.task)} | {_md(r.variant)} | {_md(r.target)} | | | | {r.status} |")
            continue
        c = r.changes
        verdict = "**REGRESSION**" if r.regression else ("changed" if r.status == "changed" else "ok")
        lines.append(
            f"| {_md(r.task)} | {_md(r.variant)} | {_md(r.target)} | {_md(_cell(c[0]))} | "
            f"{_md(_cell(c[1]))} | {_md(_cell(c[2]))} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


EXTRA_CSS = "table.compare td{white-space:normal}table.compare small{color:#5d6b78}"


def html(rows: list[Compared], old_name: str, new_name: str, rules: Rules | None = None) -> str:
    """The comparison as one self-contained HTML page."""
    from .html import CSP, CSS

    rules = rules or Rules()
    body = []
    for r in rows:
        cls = "row regression" if r.regression else "row"
        if r.status in ("added", "removed"):
            cells = "<td></td><td></td><td></td>" + f"<td>{escape(r.status)}</td>"
        else:
            verdict = "<b class=no>REGRESSION</b>" if r.regression else "ok"
            if r.status == "changed":
                verdict = f"changed: {escape(_diff_text(r))}"
            cells = (
                "".join(
                    f'<td class="{"no" if c.verdict == REGRESSION else "yes" if c.verdict == IMPROVEMENT else ""}">'
                    f"{escape(_span(c))}<br><small>{escape(_delta(c))}</small></td>"
                    for c in r.changes
                )
                + f"<td>{verdict}</td>"
            )
        body.append(
            f'<tr class="{cls}"><td>{escape(r.task)}</td><td>{escape(r.variant)}</td>'
            f"<td>{escape(r.target)}</td>{cells}</tr>"
        )
    n_reg = sum(r.regression for r in rows)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}"><title>frugalbench comparison</title>'
        f"<style>{CSS}{EXTRA_CSS}</style></head><body><header><h1>frugalbench comparison</h1>"
        f"<p>old: {escape(old_name)}"
        f"<br>new: {escape(new_name)}</p></header><main><p><b id='n-regressions'>{n_reg}</b> regression(s). "
        f"{escape(rule_text(rules))}</p><div class='tbl'><table class='compare'><thead><tr><th>task</th>"
        "<th>variant</th><th>target</th><th>quality</th><th>latency p50</th><th>energy / inference</th>"
        f"<th>verdict</th></tr></thead><tbody>{''.join(body)}</tbody></table></div></main></body></html>"
    )
