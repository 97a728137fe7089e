"""How the reports present figures: units, columns and their legend, grades, axes, skips, help texts."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from report_fixtures import _row, make_db

from harness.report import render_db
from harness.report.plots import colour_map, svg_plot
from harness.report.sections import from_board, from_db
from harness.results.rank import leaderboard
from harness.results.record import Result

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return make_db(tmp_path / "r.sqlite")


def test_units_follow_the_magnitude_with_three_significant_figures() -> None:
    from harness.report.cells import count_text, duration_text, energy_text, ms_text

    assert duration_text(1.1e-6) == "1.10 µs"
    assert ms_text(0.0011) == "1.10 µs"  # the leaderboard stores ms: 0.0011 ms used to print as is
    assert ms_text(4.0) == "4.00 ms" and ms_text(1234.0) == "1.23 s" and duration_text(2.5e-9) == "2.50 ns"
    assert (
        energy_text(2e-5) == "20.0 µJ" and energy_text(3.24e-5) == "32.4 µJ" and energy_text(0.5) == "500 mJ"
    )
    assert energy_text(999.7e-6) == "1.00 mJ"  # rounded before the prefix is chosen
    assert count_text(681455.0) == "681 k" and count_text(0.5) == "0.500" and count_text(None) == "–"


def test_cpu_latency_reads_in_microseconds_in_both_formats(tmp_path: Path) -> None:
    db = make_db(tmp_path / "r.sqlite", [_row("digits", "fp32", "fp32", "cpu-litert", lat=1.1e-6)])
    md, page = render_db(db, "md"), render_db(db, "html")
    assert "1.10 µs" in md and "1.10 µs" in page
    assert "0.0011" not in md


def _md_header(md: str) -> list[str]:
    line = next(ln for ln in md.splitlines() if ln.startswith("| rank |"))
    return [c.strip() for c in line.strip("|").split("|")]


class _Headers(HTMLParser):
    """The header cells of the first leaderboard table and the legend's terms of an HTML page."""

    def __init__(self, n_columns: int) -> None:
        super().__init__()
        self.n = n_columns
        self.th: list[str] = []
        self.dt: list[str] = []
        self._where = ""
        self._tables = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and "board" in (a.get("class") or ""):
            self._tables += 1
        if tag == "th" and self._tables == 1 and a.get("data-key") != "prov":
            self._where = "th"
        if tag == "dt":
            self._where = "dt"

    def handle_endtag(self, tag: str) -> None:
        self._where = ""

    def handle_data(self, data: str) -> None:
        if self._where == "th" and len(self.th) < self.n:
            self.th.append(data)
        elif self._where == "dt":
            self.dt.append(data)


def test_markdown_and_html_show_the_same_columns_each_defined(db: Path) -> None:
    from harness.report.columns import BOARD_COLUMNS, LEGEND

    md, page = render_db(db, "md"), render_db(db, "html")
    p = _Headers(len(BOARD_COLUMNS))
    p.feed(page)
    md_cols = _md_header(md)
    assert md_cols == p.th == [c.header for c in BOARD_COLUMNS]
    assert "break-even inf." in md_cols and "fits budget" in md_cols
    for col in md_cols:
        assert col in p.dt  # the HTML legend defines it
        assert f"- **{col}**: " in md  # and so does the Markdown one
    ips = dict(LEGEND)["inf/s"]
    assert "wall time of the window" in ips and "1/p50" in ips  # why inf/s differs from 1/p50


def test_grades_only_where_a_class_has_enough_rows_and_spread() -> None:
    def labels(energies: list[float]) -> list[str | None]:
        rs = [
            Result.from_columns(_row("t", f"v{i}", "int8", "cpu-ort", e=e) | {"id": i})
            for i, e in enumerate(energies)
        ]
        return [x["grade"] for x in from_board(leaderboard(rs)).labels]

    assert labels([32.4e-6, 29.5e-6]) == [None, None]  # two rows: used to read E and A
    assert labels([1e-5, 1.1e-5, 1.2e-5, 1.3e-5, 1.4e-5]) == [None] * 5  # five rows, 40 % apart
    graded = labels([1e-5, 2e-5, 4e-5, 8e-5, 1.6e-4])
    assert sorted(g or "" for g in graded) == ["A", "B", "C", "D", "E"]


