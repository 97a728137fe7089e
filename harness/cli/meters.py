"""``frugalbench meters`` (list, ``record``) and ``frugalbench emulate meter`` (rehearse a rig).

``meters_app`` lists every registered meter with its availability, the serial ports whose USB VID:PID
belongs to a known meter, and the meter URLs named in board profiles; ``record`` writes a trace CSV.
``emulate_app`` serves a byte-level emulator on a pty or ``socket://`` port until interrupted.
"""

from __future__ import annotations

import csv
import signal
import time
import tomllib
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..errors import ConfigError, FrugalbenchError
from ..meters.base import METERS, Meter, Trace

meters_app = typer.Typer(
    help=(
        "List the energy meters: each driver with its availability, the serial ports whose USB "
        "VID:PID belongs to a known meter, and the meter URLs named in board profiles. "
        "'frugalbench meters record' writes a trace as CSV."
    ),
    add_completion=False,
    no_args_is_help=False,
)
emulate_app = typer.Typer(
    help="Run emulators that speak a device's protocol byte for byte.", add_completion=False
)
out = Console()

KNOWN_USB = {
    (0x0483, 0x5740): "lpm01a",
    (0x1915, 0xC00A): "ppk2",
    (0x2E3C, 0x5558): "fnb58",
    (0x2E3C, 0x0049): "fnb58 (FNB48S)",
    (0x0483, 0x003A): "fnb58 (FNB48)",
    (0x16D0, 0x10BA): "joulescope (JS220)",
    (0x16D0, 0x0E88): "joulescope (JS110)",
}


def found_ports() -> list[tuple[str, str, str]]:
    """(device, VID:PID, meter kind) for serial ports of known meters."""
    try:
        from serial.tools import list_ports
    except ImportError:  # pragma: no cover
        return []
    rows = []
    for p in list_ports.comports():
        kind = KNOWN_USB.get((p.vid, p.pid))
        if kind:
            rows.append((p.device, f"{p.vid:04x}:{p.pid:04x}", kind))
    return rows


def board_meters(boards: Path) -> list[tuple[str, dict[str, Any]]]:
    """(board file, ``[meter]`` table) for every board profile in ``boards/`` (and its subfolders)."""
    rows = []
    for f in sorted(boards.rglob("*.toml")) if boards.is_dir() else []:
        try:
            m = tomllib.loads(f.read_text()).get("meter")
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        if isinstance(m, dict) and "kind" in m:
            rows.append((str(f), m))
    return rows


def probe(table: dict[str, Any]) -> str:
    """Open and close the meter a board profile names: ``reachable (model)`` or why not."""
    settings = {k: v for k, v in table.items() if k != "kind"}
    try:
        m = build_meter(str(table["kind"]), settings)
        m.open()
        try:
            return f"reachable ({m.info().model})"
        finally:
            m.close()
    except FrugalbenchError as exc:
        return f"unreachable: {exc}"


