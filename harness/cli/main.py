"""The ``frugalbench`` command line. Errors print one line without a traceback unless ``--debug``."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..errors import ConfigError, FrugalbenchError
from .board import board_app
from .compare import compare_command, label_command
from .dut import dut_app
from .farm import farm_app
from .init import init_task
from .meters import emulate_app, meters_app
from .setup import setup_command
from .suites import suites_command

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help=(
        "frugalbench: benchmark frugal inference (quality, latency, energy, carbon) on edge hardware. "
        "Errors print one line without a traceback unless --debug is given."
    ),
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
_state = {"debug": False}

DEFAULT_SUITE = "quick"
MAX_WINDOW_S = 3600.0  # bench: one timed window of an hour at most
MAX_BATCH = 65536  # bench: samples per call
MAX_THREADS = 1024  # bench: intra-op threads
MAX_WINDOWS = 10_000  # bench: timed windows


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False) -> None:
    """frugalbench: accuracy per joule for inference on CPUs, Raspberry Pis and microcontrollers."""
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def _rich_progress(progress: Progress) -> Any:
    """Adapter from the runner's progress callbacks to a rich progress bar."""
    from ..pipeline.runner import Progress as RunnerProgress

    class _RichProgress(RunnerProgress):
        def __init__(self, p: Progress) -> None:
            self.p = p
            self.task: Any = None

        def phase(self, name: str, total: int) -> None:
            self.task = self.p.add_task(name, total=total, label="")

        def advance(self, label: str) -> None:
            self.p.update(self.task, advance=1, label=label)

        def note(self, text: str) -> None:
            self.p.console.print(Text(text, style="yellow"))  # a Text: user names are never markup

    return _RichProgress(progress)


@app.command()
def run(
    suite: Annotated[
        str, typer.Argument(help="suite file, or the name of a packaged suite (frugalbench suites)")
    ] = DEFAULT_SUITE,
    db: Annotated[Path, typer.Option(help="SQLite results file (re-running resumes)")] = Path(
        "results.sqlite"
    ),
    cache: Annotated[Path | None, typer.Option(help="model cache (default ~/.cache/frugalbench)")] = None,
    target: Annotated[list[str] | None, typer.Option(help="run only these targets of the suite")] = None,
    report: Annotated[bool, typer.Option(help="print the leaderboard at the end")] = True,
) -> None:
    """Run a suite (resumable) and print the leaderboard."""
    from ..pipeline.runner import run_suite
    from ..suite import load_suite

    s = load_suite(suite)
    cols = (
        TextColumn("{task.description:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[label]}", markup=False),  # variant names are the user's, not markup
    )
    with Progress(*cols, console=console, transient=False) as p:
        run_id = run_suite(s, db, cache=cache, progress=_rich_progress(p), targets=target)
    console.print(Text(f"run {run_id} stored in {db}"))
    if report:
        typer.echo(_render(db, "md", None))


def _render(
    db: Path,
    fmt: str,
    run_id: int | None,
    output: Path | None = None,
    embodied: Path | None = None,
    all_runs: bool = False,
) -> str:
    from ..report import FORMATS, render_db

    FORMATS.get(fmt)  # unknown format: a clear error listing the known ones
    if run_id is not None:
        _require_run(db, run_id)
    if all_runs:
        return _render_history(db, fmt, run_id, output, embodied)
    return render_db(db, fmt, run_id, output=output, embodied=embodied)


def _require_run(db: Path, run_id: int) -> None:
    """A one-line error unless ``db`` holds run ``run_id`` (an empty report would look like success)."""
    from ..results.store import Store

    with Store.open(db, create=False) as s:
        s.require_run(run_id)


