"""``frugalbench init-task MODEL DATA``: write a starter suite for a user's model and dataset.

The command only; the inspection, the guesses and the suite text are in :mod:`harness.byo.starter`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def init_task(
    model: Annotated[Path, typer.Argument(help="your .onnx or .tflite model")],
    data: Annotated[
        Path, typer.Argument(help=".npz (x_eval, y_eval[, x_train, y_train]), a folder of .npy, or .csv")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="suite file to write")] = Path("byo.toml"),
    name: Annotated[str | None, typer.Option(help="task name (default: the model file's stem)")] = None,
    metric: Annotated[
        str | None, typer.Option(help="accuracy, top_k, auc, macro_f1 or mae (default: guessed)")
    ] = None,
    force: Annotated[bool, typer.Option(help="overwrite an existing suite file")] = False,
) -> None:
    """Write a starter suite for your model and dataset after inspecting both."""
    from ..byo.starter import write_starter  # onnx and the runtimes: only when the command runs

    result = write_starter(model, data, output, name=name, metric=metric, force=force)
    shown = f"{result.metric} = {result.value:.4f}" if result.value is not None else "not measured"
    typer.echo(f"wrote {output}: task {result.task!r}, {shown}; run it with `frugalbench run {output}`")
    if result.problem:
        typer.echo(f"fix first: {result.problem}", err=True)
