"""End to end on the local CPU: suite → variants → windows → SQLite → leaderboard; resume; bad input."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harness.errors import StoreError
from harness.results.rank import LEADERBOARD_KEYS
from harness.results.store import SCHEMA_VERSION, Store

SUITE = """
[suite]
name = "tiny"

[run]
warmup_s = 0.02
window_s = 0.05
min_windows = 2
max_windows = 3
ci_target = 0.5

[[tasks]]
name = "digits"
recipe = "digits_mlp"
recipe_params = {{ hidden = [16], max_iter = 60 }}
min_accuracy = {min_acc}

[[variants]]
name = "fp32"
technique = "fp32"

[[variants]]
name = "int8-static"
technique = "int8"
params = {{ mode = "static" }}

[[variants]]
name = "int8-dynamic"
technique = "int8"
params = {{ mode = "dynamic" }}

[[targets]]
name = "cpu-ort"
kind = "cpu"
runtime = "ort"

[[targets]]
name = "cpu-litert"
kind = "cpu"
runtime = "litert"
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli.main", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "COLUMNS": "200"}, timeout=600)


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("run")
    (d / "s.toml").write_text(SUITE.format(min_acc=0.5))
    r = _cli("run", "s.toml", "--db", "r.sqlite", cwd=d)
    assert r.returncode == 0, r.stderr
    return d, d / "r.sqlite"


def test_results_stored_with_provenance(ran: tuple[Path, Path]) -> None:
    _, db = ran
    with Store.open(db, create=False) as s:
        rows = s.results()
        assert len(rows) == 6
        done = [r for r in rows if r.status == "done"]
        assert len(done) == 6, [(r.variant, r.target, r.reason) for r in rows if r.status != "done"]
        for r in done:
            assert r.accuracy is not None and 0.5 < r.accuracy <= 1.0
            lat = r.latency
            assert lat.p50_s and lat.p50_s > 0 and lat.p99_s and lat.p99_s >= lat.p50_s
            assert lat.n_windows and lat.n_windows >= 2 and lat.n_inferences and lat.n_inferences > 0
            assert r.energy.measurement_class in ("counter", "estimate")
            assert r.energy.per_inference_j and r.energy.per_inference_j > 0
            if r.energy.measurement_class == "estimate":  # priced from the row's own p50: they agree exactly
                assert r.energy.per_inference_j == pytest.approx(12.0 * lat.p50_s, rel=1e-12)
            assert r.model.fine_tuned is False and r.technique in ("fp32", "int8")  # 0 in SQLite, read back
            p = r.provenance
            assert p["runtime"] in ("ort", "litert") and p["runtime_version"] and "isa" in p and p["threads"] == 1
            # read when the first window started; the load average exists on every POSIX host
            assert len(p["load_avg"]) == 3 and all(x >= 0 for x in p["load_avg"])
            assert {"governor", "cpu_freq_cur_mhz", "cpu_freq_max_mhz"} <= set(p)
            assert p["packages"]["numpy"] == np.__version__ and p["packages"]["frugalbench"]
            assert r.id is not None and len(s.windows(r.id)) >= 2


