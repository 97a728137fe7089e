"""``frugalbench compare``: a regression only where the change exceeds the measurement CI."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from report_fixtures import make_db, record, rows
from typer.testing import CliRunner

from harness.cli.main import app
from harness.report.compare import (
    IMPROVEMENT,
    NO_CI,
    NOT_COMPARABLE,
    REGRESSION,
    UNCHANGED,
    WITHIN,
    compare,
    judge_lower_better,
)
from harness.results.record import Result

runner = CliRunner()


def _verdicts(old: Result, new: Result) -> dict[str, str]:
    (r,) = compare([old], [new])
    return {c.metric: c.verdict for c in r.changes}


def test_change_within_the_ci_is_not_a_regression() -> None:
    old = record("t", "v", "int8", "cpu-ort", e=1.00e-4, e_ci=0.05, lat=1e-5, lat_ci=0.05, cls="counter")
    new = record("t", "v", "int8", "cpu-ort", e=1.08e-4, e_ci=0.05, lat=1.09e-5, lat_ci=0.05, cls="counter")
    v = _verdicts(old, new)
    assert (
        v["energy_per_inference_j"] == WITHIN and v["latency_p50_s"] == WITHIN and v["accuracy"] == UNCHANGED
    )


def test_change_beyond_the_ci_is_a_regression_or_an_improvement() -> None:
    old = record("t", "v", "int8", "cpu-ort", e=1.0e-4, e_ci=0.02, lat=1e-5, lat_ci=0.02, cls="counter")
    worse = record("t", "v", "int8", "cpu-ort", e=1.3e-4, e_ci=0.02, lat=0.7e-5, lat_ci=0.02, cls="counter")
    v = _verdicts(old, worse)
    assert v["energy_per_inference_j"] == REGRESSION and v["latency_p50_s"] == IMPROVEMENT
    # the same change with wide CIs is not significant
    wide = record("t", "v", "int8", "cpu-ort", e=1.3e-4, e_ci=0.15, lat=1e-5, cls="counter")
    old_wide = record("t", "v", "int8", "cpu-ort", e=1.0e-4, e_ci=0.15, cls="counter")
    assert _verdicts(old_wide, wide)["energy_per_inference_j"] == WITHIN


def test_classes_are_never_compared_and_missing_ci_is_said() -> None:
    old = record("t", "v", "int8", "cpu-ort", e=1e-4, cls="estimate")
    new = record("t", "v", "int8", "cpu-ort", e=1e-6, cls="external")
    assert _verdicts(old, new)["energy_per_inference_j"] == NOT_COMPARABLE
    no_ci = _verdicts(record("t", "v", "x", "c", e_ci=None, cls="counter"), record("t", "v", "x", "c", cls="counter"))
    assert no_ci["energy_per_inference_j"] == NO_CI


def test_accuracy_drop_and_lost_minimum() -> None:
    old = record("t", "v", "int8", "cpu-ort", acc=0.95, min_acc=0.9)
    assert _verdicts(old, record("t", "v", "int8", "cpu-ort", acc=0.949, min_acc=0.9))["accuracy"] == REGRESSION
    (r,) = compare(
        [old], [record("t", "v", "int8", "cpu-ort", acc=0.949, min_acc=0.9)], accuracy_tolerance=0.005
    )
    assert r.changes[0].verdict == UNCHANGED and not r.regression
    (r,) = compare([old], [record("t", "v", "int8", "cpu-ort", acc=0.899, min_acc=0.9)], accuracy_tolerance=0.5)
    assert r.changes[0].verdict == REGRESSION  # fell below the task's minimum


@given(a=st.floats(1e-9, 1.0), b=st.floats(1e-9, 1.0), ca=st.floats(0, 0.5), cb=st.floats(0, 0.5))
def test_judgement_is_antisymmetric(a: float, b: float, ca: float, cb: float) -> None:
    fwd, back = judge_lower_better(a, b, ca, cb), judge_lower_better(b, a, cb, ca)
    assert {fwd, back} in ({REGRESSION, IMPROVEMENT}, {WITHIN})
    if fwd == REGRESSION:
        assert b > a


def test_cli_exit_code_markdown_and_html(tmp_path: Path) -> None:
    old = make_db(tmp_path / "old.sqlite")
    changed = rows()
    changed[2] = {**changed[2], "latency_p50_s": changed[2]["latency_p50_s"] * 2}
    new = make_db(tmp_path / "new.sqlite", changed)
    same = runner.invoke(app, ["compare", str(old), str(old)])
    assert same.exit_code == 0, same.output
    assert "**0 regression(s)** in 9 matched results" in same.output
    r = runner.invoke(app, ["compare", str(old), str(new)])
    assert r.exit_code == 1
    line = next(x for x in r.output.splitlines() if "| fp32 | cpu-litert |" in x)
    assert "REGRESSION" in line and "+100.0%" in line
    assert runner.invoke(app, ["compare", str(old), str(new), "--no-fail"]).exit_code == 0
    out = tmp_path / "c.html"
    r = runner.invoke(app, ["compare", str(old), str(new), "-f", "html", "-o", str(out), "--no-fail"])
    assert r.exit_code == 0
    page = out.read_text()
    assert "<b id='n-regressions'>1</b>" in page and "&lt;script&gt;" in page and "<script>" not in page


def test_cli_two_runs_of_one_database(tmp_path: Path) -> None:
    db = make_db(tmp_path / "r.sqlite")
    r = runner.invoke(app, ["compare", str(db), "--old-run", "1", "--new-run", "1"])
    assert r.exit_code == 0 and "9 matched" in r.output