def _render_history(
    db: Path, fmt: str, run_id: int | None, output: Path | None, embodied: Path | None
) -> str:
    """Every done result of every run (``report --all-runs``): the leaderboard and what derives from it."""
    from ..errors import ConfigError
    from ..report.render import render_data
    from ..report.sections import from_board
    from ..results.rank import leaderboard
    from ..results.store import Store

    if embodied is not None:
        raise ConfigError("--embodied needs the latest results per configuration; drop --all-runs to use it")
    with Store.open(db, create=False) as s:
        results = s.results(run_id=run_id)
    board = leaderboard(results, all_runs=True)
    return render_data(fmt, from_board(board, [r for r in results if r.status != "done"]), output=output)


@app.command()
def report(
    db: Annotated[Path, typer.Option(help="SQLite results file")] = Path("results.sqlite"),
    format: Annotated[str, typer.Option("--format", "-f", help="md, csv, json or html")] = "md",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="write to FILE instead of stdout")
    ] = None,
    run_id: Annotated[int | None, typer.Option(help="only this run")] = None,
    embodied: Annotated[Path | None, typer.Option(help="embodied-carbon profile (TOML, per target)")] = None,
    all_runs: Annotated[
        bool,
        typer.Option(
            "--all-runs", help="history: every run's results, not only the latest per task/variant/target"
        ),
    ] = False,
) -> None:
    """Print the leaderboard of a results database: the latest result per task, variant and target,
    with its run id (md with -o also writes PNG plots beside it)."""
    if output is not None:
        _check_output(output)
    text = _render(db, format, run_id, output, embodied, all_runs)
    if output:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot write {output}: {e.strerror or e}") from None
        console.print(Text(f"wrote {output}"))
    else:
        typer.echo(text, nl=False)


def _check_output(output: Path) -> None:
    """Refuse an output path that cannot be written, before any work is done."""
    if output.is_dir():
        raise ConfigError(f"-o {output} is a folder; give a file name, e.g. -o {output / 'report.md'}")
    parent = output.parent
    if not parent.is_dir():
        raise ConfigError(f"-o {output}: folder {parent} does not exist; create it first (mkdir -p {parent})")


def _check_bench_options(window_s: float, batch: int, threads: int, windows: int) -> None:
    """Bounds of ``bench``'s numeric options (a NaN window or a batch of 10^8 is refused, not run)."""
    if not math.isfinite(window_s) or not 0.001 <= window_s <= MAX_WINDOW_S:
        raise ConfigError(f"--window-s {window_s}: give a number of seconds in [0.001, {MAX_WINDOW_S:g}]")
    if batch > MAX_BATCH:
        raise ConfigError(f"--batch {batch}: at most {MAX_BATCH} samples per call")
    if windows > MAX_WINDOWS:
        raise ConfigError(f"--windows {windows}: at most {MAX_WINDOWS}")
    if threads > MAX_THREADS:
        raise ConfigError(f"--threads {threads}: at most {MAX_THREADS} (this host has {os.cpu_count()} CPUs)")


def _input_desc(i: dict[str, Any]) -> str:
    """``name [1, 3, 40] int8 (fed as float32)``: the dtype stored in the model, and what bench feeds."""
    fed = f" (fed as {i['fed_dtype']})" if i["fed_dtype"] != i["dtype"] else ""
    return f"{i['name']} {i['shape']} {i['dtype']}{fed}"