def _plot(xs: list[float], ys: list[float], kind: str = "latency_energy") -> dict[str, Any]:
    pts = [
        {"id": f"v{i}@t", "x": x, "y": y, "technique": "int8", "target": "t", "passes_gate": True}
        for i, (x, y) in enumerate(zip(xs, ys, strict=True))
    ]
    return {
        "task": "t",
        "energy_class": "estimate",
        "kind": kind,
        "xlabel": "energy per inference",
        "ylabel": "latency p50",
        "min_y": None,
        "points": pts,
        "front": [pts[0]["id"]],
    }


ONE_DECADE = ([2.95e-5, 3.1e-5, 3.24e-5], [1.5e-3, 1.6e-3, 1.8e-3])  # µJ and ms: both within a decade


def test_log_axes_within_one_decade_still_have_tick_labels() -> None:
    root = ET.fromstring(svg_plot(_plot(*ONE_DECADE), colour_map(["int8"])))
    ticks = [t for t in root.iter(f"{SVG}text") if t.get("class") == "tick"]
    x_ticks = [t.text for t in ticks if t.get("text-anchor") == "middle"]
    y_ticks = [t.text for t in ticks if t.get("text-anchor") == "end"]
    assert len(set(x_ticks)) >= 2 and all(str(t).endswith("µJ") for t in x_ticks)
    assert len(set(y_ticks)) >= 2 and all(str(t).endswith("µs") for t in y_ticks)


def test_png_log_axes_within_one_decade_still_have_tick_labels() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from harness.report.plots import png_figure

    fig = png_figure(_plot(*ONE_DECADE), colour_map(["int8"]))
    try:
        fig.canvas.draw()
        ax = fig.axes[0]
        for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
            shown = [t.get_text() for t in labels if t.get_text()]
            assert len(set(shown)) >= 2
    finally:
        plt.close(fig)


def test_identical_skip_reasons_are_listed_once_with_their_jobs(tmp_path: Path) -> None:
    why = "the MCU runtime runs full-integer int8 only (add an int8 step with mode = 'static')"
    skipped = [
        Result(suite="s", task=t, variant=v, target="qemu-m4", status="skipped", reason=why)
        for t in ("digits", "mnist1d")
        for v in ("fp32", "int8-dynamic")
    ] + [
        Result(
            suite="s", task="digits", variant="fp32", target="cpu-litert", status="skipped", reason="other"
        )
    ]
    data = from_board([], skipped)
    assert [(g["reason"], len(g["jobs"])) for g in data.skipped_groups] == [(why, 4), ("other", 1)]
    from harness.report.html import to_html
    from harness.report.markdown import markdown

    md = markdown([], skipped, data)
    page = to_html([], skipped, data)
    assert md.count(why.replace("'", "'")) == 1 and "mnist1d/int8-dynamic on qemu-m4" in md
    assert page.count("full-integer int8 only") == 1 and page.count("on qemu-m4</li>") == 4


def test_details_show_iso_dates_and_unknown_as_unknown(tmp_path: Path) -> None:
    r = _row("digits", "fp32", "fp32", "cpu-ort", model_bytes_gz=None, created=1796284383.8254185)
    r["provenance"] = r["provenance"] | {"date": 1796284383.8254185}
    page = render_db(make_db(tmp_path / "r.sqlite", [r]), "html")
    details = page[page.index("<details><summary>details") :]
    details = details[: details.index("</details>")]
    assert "1796284383" not in details
    assert re.search(r"<dd>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ</dd>", details)
    assert "None" not in details and "(gzip: unknown)" in details


