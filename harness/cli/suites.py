"""``frugalbench suites``: the suites that ship with the package (run one by name: ``frugalbench run quick``)."""

from __future__ import annotations

import typer


def suites_command() -> None:
    """List the packaged suites: the name to pass to run, its description and its file."""
    from ..suite import packaged_suites, suite_description

    suites = packaged_suites()
    width = max((len(n) for n in suites), default=0) + 2
    for name, path in suites.items():
        typer.echo(f"{name:<{width}}{suite_description(path)[1]}")
        typer.echo(f"{'':<{width}}{path}")
    typer.echo("run one with: frugalbench run NAME --db results.sqlite (a path to your own suite file works too)")