@app.command()
def bench(
    model: Annotated[Path, typer.Argument(help=".onnx or .tflite file")],
    runtime: Annotated[str | None, typer.Option(help="ort or litert (default: by extension)")] = None,
    threads: Annotated[int, typer.Option(min=1)] = 1,
    batch: Annotated[int, typer.Option(min=1)] = 1,
    window_s: Annotated[float, typer.Option(help="seconds per timed window")] = 1.0,
    windows: Annotated[int, typer.Option(min=1)] = 5,
    shape: Annotated[
        list[str] | None, typer.Option(help="NAME=1x512: dims of an input with dynamic dims")
    ] = None,
    value: Annotated[
        list[str] | None, typer.Option(help="NAME=16000: feed a constant (e.g. a sample rate)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    target: Annotated[
        str | None,
        typer.Option(
            help="run on an emulated MCU board instead: qemu-m4 or a board profile name (e.g. qemu-mps3-an547); "
            "a full-integer .tflite keeps its quantisation, other files are quantised with random calibration"
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            help="with --target: compare outputs with LiteRT's reference kernels; exit 1 if any differs"
        ),
    ] = False,
    samples: Annotated[int, typer.Option(min=1, max=4096, help="random inputs for --check")] = 64,
) -> None:
    """Benchmark any model file: latency p50/p90/p99, throughput, size, parameters, MACs.

    With --target BOARD (qemu-m4, or any emulated board profile): instructions per inference,
    simulated latency and energy at the board's clock, peak RAM, flash and MACs."""
    if target is not None:
        _bench_mcu(model, target, check=check, samples=samples, as_json=as_json)
        return
    if check:
        raise ConfigError("--check compares MCU outputs with LiteRT: give --target qemu-m4 too")
    from ..pipeline.bench import bench_model, parse_overrides

    _check_bench_options(window_s, batch, threads, windows)
    r = bench_model(
        model,
        runtime=runtime,
        threads=threads,
        batch=batch,
        window_s=window_s,
        windows=windows,
        shapes=parse_overrides(shape, what="shape"),
        values=parse_overrides(value, what="value"),
    )
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(r), indent=1))
        return
    t = Table(title=f"{r.model} on {r.runtime_version}, {r.threads} thread(s), batch {r.batch}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in [
        ("latency p50 (ms)", f"{r.latency_ms['p50']:.4f}"),
        ("latency p90 (ms)", f"{r.latency_ms['p90']:.4f}"),
        ("latency p99 (ms)", f"{r.latency_ms['p99']:.4f}"),
        ("95% CI of median (±%)", f"{100 * r.latency_ci_rel:.2f}"),
        ("throughput (inf/s)", f"{r.throughput_ips:.1f}"),
        ("model bytes", str(r.model_bytes)),
        ("parameters", str(r.params) if r.params is not None else "unknown"),
        ("MACs", str(r.macs) if r.macs is not None else f"unknown: {r.macs_unknown}"),
        ("inputs", ", ".join(_input_desc(i) for i in r.inputs)),
        ("inferences", str(r.n_inferences)),
    ]:
        t.add_row(k, v)
    Console(markup=False, emoji=False).print(t)  # model path and input names are printed as written


def _bench_mcu(model: Path, target: str, *, check: bool, samples: int, as_json: bool) -> None:
    from ..pipeline.mcu_bench import bench_mcu

    r = bench_mcu(model, target=target, check=check, samples=samples)
    if as_json:
        typer.echo(json.dumps(r.summary(), indent=1))
    else:
        t = Table(title=f"{r.model} on {r.target} ({r.board}); latency and energy simulated")
        t.add_column("metric")
        t.add_column("value", justify="right")

        def known(v: float | int | None, spec: str) -> str:
            return "unknown" if v is None else format(v, spec)

        rows = [
            ("instructions / inference", f"{r.instructions_per_inference:,.0f}"),
            ("latency (ms, simulated)", known(r.latency_ms, ".4f")),
            ("throughput (inf/s, simulated)", known(r.throughput_ips, ".1f")),
            ("energy / inference (J, simulated)", known(r.energy_per_inference_j, ".3e")),
            ("peak RAM (bytes)", known(r.ram_bytes, ",d")),
            ("flash (bytes)", known(r.flash_bytes, ",d")),
            ("MACs", known(r.macs, ",d")),
            ("model blob (bytes)", f"{r.blob_bytes:,d}"),
            (
                "simulated as",
                f"{r.mcu} at {r.clock_hz / 1e6:g} MHz, CPI {r.cycles_per_instruction:g}"
                if r.mcu and r.clock_hz and r.cycles_per_instruction
                else "no energy model",
            ),
        ]
        if r.bit_exact is not None:
            verdict = "yes" if r.bit_exact else f"NO (max |diff| {r.max_abs_diff} LSB)"
            rows.append((f"bit-exact with LiteRT reference ({r.check_samples} inputs)", verdict))
        for k, v in rows:
            t.add_row(k, v)
        Console(markup=False, emoji=False).print(t)
        for n in r.notes:
            typer.echo(f"note: {n}")
    if r.bit_exact is False:
        typer.echo(
            f"error: the MCU outputs differ from LiteRT's reference kernels by up to {r.max_abs_diff} LSB",
            err=True,
        )
        raise typer.Exit(1)