def test_report_formats(ran: tuple[Path, Path]) -> None:
    d, _ = ran
    r = _cli("report", "--db", "r.sqlite", "--format", "json", cwd=d)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    board = doc["results"]
    assert len(board) == 6 and doc["skipped"] == []
    (run,) = doc["runs"]
    assert run["suite"] == "tiny" and run["status"] == "done" and run["started"] <= run["ended"]
    assert run["frugalbench_version"] and run["host"]["cpu"] and run["ci_target"] == 0.5
    for row in board:
        assert set(LEADERBOARD_KEYS) <= set(row)
        assert (row["rank"] is None) == (not row["passes_gate"])
        assert row["accuracy_per_joule"] == pytest.approx(row["accuracy"] / row["energy_per_inference_j"])
        assert row["co2e_g_per_1000"] == pytest.approx(1000 * row["energy_per_inference_j"] / 3.6e6 * 475.0)
    ranks = sorted(r["rank"] for r in board if r["rank"])
    assert ranks == list(range(1, len(ranks) + 1))
    best = min((r for r in board if r["rank"]), key=lambda r: r["rank"])
    assert best["accuracy_per_joule"] == max(r["accuracy_per_joule"] for r in board if r["rank"])
    csv_out = _cli("report", "--db", "r.sqlite", "--format", "csv", "-o", "b.csv", cwd=d)
    assert csv_out.returncode == 0
    assert (d / "b.csv").read_text().splitlines()[0].startswith("task,variant,technique")
    md = _cli("report", "--db", "r.sqlite", cwd=d).stdout
    assert "## digits" in md and "minimum acceptable" in md and "energy class" in md


def test_gate_excludes_below_minimum(tmp_path: Path, ran: tuple[Path, Path]) -> None:
    from harness.results.rank import leaderboard

    _, db = ran
    with Store.open(db, create=False) as s:
        rows = s.results()
    board = leaderboard(replace(r, min_accuracy=0.999) for r in rows)  # nothing passes
    assert all(r["rank"] is None and not r["passes_gate"] for r in board)


def test_rerun_resumes_without_redoing(ran: tuple[Path, Path]) -> None:
    d, db = ran
    before = sqlite3.connect(db).execute("SELECT count(*), max(id) FROM results").fetchone()
    r = _cli("run", "s.toml", "--db", "r.sqlite", "--no-report", cwd=d)
    assert r.returncode == 0, r.stderr
    after = sqlite3.connect(db).execute("SELECT count(*), max(id) FROM results").fetchone()
    assert after == before


