"""The ``compare`` and ``label`` commands; kept light so that ``frugalbench --help`` stays fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def compare_command(
    old: Annotated[Path, typer.Argument(help="old results database")],
    new: Annotated[
        Path | None, typer.Argument(help="new results database (default: OLD, with --old-run/--new-run)")
    ] = None,
    old_run: Annotated[
        int | None,
        typer.Option(help="run id in OLD: that run with what it resumed from (default: the whole database)"),
    ] = None,
    new_run: Annotated[
        int | None,
        typer.Option(help="run id in NEW: that run with what it resumed from (default: the whole database)"),
    ] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="md, html or json")] = "md",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="write to FILE instead of stdout")
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="practical threshold, %: a measured change smaller than this (or than the spread "
            "between windows the compared results show, if larger) is never a regression",
            min=0.0,
        ),
    ] = None,
    spread_factor: Annotated[
        float | None,
        typer.Option(
            help="a measured change must also exceed this × the spread between windows the compared "
            "results show (0: the threshold alone)",
            min=0.0,
        ),
    ] = None,
    exact_tolerance: Annotated[
        float | None,
        typer.Option(help="tolerance, %, of deterministic figures (instruction-counted, simulated)", min=0.0),
    ] = None,
    accuracy_tolerance: Annotated[
        float, typer.Option(help="accuracy drop allowed before a regression")
    ] = 0.0,
    fail: Annotated[bool, typer.Option("--fail/--no-fail", help="exit 1 when a regression is found")] = True,
) -> None:
    """Compare two databases (or two runs of one) result by result: exit 1 on a regression beyond both
    the measurement CI and the run-to-run threshold."""
    from ..errors import ConfigError
    from ..report.compare import (
        DEFAULT_EXACT_TOLERANCE,
        DEFAULT_SPREAD_FACTOR,
        DEFAULT_THRESHOLD,
        Rules,
        compare,
        html,
        markdown,
        observed_spread,
        to_json,
    )
    from ..results.rank import latest
    from ..results.store import Store

    if format not in ("md", "html", "json"):
        raise ConfigError(f"unknown comparison format {format!r}; use md, html or json")
    if new is None and (old_run is None or new_run is None):
        raise ConfigError("give two databases, or one database with --old-run N --new-run M")
    new = new or old
    with Store.open(old, create=False) as s:  # a run: as the database stood once it ended (resumes)
        if old_run is not None:
            s.require_run(old_run)
        a = s.results(status="done") if old_run is None else s.results_as_of(old_run)
        ranges_a = s.window_ranges()
    with Store.open(new, create=False) as s:
        if new_run is not None:
            s.require_run(new_run)
        b = s.results(status="done") if new_run is None else s.results_as_of(new_run)
        ranges_b = s.window_ranges()
    a, b = latest(a), latest(b)
    lat_spread, e_spread = observed_spread([(a, ranges_a), (b, ranges_b)])
    rules = Rules(
        threshold=DEFAULT_THRESHOLD if threshold is None else threshold / 100,
        exact_tolerance=DEFAULT_EXACT_TOLERANCE if exact_tolerance is None else exact_tolerance / 100,
        accuracy_tolerance=accuracy_tolerance,
        latency_spread=lat_spread,
        energy_spread=e_spread,
        spread_factor=DEFAULT_SPREAD_FACTOR if spread_factor is None else spread_factor,
    )
    rows = compare(a, b, rules=rules, windows=(ranges_a, ranges_b))
    on = f"{old}" + (f" run {old_run}" if old_run is not None else "")
    nn = f"{new}" + (f" run {new_run}" if new_run is not None else "")
    render = {"md": markdown, "html": html, "json": to_json}[format]
    text = render(rows, on, nn, rules)
    if output:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)
    else:
        typer.echo(text, nl=False)
    if fail and any(r.regression for r in rows):
        raise typer.Exit(1)


def label_command(
    db: Annotated[Path, typer.Option(help="SQLite results file")] = Path("results.sqlite"),
    output: Annotated[Path, typer.Option("-o", "--output", help="folder for the label files")] = Path(
        "labels"
    ),
    run_id: Annotated[int | None, typer.Option(help="only this run")] = None,
    png: Annotated[bool, typer.Option("--png/--no-png", help="also write PNG (needs matplotlib)")] = True,
) -> None:
    """Write an energy label (SVG, and PNG) per model and target, for a README."""
    from ..errors import ConfigError
    from ..report.label import write_labels
    from ..report.sections import from_db
    from ..results.store import Store

    if output.exists() and not output.is_dir():
        raise ConfigError(f"-o {output} is a file; label -o takes a folder (it writes one file per label)")
    if run_id is not None:
        with Store.open(db, create=False) as s:
            s.require_run(run_id)
    files = write_labels(from_db(db, run_id).labels, output, png=png)
    typer.echo(f"wrote {len(files)} files to {output}", err=True)
