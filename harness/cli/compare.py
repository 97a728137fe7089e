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
    old_run: Annotated[int | None, typer.Option(help="run id in OLD")] = None,
    new_run: Annotated[int | None, typer.Option(help="run id in NEW")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="md or html")] = "md",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="write to FILE instead of stdout")
    ] = None,
    accuracy_tolerance: Annotated[
        float, typer.Option(help="accuracy drop allowed before a regression")
    ] = 0.0,
    fail: Annotated[bool, typer.Option("--fail/--no-fail", help="exit 1 when a regression is found")] = True,
) -> None:
    """Compare two databases (or two runs of one); exit 1 on a regression beyond the measurement CI."""
    from ..errors import ConfigError
    from ..report.compare import compare, html, markdown
    from ..results.store import Store

    if format not in ("md", "html"):
        raise ConfigError(f"unknown comparison format {format!r}; use md or html")
    if new is None and (old_run is None or new_run is None):
        raise ConfigError("give two databases, or one database with --old-run N --new-run M")
    new = new or old
    with Store.open(old, create=False) as s:
        a = s.results(run_id=old_run)
    with Store.open(new, create=False) as s:
        b = s.results(run_id=new_run)
    rows = compare(a, b, accuracy_tolerance=accuracy_tolerance)
    on = f"{old}" + (f" run {old_run}" if old_run is not None else "")
    nn = f"{new}" + (f" run {new_run}" if new_run is not None else "")
    text = markdown(rows, on, nn) if format == "md" else html(rows, on, nn)
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
    from ..report.label import write_labels
    from ..report.sections import from_db

    files = write_labels(from_db(db, run_id).labels, output, png=png)
    typer.echo(f"wrote {len(files)} files to {output}", err=True)