def build_meter(kind: str, settings: dict[str, Any]) -> Meter:
    """A meter from its kind and a settings table (validated by its pydantic Config)."""
    cls = METERS.get(kind)
    try:
        cfg = cls.Config.model_validate({"kind": kind, **settings}, strict=False)
    except Exception as exc:  # noqa: BLE001 - pydantic.ValidationError: say which key
        raise ConfigError(f"meter {kind!r}: invalid settings {settings}: {exc}") from exc
    return cls(cfg)


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``key=value`` options → dict (values parsed as TOML scalars where possible)."""
    out_: dict[str, Any] = {}
    for it in items:
        key, sep, val = it.partition("=")
        if not sep:
            raise ConfigError(f"--set {it!r} must look like key=value")
        try:
            out_[key] = tomllib.loads(f"v = {val}")["v"]
        except tomllib.TOMLDecodeError:
            out_[key] = val
    return out_


def write_trace_csv(trace: Trace, path: Path, meta: dict[str, Any]) -> None:
    """Trace → CSV (``#`` header lines with metadata and markers, then ``t_s,<quantity>``)."""
    qty = "power_w" if trace.power_w is not None else "energy_j"
    vals = trace.power_w if trace.power_w is not None else trace.energy_j
    with path.open("w", newline="") as fh:
        for k, v in {**meta, "valid": trace.valid, "problem": trace.problem, "dropped": trace.dropped,
                     "host_aligned": trace.host_aligned, "rate_hz": trace.rate_hz}.items():  # fmt: skip
            fh.write(f"# {k}: {v}\n")
        for m in trace.markers:
            fh.write(f"# marker: t_s={m.t_s:.9f} channel={m.channel} level={m.level}\n")
        w = csv.writer(fh)
        w.writerow(["t_s", qty])
        for t, v in zip(trace.t_s, np.asarray(vals), strict=True):
            w.writerow([f"{t:.9f}", f"{v:.9g}"])


@meters_app.callback(invoke_without_command=True)
def meters(
    ctx: typer.Context,
    boards: Annotated[Path, typer.Option(help="folder of board profiles to read meter URLs from")] = Path(
        "boards"
    ),
    probe_urls: Annotated[
        bool, typer.Option("--probe", help="open each board meter to check it answers")
    ] = False,
) -> None:
    """List meter drivers (and why unavailable ones are), attached meters and board-profile URLs."""
    if ctx.invoked_subcommand is not None:
        return
    from ..registry import load_all

    load_all()
    t = Table(title="meter drivers")
    t.add_column("name")
    t.add_column("status")
    for n in METERS.names():
        why = METERS.get(n).availability()
        t.add_row(
            n, Text("available", style="green") if why is None else Text(f"unavailable: {why}", style="red")
        )
    out.print(t)
    ports = found_ports()
    t = Table(title="serial ports of known meters (by USB VID:PID)")
    for c in ("port", "VID:PID", "meter"):
        t.add_column(c)
    for row in ports:
        t.add_row(*row)
    out.print(t if ports else "no serial port with a known meter VID:PID (ptys and sockets are never listed)")
    rows = board_meters(boards)
    if rows:
        t = Table(title=f"meters named in board profiles under {boards}/")
        for c in ("board", "kind", "url") + (("status",) if probe_urls else ()):
            t.add_column(c)
        for f, table in rows:
            cells = [f, str(table["kind"]), str(table.get("url", ""))]
            if probe_urls:
                cells.append(probe(table))
            t.add_row(*(Text(c) for c in cells))
        out.print(t)


@meters_app.command("record")
def record(
    meter: Annotated[str, typer.Argument(help="meter kind, e.g. ppk2, lpm01a, um34c")],
    seconds: Annotated[float, typer.Option(help="recording length")] = 5.0,
    output: Annotated[Path, typer.Option("-o", "--output", help="trace CSV to write")] = Path("trace.csv"),
    url: Annotated[str, typer.Option(help="port or socket:// URL (overrides the board profile)")] = "",
    board: Annotated[Path | None, typer.Option(help="board profile whose meter table to use")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="meter setting key=value")] = None,
) -> None:
    """Record a trace from METER for SECONDS and write it as CSV."""
    settings: dict[str, Any] = {}
    if board is not None:
        table = tomllib.loads(board.read_text()).get("meter", {})
        if table.get("kind", meter) != meter:
            raise ConfigError(f"{board} names meter {table.get('kind')!r}, not {meter!r}")
        settings.update({k: v for k, v in table.items() if k != "kind"})
    settings.update(parse_sets(set_ or []))
    if url:
        settings["url"] = url
    m = build_meter(meter, settings)
    m.open()
    try:
        m.start()
        time.sleep(seconds)
        trace = m.stop()
        info = m.info()
    finally:
        m.close()
    write_trace_csv(
        trace, output, {"meter": info.model, "class": info.energy_class, "boundary": info.boundary}
    )
    from ..meters.energy import cumulative

    _, e = cumulative(trace) if len(trace.t_s) > 1 else (None, np.zeros(1))
    status = "[green]valid[/]" if trace.valid else f"[red]invalid[/]: {trace.problem}"
    out.print(f"{len(trace.t_s)} samples, {len(trace.markers)} markers, {float(e[-1]):.6g} J ({info.energy_class}); "
              f"{status}; wrote {output}")  # fmt: skip