def test_markdown_names_meter_markers_windows_and_flags_a_missed_ci(tmp_path: Path) -> None:
    rows = [
        _row("digits", "fp32", "fp32", "mcu", cls="external", lat_ci=0.27, e_ci=0.01),
        _row("digits", "int8", "int8", "mcu", cls="external", lat_ci=0.01, e_ci=0.015),
    ]
    db = make_db(tmp_path / "r.sqlite", rows)  # the run's ci_target is 2 %
    md = render_db(db, "md")
    line = next(ln for ln in md.splitlines() if "| fp32 |" in ln)
    assert "lpm01a; markers: gpio" in line and "| 5 |" in line  # meter, marker method, windows
    assert "**27 % ⚠** / 1.0 %" in line  # only the CI that missed its target is marked
    ok = next(ln for ln in md.splitlines() if "| int8 |" in ln)
    assert "⚠" not in ok and "1.0 % / 1.5 %" in ok
    page = render_db(db, "html")
    assert page.count('<span class="miss">') == 1 and "above the target 2.0 %" in page
    assert "<dt>valid windows</dt><dd>5</dd>" in page
    extras = {k[1]: v for k, v in from_db(db).extras.items()}
    assert extras["fp32@mcu"]["n_windows"] == 5 and extras["fp32@mcu"]["ci_target"] == 0.02


def _paths(cmd: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path under ``cmd`` (the group itself first)."""
    out = [path]
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        out += _paths(sub, (*path, name))
    return out


def test_every_command_help_is_plain_text() -> None:
    from typer.testing import CliRunner

    from harness.cli.main import app

    paths = _paths(typer.main.get_command(app))
    assert ("meters",) in paths and ("farm", "run") in paths
    for path in paths:
        r = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
        assert r.exit_code == 0, (path, r.output)
        for raw in ("``", ":class:", ":func:", ":mod:", ":data:", ":meth:", "_app"):
            assert raw not in r.output, f"`frugalbench {' '.join(path)} --help` shows {raw!r}"


def test_litert_delegate_banner_is_silenced_but_real_errors_pass(tmp_path: Path, capfd: Any) -> None:
    pytest.importorskip("ai_edge_litert")
    from harness.ir.export.tflite_export import network_to_tflite
    from harness.ir.layers import Dense
    from harness.ir.network import Network
    from harness.runtimes.litert import LiteRtRuntime

    rng = np.random.default_rng(0)
    path = tmp_path / "m.tflite"
    path.write_bytes(network_to_tflite(Network([Dense(rng.normal(size=(8, 4)), np.zeros(4))])))
    capfd.readouterr()
    rt = LiteRtRuntime(path, threads=1, batch=1)
    rt.run(np.zeros((1, 8), np.float32))
    assert "XNNPACK" not in capfd.readouterr().err
    from harness.runtimes.litert import quiet_banner

    with quiet_banner():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nERROR: real trouble\n")
    err = capfd.readouterr().err
    assert "ERROR: real trouble" in err and "XNNPACK" not in err


def test_litert_skip_names_the_real_reason(tmp_path: Path) -> None:
    from harness.ir.data import Dataset
    from harness.ir.model import Model, Variant
    from harness.pipeline.variants import Base, _no_file_reasons
    from harness.targets.local import CpuConfig, CpuTarget

    x = np.zeros((2, 3), np.float32)
    base = Base(
        "t", "k", Model(files={"onnx": b"x"}), Dataset("t", x, x, x, meta={"ir": "not converted: op Loop"})
    )
    reasons = _no_file_reasons(base.model, {"onnx": b"x"}, base)
    (tmp_path / "model.onnx").write_bytes(b"x")
    v = Variant(
        "t", "fp32", "k", {"onnx": tmp_path / "model.onnx"}, {"technique": "fp32", "no_file": reasons}
    )
    target = CpuTarget(CpuConfig(name="cpu-litert", kind="cpu", runtime="litert"))
    why = target.supports(v)
    assert why is not None and "does not produce" not in why
    assert "not converted: op Loop" in why and ".onnx only" in why
    old = Variant("t", "fp32", "k", {"onnx": tmp_path / "model.onnx"}, {"technique": "fp32"})
    assert target.supports(old) == "variant has no .tflite file: the variant has .onnx only"
    assert json.dumps(reasons)  # stored in meta.json
