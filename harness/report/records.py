"""The leaderboard as records for scripts: a JSON object and a CSV table.

JSON report (``frugalbench report -f json``), schema version :data:`SCHEMA_VERSION`, one object::

    {
      "schema_version": 1,
      "runs":    [{"id", "suite", "started", "ended", "status", "git_rev", "host",
                   "frugalbench_version", "ci_target"}, ...],
      "results": [{<leaderboard row>, <STAT_KEYS>, "provenance": {...}}, ...],
      "skipped": [{"task", "variant", "target", "status", "reason"}, ...]
    }

* ``runs``: the runs the results come from. ``started``/``ended`` are ISO 8601 UTC
  (``2026-12-03T14:25:07Z``; ``ended`` None while a run is unfinished or was killed), ``status`` is
  ``running``, ``done``, ``failed``, ``interrupted`` or ``over-budget``; ``host`` is the host summary
  (``name``, and ``machine``, ``cpu``, ``isa``, ``kernel``, ``python`` where a result of the run was
  measured on that host); ``frugalbench_version`` is the version the run's results recorded (None for
  results from before it was recorded); ``ci_target`` is the run's relative CI target.
* ``results``: the leaderboard rows, keyed as the CSV columns (:data:`~harness.results.rank.LEADERBOARD_KEYS`
  first), then :data:`STAT_KEYS`, then ``provenance`` (the target's facts, as recorded):

  - ``n_windows``: valid measurement windows the figures come from;
  - ``window_p50_std_ms``, ``window_p50_min_ms``, ``window_p50_max_ms``: sample standard deviation
    (None below 2 windows), lowest and highest of the valid windows' median latencies;
  - ``window_p50_outliers``: windows whose median lies beyond 1.5 × IQR outside the quartiles
    (:data:`~harness.report.spread.OUTLIER_RULE`; None below 4 windows);
  - ``ci_half_width``: the wider of the relative 95 % CI half-widths of the median latency and of
    the median energy per inference (``latency_ci_rel``, ``energy_ci_rel``);
  - ``ci_target``: the run's relative CI target; ``ci_target_met``: False when either CI is wider than
    the target (the rule the Markdown and HTML ⚠ flag uses, :func:`~harness.report.columns.ci_missed`),
    True when every known CI is within it, None when the target or both CIs are unknown.
* ``skipped``: the jobs not measured (``status`` ``skipped`` or ``failed``) and why.

Unknown values are ``null``, never 0. ``schema_version`` grows when a key changes meaning or goes
away; keys may be added without a new version.

CSV report: one row per leaderboard row, the leaderboard keys first, the other row keys next and
:data:`STAT_KEYS` last (so the older columns keep their positions); no provenance, no runs.
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

from ..results.rank import LEADERBOARD_KEYS, BoardRow
from ..results.record import Result
from .columns import ci_missed

if TYPE_CHECKING:
    from .sections import ReportData

SCHEMA_VERSION = 1

STAT_KEYS = (
    "n_windows",
    "window_p50_std_ms",
    "window_p50_min_ms",
    "window_p50_max_ms",
    "window_p50_outliers",
    "ci_half_width",
    "ci_target",
    "ci_target_met",
)


def _ms(x: float | None) -> float | None:
    return None if x is None else x * 1e3


def _data(board: list[BoardRow], skipped: list[Result], data: ReportData | None) -> ReportData:
    if data is not None:
        return data
    from .sections import from_board

    return from_board(board, skipped)


def row_stats(r: BoardRow, data: ReportData) -> dict[str, Any]:
    """The :data:`STAT_KEYS` of one leaderboard row (None where not known)."""
    x, sp = data.extra(r), data.spread(r)
    rels = [v for v in (r["latency_ci_rel"], r["energy_ci_rel"]) if v is not None]
    target = x["ci_target"]
    return {
        "n_windows": x["n_windows"] if x["n_windows"] is not None else (sp["n"] if sp else None),
        "window_p50_std_ms": _ms(sp["std_s"]) if sp else None,
        "window_p50_min_ms": _ms(sp["min_s"]) if sp else None,
        "window_p50_max_ms": _ms(sp["max_s"]) if sp else None,
        "window_p50_outliers": sp["outliers"] if sp else None,
        "ci_half_width": max(rels) if rels else None,
        "ci_target": target,
        "ci_target_met": None if target is None or not rels else not any(ci_missed(v, target) for v in rels),
    }


def run_record(run: dict[str, Any]) -> dict[str, Any]:
    """One entry of the JSON report's ``runs`` (from a :attr:`ReportData.runs` row)."""
    return {
        "id": run["id"],
        "suite": run["suite"],
        "started": run.get("started_utc"),
        "ended": run.get("ended_utc"),
        "status": run["status"],
        "git_rev": run["git_rev"],
        "host": run.get("host_summary") or {"name": run["host"]},
        "frugalbench_version": run.get("frugalbench_version"),
        "ci_target": run.get("ci_target"),
    }


def to_json(board: list[BoardRow], skipped: list[Result], data: ReportData | None = None) -> str:
    """The JSON report (schema in the module docstring); without ``data`` runs are empty and the
    window spreads unknown."""
    d = _data(board, skipped, data)
    results = [
        {k: v for k, v in r.items() if k != "provenance"} | row_stats(r, d) | {"provenance": r["provenance"]}
        for r in board
    ]
    doc = {
        "schema_version": SCHEMA_VERSION,
        "runs": [run_record(run) for run in d.runs],
        "results": results,
        "skipped": [
            {"task": s.task, "variant": s.variant, "target": s.target, "status": s.status, "reason": s.reason}
            for s in skipped
        ],
    }
    return json.dumps(doc, indent=1, default=str)


def to_csv(board: list[BoardRow], skipped: list[Result], data: ReportData | None = None) -> str:
    """The CSV report: leaderboard keys, the other row keys, then :data:`STAT_KEYS`."""
    d = _data(board, skipped, data)
    seen = dict.fromkeys(k for r in board for k in r)  # every row's keys, in order of appearance
    keys = [*LEADERBOARD_KEYS] + [k for k in seen if k not in LEADERBOARD_KEYS and k != "provenance"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[*keys, *STAT_KEYS], extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in board:
        w.writerow({**r, **row_stats(r, d)})
    return buf.getvalue()
