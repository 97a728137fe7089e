"""``frugalbench farm``: run a suite on a labgrid board farm, and show the farm and the job queue."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..farm.errors import CoordinatorUnreachable

farm_app = typer.Typer(
    help="Run a suite on a labgrid board farm, and show the farm and the job queue.",
    add_completion=False,
    no_args_is_help=True,
)
err = Console(stderr=True)
DEFAULT_COORD = "127.0.0.1:20408"


class _ConsoleProgress:
    """Plain progress lines (a farm run interleaves several places; bars would fight)."""

    def __init__(self) -> None:
        self.total = 0
        self.n = 0
        self.name = ""

    def phase(self, name: str, total: int) -> None:
        self.name, self.total, self.n = name, total, 0
        err.print(f"[bold]{name}[/]: {total} step(s)")

    def advance(self, label: str) -> None:
        self.n += 1
        if self.name == "farm":
            err.print(f"  [{self.n}/{self.total}] {label}", highlight=False)

    def note(self, text: str) -> None:
        err.print(f"[yellow]{text}[/]", highlight=False)


@farm_app.command("run")
def run(
    suite: Annotated[Path, typer.Argument(help='suite file with board targets (kind = "mcu")')],
    coordinator: Annotated[
        str | None,
        typer.Option(help=f"labgrid coordinator HOST:PORT (default: the profile's, else {DEFAULT_COORD})"),
    ] = None,
    db: Annotated[Path, typer.Option(help="SQLite results file (re-running resumes)")] = Path(
        "results.sqlite"
    ),
    cache: Annotated[Path | None, typer.Option(help="model cache (default ~/.cache/frugalbench)")] = None,
    profile: Annotated[
        Path | None, typer.Option(help="farm profile TOML: places per board (default: tags)")
    ] = None,
    wait: Annotated[float, typer.Option(help="seconds to wait for a free place of a needed board")] = 300.0,
    attempts: Annotated[int, typer.Option(min=1, help="runs of one job in all when places are lost")] = 3,
    max_places: Annotated[int | None, typer.Option(min=1, help="at most this many places per board")] = None,
) -> None:
    """Run SUITE's board jobs on free farm places in parallel; releases the places at the end."""
    from ..farm.profile import load_farm_profile
    from ..farm.run import FarmOptions, farm_run
    from ..suite import load_suite

    s = load_suite(suite)
    prof = load_farm_profile(profile)
    opts = FarmOptions(
        coordinator=coordinator or prof.coordinator or DEFAULT_COORD,
        db=db,
        cache=cache,
        profile=prof,
        wait_s=wait,
        attempts=attempts,
        max_places=max_places,
    )
    summary = farm_run(
        s, opts, progress=_ConsoleProgress(), on_status=lambda t: err.print(t, highlight=False)
    )
    err.print(
        f"run {summary.run_id}: {summary.done} done, {summary.failed} failed, {summary.skipped_already_done} "
        f"already done, {summary.requeued} re-queued; places {', '.join(summary.places_used) or 'none'}"
        + (f" (lost: {', '.join(summary.places_lost)})" if summary.places_lost else "")
        + f"; {summary.wall_s:.1f} s; results in {db}",
        highlight=False,
    )
    for place in summary.places_used:  # a place much slower per job than the others shows here
        per_job = summary.per_job_s(place)
        if per_job is not None:
            err.print(
                f"  {place}: {len(summary.job_s[place])} job(s), {per_job:.2f} s per job (median)",
                highlight=False,
            )


@farm_app.command("status")
def status(
    coordinator: Annotated[str, typer.Option(help="labgrid coordinator HOST:PORT")] = DEFAULT_COORD,
    db: Annotated[Path, typer.Option(help="results file of the farm run whose queue to show")] = Path(
        "results.sqlite"
    ),
) -> None:
    """Show the farm's places (board, holder, online) and the job queue of a farm run."""
    from ..farm.lgsession import LabgridSession
    from ..farm.profile import available, place_resources
    from ..farm.run import default_status_path

    out = Console()
    try:
        with LabgridSession(coordinator) as s:
            snap = s.snapshot()
        t = Table(title=f"places on {coordinator} (you are {snap.me})")
        for col in ("place", "board", "held by", "online", "resources"):
            t.add_column(col)
        for name, p in sorted(snap.places.items()):
            res = place_resources(snap, p)
            t.add_row(
                name,
                p.tags.get("board", "-"),
                p.acquired or "free",
                "yes" if available(snap, name) else "[red]no[/]",
                ", ".join(f"{r.exporter}/{r.group}/{r.cls}" for r in res) or "none matched",
            )
        out.print(t)
    except CoordinatorUnreachable as e:
        err.print(f"[red]{e}[/]", highlight=False)
    path = default_status_path(db)
    if not path.exists():
        out.print(f"no farm run recorded beside {db} ({path} does not exist)")
        return
    st = json.loads(path.read_text(encoding="utf-8"))
    age = time.time() - float(st.get("updated", 0))
    out.print(
        f"farm run (pid {st.get('pid')}) on {st.get('coordinator')}: [bold]{st.get('state')}[/], updated {age:.0f} s ago"
    )
    if st.get("waiting"):
        out.print(f"[yellow]{st['waiting']}[/]")
    q = Table(title="job queue")
    q.add_column("job")
    q.add_column("state")
    for label, place in sorted(st.get("running", {}).items()):
        q.add_row(label, f"running on {place}")
    for label in st.get("pending", []):
        q.add_row(label, "queued")
    out.print(q)
    pl = Table(title="places of this run")
    for col in ("place", "state", "job", "done", "exporter host", "acquire s"):
        pl.add_column(col)
    for name, p in sorted(st.get("places", {}).items()):
        pl.add_row(
            name,
            str(p.get("state")),
            str(p.get("job", "")),
            str(p.get("done", 0)),
            str(p.get("farm_exporter_host", "")),
            str(p.get("acquire_s", "")),
        )
    out.print(pl)
    for event in st.get("events", [])[-10:]:
        out.print(f"  {event}", highlight=False)


@farm_app.command("host")
def host(
    name: Annotated[str, typer.Option(help="exporter name (places are NAME-0, NAME-1, ...)")],
    coordinator: Annotated[str, typer.Option(help="labgrid coordinator HOST:PORT")] = DEFAULT_COORD,
    boards: Annotated[int, typer.Option(min=1, help="emulated boards to export")] = 1,
    board: Annotated[str, typer.Option(help="board profile of the emulated boards")] = "qemu-mps2-an386",
    bind: Annotated[str, typer.Option(help="address the boards' serial ports listen on")] = "127.0.0.1",
    workdir: Annotated[Path, typer.Option(help="where the exporter YAML and QEMU logs go")] = Path("."),
) -> None:
    """Become an emulated farm host: QEMU boards with our firmware, exported by labgrid-exporter."""
    from ..farm.emuhost import main as emuhost_main

    emuhost_main(
        [
            "--coordinator",
            coordinator,
            "--name",
            name,
            "--boards",
            str(boards),
            "--board",
            board,
            "--bind",
            bind,
            "--workdir",
            str(workdir),
        ]
    )
