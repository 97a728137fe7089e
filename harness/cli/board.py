"""``frugalbench board check PROFILE``: try a board profile before a long run.

Connects with host-key checking, pushes the agent, checks the runtime and prints what the board
reports (model, CPU, kernel, governor, temperatures, throttling, clock offset). Any problem is the same
actionable error a suite run would give, minutes earlier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

board_app = typer.Typer(no_args_is_help=True, help="Linux boards over SSH (Raspberry Pi...).")


@board_app.command("check")
def check(
    profile: Annotated[Path, typer.Argument(help="board profile, e.g. boards/raspberry-pi-5.toml")],
    host: Annotated[str | None, typer.Option(help="override the profile's host")] = None,
    port: Annotated[int | None, typer.Option(help="override the SSH port")] = None,
    user: Annotated[str | None, typer.Option(help="override the SSH user")] = None,
    key: Annotated[str | None, typer.Option(help="override the private key file")] = None,
    known_hosts: Annotated[str | None, typer.Option(help="override the known_hosts file")] = None,
    python: Annotated[str | None, typer.Option(help="override the board's Python")] = None,
    runtime: Annotated[str | None, typer.Option(help="ort, litert or tflite-runtime")] = None,
    workdir: Annotated[str | None, typer.Option(help="override the cache folder on the board")] = None,
    cores: Annotated[str | None, typer.Option(help="override core pinning, e.g. '2,3' ('' for none)")] = None,
) -> None:
    """Connect to a board as a run would, and print what it reports."""
    from ..suite import validate_target
    from ..targets.ssh import SshTarget

    over: dict[str, Any] = {
        "host": host,
        "port": port,
        "user": user,
        "key": key,
        "known_hosts": known_hosts,
        "python": python,
        "runtime": runtime,
        "workdir": workdir,
    }
    table: dict[str, Any] = {"name": "check", "kind": "ssh", "board": str(profile)}
    table.update({k: v for k, v in over.items() if v is not None})
    if cores is not None:
        try:
            table["cores"] = [int(c) for c in cores.split(",") if c.strip()] or None
        except ValueError:
            raise typer.BadParameter(
                f"--cores wants a comma-separated list of integers, not {cores!r}"
            ) from None
    cfg = validate_target(table, where=str(profile))
    target = SshTarget(cfg)
    with target:
        assert target.agent is not None
        info = target.info()
        state = target.agent.state()
        runtimes = target.agent.runtimes()
    out = Table(title=f"{cfg.label or cfg.host}: {info['board_host']}")
    out.add_column("key")
    out.add_column("value")
    rows = {
        **{
            k: info.get(k)
            for k in ("board_model", "board_model_matches_profile", "cpu", "isa", "cpu_features")
        },
        **{
            k: info.get(k)
            for k in ("cpu_count", "kernel", "os", "python", "numpy", "governor", "governor_error")
        },
        **{k: info.get(k) for k in ("pmic_error", "affinity", "host_key", "clock_offset_s", "clock_rtt_s")},
        "runtimes": ", ".join(f"{k} {v}" for k, v in runtimes.items()),
        "temperatures_c": state.get("temps_c") or "none readable",
        "throttled": "vcgencmd absent" if state.get("throttled") is None else hex(state["throttled"]),
    }
    for k, v in rows.items():
        if v is not None:
            out.add_row(k, str(v))
    Console().print(out)
    typer.echo(f"ok: {cfg.name} reachable, agent and {cfg.runtime} ready")
