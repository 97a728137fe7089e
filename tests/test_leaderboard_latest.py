"""The leaderboard shows the latest done result per (task, variant, target), with its run id;
``report --all-runs`` shows every run's results (history)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from report_fixtures import _row
from typer.testing import CliRunner

from harness.cli.main import app
from harness.results.rank import latest, leaderboard
from harness.results.record import Result
from harness.results.store import Store, WindowRow

runner = CliRunner()


def _db(path: Path) -> Path:
    """A run whose fp32 job failed on one target, then a re-run (another job key) that redid fp32."""
    first = [
        _row("digits", "fp32", "fp32", "cpu-ort", e=5.83e-5, lat=4.9e-6),
        _row("digits", "int8-static", "int8", "cpu-ort", e=4.0e-5, lat=3.3e-6),
    ]
    with Store.open(path) as s:
        r1 = s.begin_run("fixture", "benches/fixture.toml", {}, "host", "abc1234")
        for i, r in enumerate(first):
            s.save_result(Result.from_columns(r | {"run_id": r1, "job_key": f"a{i}"}), [])
        failed = Result(
            "fixture", "digits", "fp32", "cpu-litert", "failed", reason="lost", run_id=r1, job_key="f"
        )
        s.save_result(failed, [])
        s.end_run(r1, "failed")
        r2 = s.begin_run("fixture", "benches/fixture.toml", {}, "host", "abc1234")
        again = _row("digits", "fp32", "fp32", "cpu-ort", e=9.73e-5, lat=8.1e-6)
        win = WindowRow(0, 1000, 0.5, 0.5, 8.1e-6, 9.73e-2, True)
        s.save_result(Result.from_columns(again | {"run_id": r2, "job_key": "b0"}), [win])
        s.end_run(r2, "done")
    return path


def _rows(doc: Any) -> list[dict[str, Any]]:
    """The leaderboard rows of a JSON report."""
    rows: list[dict[str, Any]] = doc["results"]
    return rows


def test_latest_keeps_one_result_per_label(tmp_path: Path) -> None:
    with Store.open(_db(tmp_path / "r.sqlite")) as s:
        results = s.results()
    kept = latest(results)
    assert [(r.variant, r.target, r.run_id) for r in kept] == [
        ("int8-static", "cpu-ort", 1),
        ("fp32", "cpu-ort", 2),
    ]
    board = leaderboard(results)
    fp32 = [b for b in board if b["variant"] == "fp32"]
    assert len(fp32) == 1 and fp32[0]["run_id"] == 2 and fp32[0]["energy_per_inference_j"] == 9.73e-5
    history = leaderboard(results, all_runs=True)
    assert sorted(b["run_id"] for b in history if b["variant"] == "fp32") == [1, 2]


def test_report_default_and_all_runs(tmp_path: Path) -> None:
    db = _db(tmp_path / "r.sqlite")
    r = runner.invoke(app, ["report", "--db", str(db), "-f", "json"])
    assert r.exit_code == 0, r.output
    rows = _rows(json.loads(r.output))
    assert [(x["variant"], x["energy_per_inference_j"]) for x in rows if x["variant"] == "fp32"] == [
        ("fp32", 9.73e-5)
    ]
    r = runner.invoke(app, ["report", "--db", str(db), "-f", "json", "--all-runs"])
    assert r.exit_code == 0, r.output
    rows = _rows(json.loads(r.output))
    assert sorted(x["energy_per_inference_j"] for x in rows if x["variant"] == "fp32") == [5.83e-5, 9.73e-5]
    r = runner.invoke(app, ["report", "--db", str(db), "--all-runs", "--embodied", "x.toml"])
    assert r.exit_code != 0 and "--all-runs" in str(r.exception)
