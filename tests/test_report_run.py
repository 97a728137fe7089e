"""One small real run on the local CPU, then every report command on its database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from harness.cli.main import app

SUITE = """
[suite]
name = "report-tiny"

[run]
warmup_s = 0.02
window_s = 0.05
min_windows = 2
max_windows = 3
ci_target = 0.5

[carbon]
region = "FRA"
budget_g = 1.0

[[tasks]]
name = "digits"
recipe = "digits_mlp"
recipe_params = { hidden = [16], max_iter = 60 }
min_accuracy = 0.5
budget_g_per_1000 = 1e-4

[[variants]]
name = "fp32"
technique = "fp32"

[[variants]]
name = "int8-static"
technique = "int8"
params = { mode = "static" }

[[targets]]
name = "cpu-ort"
kind = "cpu"
runtime = "ort"
"""


def _cli(*args: str, cwd: Path) -> Result:
    """Run the CLI in-process (the import cost of a subprocess per command dominates otherwise)."""
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, list(args), catch_exceptions=False)
    finally:
        os.chdir(old)


@pytest.mark.slow
def test_real_run_reports(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(SUITE)
    r = _cli("run", "s.toml", "--db", "r.sqlite", "--no-report", cwd=tmp_path)
    assert r.exit_code == 0, r.output
    (tmp_path / "emb.toml").write_text(
        '[targets.cpu-ort]\nembodied_kgco2e = 250.0\nsource = "stated by the user"\nlifetime_years = 4\nduty = 0.2\n'
    )
    r = _cli(
        "report", "--db", "r.sqlite", "-f", "html", "-o", "board.html", "--embodied", "emb.toml", cwd=tmp_path
    )
    assert r.exit_code == 0, r.output
    page = (tmp_path / "board.html").read_text()
    assert page.count('<tr class="row"') == 2 and page.count('class="plot"') == 2
    assert "France 20" in page and "CodeCarbon 3.3.2" in page  # the grid factor's origin and year
    assert "Carbon budget of the run" in page and "fits budget" in page
    assert "stated by the user" in page and "embodied gCO2e" in page
    r = _cli("report", "--db", "r.sqlite", "-o", "board.md", cwd=tmp_path)
    assert r.exit_code == 0, r.output
    md = (tmp_path / "board.md").read_text()
    assert (
        "Carbon budget: 0.0001 gCO2e per 1000 inferences" in md
        and "(board_plots/plot00_accuracy_energy.png)" in md
    )
    r = _cli("label", "--db", "r.sqlite", "-o", "labels", cwd=tmp_path)
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "labels").glob("*.svg"))) == 2
    r = _cli("compare", "r.sqlite", "r.sqlite", cwd=tmp_path)
    assert r.exit_code == 0 and "0 regression(s)" in r.output
