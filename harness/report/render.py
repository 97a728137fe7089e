"""The report formats by name, and rendering a results database in one of them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..registry import Registry
from ..results.rank import BoardRow
from ..results.record import Result
from .html import to_html
from .markdown import markdown, plot_key
from .records import to_csv, to_json

if TYPE_CHECKING:
    from .sections import ReportData

FORMATS: Registry[Callable[[list[BoardRow], list[Result]], str]] = Registry("report format")
FORMATS.register("md")(markdown)
FORMATS.register("json")(to_json)
FORMATS.register("csv")(to_csv)
FORMATS.register("html")(to_html)


def render_data(fmt: str, data: ReportData, *, output: Path | None = None) -> str:
    """Render report rows in ``fmt``; for Markdown with an ``output`` file, write PNG plots beside it."""
    if fmt == "md":
        images: dict[str, str] = {}
        note = ""
        if output is not None:
            from .plots import RendererMissing, colour_map, png_plot

            folder = output.with_name(output.stem + "_plots")
            colours = colour_map([r["technique"] or "" for r in data.board])
            try:
                folder.mkdir(parents=True, exist_ok=True)
                for i, p in enumerate(data.plots):
                    f = png_plot(p, colours, folder / f"plot{i:02d}_{p['kind']}.png")
                    images[plot_key(p)] = f"{folder.name}/{f.name}"
            except RendererMissing as e:
                note = f"\n_Plots not written: {e}._\n"
        return markdown(data.board, data.skipped, data, images) + note  # type: ignore[call-arg]
    fn = FORMATS.get(fmt)
    if fmt in ("html", "json", "csv"):
        return fn(data.board, data.skipped, data)  # type: ignore[call-arg]
    return fn(data.board, data.skipped)


def render_db(
    db: Path, fmt: str, run_id: int | None = None, *, output: Path | None = None, embodied: Path | None = None
) -> str:
    """Read a results database and render it (the ``frugalbench report`` command)."""
    from .sections import from_db

    return render_data(fmt, from_db(db, run_id, embodied), output=output)