def _availability_table(title: str, rows: list[tuple[str, str | None]]) -> None:
    t = Table(title=title)
    t.add_column("name")
    t.add_column("status")
    for name, why in rows:
        t.add_row(name, "[green]available[/]" if why is None else f"[red]unavailable[/]: {why}")
    Console().print(t)


@app.command()
def targets() -> None:
    """List target kinds and runtimes, and why unavailable ones are unavailable."""
    from ..registry import load_all
    from ..runtimes import RUNTIMES
    from ..targets import TARGETS

    load_all()
    rows = [(f"target {n}", TARGETS.get(n).availability()) for n in TARGETS.names()]
    rows += [
        (f"runtime {n} ({RUNTIMES.get(n).version()})", RUNTIMES.get(n).available()) for n in RUNTIMES.names()
    ]
    _availability_table("targets", rows)


app.add_typer(meters_app, name="meters")  # list (availability per driver, ports, board URLs) + record
app.add_typer(emulate_app, name="emulate")
app.command("init-task")(init_task)  # starter suite for a user's model + dataset (harness/cli/init.py)
app.add_typer(dut_app, name="dut")  # dut start --board qemu-mps2-an386
app.add_typer(farm_app, name="farm")  # farm run SUITE --coordinator HOST:PORT, farm status (labgrid)
app.add_typer(board_app, name="board")  # board check PROFILE: SSH, host key, agent, runtime (harness/agent)


app.command("compare")(compare_command)
app.command("suites")(suites_command)  # the packaged suites (harness/cli/suites.py)
app.command("setup")(setup_command)  # Debian packages of the MCU target (harness/cli/setup.py)
app.command("label")(label_command)


def _error_line(message: str) -> Text:
    """``error: MESSAGE`` on one line; a :class:`Text`, so ``[bold]`` or ``:x:`` in the message (a user's
    name, a path) is printed as written, never as rich markup or an emoji."""
    one_line = " ".join(message.split()) or "(no message)"
    return Text.assemble(("error:", "bold red"), " ", one_line)


def _unexpected(e: BaseException) -> str:
    """One line for an exception no check caught (a bug or an unforeseen input): its kind and message."""
    if isinstance(e, MemoryError):
        return "out of memory (an input or a model dimension is too large); re-run with --debug for details"
    if isinstance(e, RecursionError):
        return "input nested too deeply; re-run with --debug for details"
    if isinstance(e, OSError) and e.strerror:
        where = f" {e.filename}" if e.filename else ""
        return f"{e.strerror}{where}"
    return f"unexpected {type(e).__name__}: {e} (re-run with --debug for the traceback, and report it)"


def main() -> None:
    try:
        app()
    except FrugalbenchError as e:
        if _state["debug"]:
            raise
        console.print(_error_line(str(e)), highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted: finished results are stored; re-run the same command to resume")
        sys.exit(130)
    except (SystemExit, GeneratorExit):
        raise
    except Exception as e:  # the last guard: one line, never a traceback, unless --debug
        if _state["debug"]:
            raise
        console.print(_error_line(_unexpected(e)), highlight=False, soft_wrap=True)
        sys.exit(3)


if __name__ == "__main__":
    main()