@emulate_app.command("meter")
def emulate_meter(
    name: Annotated[str, typer.Argument(help="lpm01a, ppk2, um34c, otii or ina2xx")],
    url: Annotated[str, typer.Option(help="'pty' or socket://HOST:PORT")] = "socket://127.0.0.1:7000",
    profile: Annotated[str, typer.Option(help="constant, square or random")] = "square",
    low_w: Annotated[float, typer.Option(help="low power level (W)")] = 0.005,
    high_w: Annotated[float, typer.Option(help="high power level (W)")] = 0.020,
    step_s: Annotated[float, typer.Option(help="grid step: half period / random hold time (s)")] = 0.25,
    voltage_v: Annotated[float, typer.Option(help="supply voltage the profile runs at")] = 3.3,
    window: Annotated[
        list[str] | None, typer.Option(help="marker window 'start,end' in s (repeatable)")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="emulator option key=value (model=um25c...)")
    ] = None,
) -> None:
    """Serve emulator NAME until Ctrl-C; point a board profile's meter url at the printed URL."""
    from ..emulators import EMULATORS, EmulatorServer, Profile

    if name in ("fnb58", "joulescope"):
        raise ConfigError(
            f"{name} has no byte-level emulator (USB HID / a vendor C driver): it is rehearsed through an API "
            "fake in Python (harness.emulators.fnb58.FakeHid, harness.emulators.joulescope.FakeDriver)"
        )
    wins = []
    for w in window or []:
        a, _, b = w.partition(",")
        wins.append((float(a), float(b)))
    prof = Profile(kind=profile, low_w=low_w, high_w=high_w, dt=step_s, voltage_v=voltage_v, windows=wins)
    sets = parse_sets(set_ or [])
    if "impersonate" in sets:
        raise ConfigError(
            "impersonate is a test-only switch (the emulator then passes for real hardware and its energy "
            "for a measurement); drop --set impersonate=..."
        )
    emu = EMULATORS.get(name)(prof, **sets)
    server = EmulatorServer(emu, url).start()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C stops it, even in a background job
    kind = {"ina2xx": getattr(emu, "chip", "ina226")}.get(name, name)
    out.print(f"{name} emulator listening on [bold]{server.url}[/] (simulated energy; Ctrl-C to stop)")
    out.print(  # no `simulated = true` needed: the emulator says what it is and the driver reads it
        f'board profile:\n  [meter]\n  kind = "{kind}"\n  url = "{server.url}"',
        markup=False,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        out.print("stopped")


@emulate_app.command("twin")
def emulate_twin(
    meter: Annotated[str, typer.Argument(help="the meter on the twin bench: lpm01a or ppk2")] = "lpm01a",
    url: Annotated[str, typer.Option(help="the meter's socket://HOST:PORT")] = "socket://127.0.0.1:7101",
    activity: Annotated[
        str, typer.Option(help="socket://HOST:PORT the emulated board reports its activity to")
    ] = "socket://127.0.0.1:7102",
    board: Annotated[str, typer.Option(help="board profile with the power model")] = "qemu-mps2-an386",
    log: Annotated[
        Path | None, typer.Option(help="append each window's exact energy here (JSON lines)")
    ] = None,
    drop: Annotated[
        list[str] | None,
        typer.Option(help="WINDOW:N drops N samples in the WINDOW-th acquisition (repeatable)"),
    ] = None,
    miss_marker: Annotated[
        list[int] | None,
        typer.Option(help="no marker edges reach the meter in this acquisition (repeatable)"),
    ] = None,
    lose_meter: Annotated[
        list[int] | None, typer.Option(help="the meter's link drops in this acquisition (repeatable)")
    ] = None,
) -> None:
    """Serve a bench twin until Ctrl-C: an emulated LPM01A or PPK2 powering the emulated board.

    Point the suite's mcu target at it with activity = ACTIVITY and its meter url at URL
    (benches/examples/bench-twin.toml); each window's exact energy is printed as it is measured."""
    import json

    from ..emulators import EmulatorServer
    from ..emulators.twin import BenchTwin, PowerModel, TwinFaults, TwinWindow, twin_meter

    faults = [TwinFaults(window=k, miss_marker=True) for k in miss_marker or []]
    faults += [TwinFaults(window=k, lose_meter_at_s=0.1) for k in lose_meter or []]
    for spec in drop or []:
        k, _, n = spec.partition(":")
        if not (k.isdigit() and n.isdigit()):
            raise ConfigError(f"--drop takes WINDOW:N (e.g. 2:50), not {spec!r}")
        faults.append(TwinFaults(window=int(k), drop_n=int(n)))
    twin = BenchTwin(PowerModel.from_board(board), activity, faults)

    def show(w: TwinWindow) -> None:
        out.print(
            f"window {w.acquisition}: {w.t1_s - w.t0_s:.6f} s between the marker edges, exact energy "
            f"{w.energy_j:.9g} J at {w.voltage_v:g} V"
        )
        if log is not None:
            with log.open("a", encoding="utf-8") as f:
                f.write(json.dumps(w.__dict__) + "\n")

    twin.on_window = show
    twin.start()
    server = EmulatorServer(twin_meter(meter, twin), url).start()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    out.print(f"bench twin: {meter} on [bold]{server.url}[/], board activity on [bold]{twin.url}[/]")
    out.print(f"power model: {twin.model.source}", markup=False, highlight=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        out.print("stopped")
    finally:
        twin.stop()


def main() -> None:
    """Standalone entry (``python -m harness.cli.meters``)."""
    app = typer.Typer(add_completion=False)
    app.add_typer(meters_app, name="meters")
    app.add_typer(emulate_app, name="emulate")
    try:
        app()
    except FrugalbenchError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
