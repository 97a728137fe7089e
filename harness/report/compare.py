"""Compare two sets of results (two databases, or two runs of one): what changed, and is it real.

Results are matched by (task, variant, target). Latency and energy carry the 95 % CI of their median
(``*_ci_rel``, relative half-width); a change is a regression only when the two intervals do not
overlap (new low end above old high end), an improvement in the mirror case, else "within CI".
Energy figures of different measurement classes are never compared. Accuracy comes from a fixed
evaluation set, so it has no sampling CI: a drop larger than ``accuracy_tolerance`` is a regression,
and so is a variant that met the task's minimum before and does not now.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Literal

from ..metrics import HIGHER_IS_BETTER, passes
from ..results.record import Result

REGRESSION, IMPROVEMENT, WITHIN, NO_CI, NOT_COMPARABLE, UNCHANGED = (
    "regression",
    "improvement",
    "within CI",
    "no CI",
    "not comparable",
    "within tolerance",
)


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


@dataclass(frozen=True)
class Compared:
    """One (task, variant, target): matched on both sides (with its three changes), added or removed."""

    task: str
    variant: str
    target: str
    status: Literal["matched", "added", "removed"]
    changes: tuple[Change, ...] = ()  # quality, latency p50, energy per inference (matched only)
    energy_class: tuple[str | None, str | None] | None = None  # (old, new) measurement class
    regression: bool = False


def _key(r: Result) -> tuple[str, str, str]:
    return (r.task, r.variant, r.target)


def judge_lower_better(
    old: float | None, new: float | None, ci_old: float | None, ci_new: float | None
) -> str:
    """Verdict for a lower-is-better figure given relative CI half-widths of both medians."""
    if old is None or new is None:
        return NOT_COMPARABLE
    if ci_old is None or ci_new is None:
        return NO_CI
    if new * (1 - ci_new) > old * (1 + ci_old):
        return REGRESSION
    if new * (1 + ci_new) < old * (1 - ci_old):
        return IMPROVEMENT
    return WITHIN


def _rel(old: float | None, new: float | None) -> float | None:
    return None if not old or new is None else (new - old) / old


def compare(old: list[Result], new: list[Result], *, accuracy_tolerance: float = 0.0) -> list[Compared]:
    """One :class:`Compared` per (task, variant, target) of either side, sorted by that key."""
    o = {_key(r): r for r in old if r.status == "done"}
    n = {_key(r): r for r in new if r.status == "done"}
    rows: list[Compared] = []
    for k in sorted(set(o) | set(n)):
        a, b = o.get(k), n.get(k)
        if a is None or b is None:
            rows.append(Compared(*k, status="added" if a is None else "removed"))
            continue
        metric = b.metric or "accuracy"
        hib = HIGHER_IS_BETTER.get(metric, True)
        acc_v = NOT_COMPARABLE
        if a.accuracy is not None and b.accuracy is not None:
            worse = (a.accuracy - b.accuracy) if hib else (b.accuracy - a.accuracy)
            lost_gate = _passes(metric, a) and not _passes(metric, b)
            acc_v = (
                REGRESSION
                if (worse > accuracy_tolerance or lost_gate)
                else (IMPROVEMENT if -worse > accuracy_tolerance else UNCHANGED)
            )
        la, lb = a.latency.p50_s, b.latency.p50_s
        lca, lcb = a.latency.ci_rel, b.latency.ci_rel
        ea, eb = a.energy.per_inference_j, b.energy.per_inference_j
        eca, ecb = a.energy.ci_rel, b.energy.ci_rel
        same_class = a.energy.measurement_class == b.energy.measurement_class
        changes = (
            Change(metric, a.accuracy, b.accuracy, _rel(a.accuracy, b.accuracy), None, None, acc_v),
            Change("latency_p50_s", la, lb, _rel(la, lb), lca, lcb, judge_lower_better(la, lb, lca, lcb)),
            Change(
                "energy_per_inference_j",
                ea,
                eb,
                _rel(ea, eb),
                eca,
                ecb,
                judge_lower_better(ea, eb, eca, ecb) if same_class else NOT_COMPARABLE,
            ),
        )
        rows.append(
            Compared(
                *k,
                status="matched",
                changes=changes,
                energy_class=(a.energy.measurement_class, b.energy.measurement_class),
                regression=any(c.verdict == REGRESSION for c in changes),
            )
        )
    return rows


def _passes(metric: str, r: Result) -> bool:
    return r.min_accuracy is not None and passes(metric, r.accuracy, r.min_accuracy)


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


def markdown(rows: list[Compared], old_name: str, new_name: str) -> str:
    """The comparison as Markdown (what a CI job posts)."""
    reg = [r for r in rows if r.regression]
    lines = [
        "# frugalbench comparison",
        "",
        f"Old: `{_md(old_name)}`, new: `{_md(new_name)}`. A regression is a change beyond the 95 % CI of both "
        "medians (intervals do not overlap); accuracy: a drop beyond the tolerance or a lost minimum.",
        "",
        f"**{len(reg)} regression(s)** in {sum(r.status == 'matched' for r in rows)} matched results.",
        "",
        *[
            f"- REGRESSION {_md(_where(r))}: "
            + "; ".join(f"{c.metric} {_md(_cell(c))}" for c in r.changes if c.verdict == REGRESSION)
            for r in reg
        ],
        *([""] if reg else []),
        "| task | variant | target | quality | latency p50 | energy / inference | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.status != "matched":
            lines.append(f"| {_md(r.task)} | {_md(r.variant)} | {_md(r.target)} | | | | {r.status} |")
            continue
        c = r.changes
        lines.append(
            f"| {_md(r.task)} | {_md(r.variant)} | {_md(r.target)} | {_md(_cell(c[0]))} | "
            f"{_md(_cell(c[1]))} | {_md(_cell(c[2]))} | {'**REGRESSION**' if r.regression else 'ok'} |"
        )
    return "\n".join(lines) + "\n"


EXTRA_CSS = "table.compare td{white-space:normal}table.compare small{color:#5d6b78}"


def html(rows: list[Compared], old_name: str, new_name: str) -> str:
    """The comparison as one self-contained HTML page."""
    from .html import CSP, CSS

    body = []
    for r in rows:
        cls = "row regression" if r.regression else "row"
        if r.status != "matched":
            cells = "<td></td><td></td><td></td>" + f"<td>{escape(r.status)}</td>"
        else:
            cells = (
                "".join(
                    f'<td class="{"no" if c.verdict == REGRESSION else "yes" if c.verdict == IMPROVEMENT else ""}">'
                    f"{escape(_span(c))}<br><small>{escape(_delta(c))}</small></td>"
                    for c in r.changes
                )
                + f"<td>{'<b class=no>REGRESSION</b>' if r.regression else 'ok'}</td>"
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
        "A regression is a change beyond the 95 % CI of both medians; accuracy: a drop beyond the tolerance "
        "or a lost minimum.</p><div class='tbl'><table class='compare'><thead><tr><th>task</th><th>variant</th>"
        "<th>target</th><th>quality</th><th>latency p50</th><th>energy / inference</th><th>verdict</th></tr>"
        f"</thead><tbody>{''.join(body)}</tbody></table></div></main></body></html>"
    )