def test_kill_9_then_resume(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(SUITE.format(min_acc=0.5).replace("window_s = 0.05", "window_s = 0.3"))
    db = tmp_path / "k.sqlite"
    p = subprocess.Popen([sys.executable, "-m", "harness.cli.main", "run", "s.toml", "--db", str(db), "--no-report"],
                         cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    n = 0
    while time.time() < deadline and p.poll() is None:  # kill after the first results land
        time.sleep(0.2)
        if db.exists():
            try:
                n = sqlite3.connect(db).execute("SELECT count(*) FROM results").fetchone()[0]
            except sqlite3.Error:
                n = 0
            if n >= 2:
                break
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert n >= 2, "the run ended before it could be interrupted"
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    first = {r[0] for r in con.execute("SELECT job_key FROM results")}
    r = _cli("run", "s.toml", "--db", str(db), "--no-report", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = sqlite3.connect(db).execute("SELECT job_key, status FROM results").fetchall()
    assert len(rows) == 6 and len({k for k, _ in rows}) == 6
    assert first <= {k for k, _ in rows}
    # the killed run is not left "running" forever: its process is gone, the next open marked it
    runs = sqlite3.connect(db).execute("SELECT status, pid FROM runs ORDER BY id").fetchall()
    assert [st for st, _ in runs] == ["interrupted", "done"] and runs[0][1] == p.pid


def test_second_concurrent_run_is_refused(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(SUITE.format(min_acc=0.5).replace("window_s = 0.05", "window_s = 0.3"))
    db = tmp_path / "c.sqlite"
    p = subprocess.Popen([sys.executable, "-m", "harness.cli.main", "run", "s.toml", "--db", str(db), "--no-report"],
                         cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, started = time.time() + 300, False
        while time.time() < deadline and p.poll() is None and not started:
            time.sleep(0.2)
            with contextlib.suppress(sqlite3.Error):
                started = sqlite3.connect(db).execute("SELECT count(*) FROM runs").fetchone()[0] > 0
        assert started and p.poll() is None, "the first run ended before a second could start"
        # before: the second run re-measured the first's jobs and died on UNIQUE constraint failed
        r = _cli("run", "s.toml", "--db", str(db), "--no-report", cwd=tmp_path)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert f"in use by run 1 (pid {p.pid}" in r.stderr, r.stderr
    finally:
        p.kill()
        p.wait()
    assert sqlite3.connect(db).execute("SELECT count(*) FROM runs").fetchone()[0] == 1


def test_edited_minimum_is_not_reused(ran: tuple[Path, Path], tmp_path: Path) -> None:
    d, db = ran
    copy = tmp_path / "g.sqlite"
    with sqlite3.connect(db) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    (tmp_path / "s.toml").write_text(SUITE.format(min_acc=0.6))
    r = _cli("run", "s.toml", "--db", str(copy), "--no-report", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    con = sqlite3.connect(copy)
    assert con.execute("SELECT count(*) FROM results WHERE status='done'").fetchone()[0] == 12  # re-measured
    latest = json.loads(_cli("report", "--db", str(copy), "-f", "json", cwd=tmp_path).stdout)["results"]
    assert len(latest) == 6 and {row["min_accuracy"] for row in latest} == {0.6}  # the new gate, once each
    history = json.loads(
        _cli("report", "--db", str(copy), "-f", "json", "--all-runs", cwd=tmp_path).stdout
    )["results"]
    seen = {(row["variant"], row["target"], row["min_accuracy"], row["run_id"]) for row in history}
    assert len(history) == len(seen) == 12  # both kept in the history, told apart by gate and run


def test_newer_schema_refused_and_untouched(tmp_path: Path) -> None:
    db = tmp_path / "new.sqlite"
    Store.open(db).close()
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    before = db.read_bytes()
    with pytest.raises(StoreError, match="newer than this frugalbench"):
        Store.open(db)
    assert db.read_bytes() == before
    r = _cli("report", "--db", str(db), cwd=tmp_path)
    assert r.returncode == 2 and "newer" in r.stderr and "Traceback" not in r.stderr


def test_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "x.sqlite"
    bad.write_text("hello")
    with pytest.raises(StoreError, match="not an SQLite database"):
        Store.open(bad)
    assert bad.read_text() == "hello"


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(SUITE.format(min_acc=0.5).replace('kind = "cpu"', 'kind = "gpu"', 1))
    r = _cli("run", "s.toml", "--db", "r.sqlite", cwd=tmp_path)
    assert r.returncode == 2
    assert "unknown target kind 'gpu'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r.sqlite").exists()


def test_missing_format_is_skipped_with_reason(tmp_path: Path) -> None:
    from harness.ir.model import Variant
    from harness.targets.local import CpuConfig, CpuTarget

    v = Variant("t", "v", "k", {"onnx": tmp_path / "m.onnx"}, {"technique": "svd"})
    t = CpuTarget(CpuConfig(name="c", kind="cpu", runtime="litert"))
    assert "no .tflite file" in (t.supports(v) or "")
    assert CpuTarget(CpuConfig(name="c", kind="cpu", runtime="ort")).supports(v) is None


def test_carbon_budget_fails_the_run(tmp_path: Path) -> None:
    text = SUITE.format(min_acc=0.5).replace('name = "tiny"', 'name = "tiny"\n\n[carbon]\nbudget_g = 1e-12', 1)
    text = text.replace('[[targets]]\nname = "cpu-litert"\nkind = "cpu"\nruntime = "litert"\n', "")
    (tmp_path / "s.toml").write_text(text)
    r = _cli("run", "s.toml", "--db", "b.sqlite", "--no-report", cwd=tmp_path)
    assert r.returncode == 2 and "carbon budget exceeded" in r.stderr, r.stderr
    con = sqlite3.connect(tmp_path / "b.sqlite")
    assert con.execute("SELECT status FROM runs").fetchone()[0] == "over-budget"
    assert con.execute("SELECT count(*) FROM results WHERE status='done'").fetchone()[0] == 3
