"""The results store trusts nothing it did not write: foreign or damaged files are refused untouched,
readers never change a file, one live run per database, dead runs are marked, write errors are one line.

Disk full is simulated with SQLite's ``PRAGMA max_page_count`` (SQLITE_FULL, "database or disk is full"),
no root or tmpfs needed.
"""

from __future__ import annotations

import math
import os
import platform
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from report_fixtures import make_db, rows

from harness.errors import StoreError
from harness.results.record import Result
from harness.results.store import APPLICATION_ID, SCHEMA_VERSION, Store

# the schema of results files written before schema v2 (no run liveness, no application id)
V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (id INTEGER PRIMARY KEY, suite TEXT NOT NULL, suite_path TEXT, started REAL NOT NULL,
    finished REAL, status TEXT NOT NULL, git_rev TEXT, host TEXT, settings TEXT);
CREATE TABLE results (id INTEGER PRIMARY KEY, job_key TEXT NOT NULL UNIQUE, run_id INTEGER NOT NULL,
    suite TEXT NOT NULL, task TEXT NOT NULL, variant TEXT NOT NULL, target TEXT NOT NULL,
    status TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE windows (result_id INTEGER NOT NULL, idx INTEGER NOT NULL, n INTEGER NOT NULL,
    seconds REAL NOT NULL, dut_s REAL, latency_p50_s REAL, energy_j REAL, valid INTEGER NOT NULL,
    problem TEXT, extra TEXT);
INSERT INTO meta VALUES ('schema_version', '1');
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "2000"},
        timeout=600,
    )


def _one_line_error(r: subprocess.CompletedProcess[str], *parts: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    for p in parts:
        assert p in r.stderr, r.stderr


def _side_files(db: Path) -> list[Path]:
    return [p for p in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")) if p.exists()]


# --- files that are not ours, or damaged ---
def test_foreign_database_refused_before_writing(tmp_path: Path) -> None:
    db = tmp_path / "other.sqlite"
    con = sqlite3.connect(db)
    con.executescript(
        "CREATE TABLE results (id INTEGER PRIMARY KEY, what TEXT); INSERT INTO results VALUES (1, 'x');"
    )
    con.close()
    before = db.read_bytes()
    with pytest.raises(StoreError, match="not a frugalbench results file") as e:
        Store.open(db)
    assert "tables: results" in str(e.value) and "not modified" in str(e.value)
    assert db.read_bytes() == before and not _side_files(db)  # no tables added, no WAL switched on
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    con.close()
    _one_line_error(_cli("report", "--db", str(db), cwd=tmp_path), "not a frugalbench results file")
    assert db.read_bytes() == before


def test_other_application_id_refused(tmp_path: Path) -> None:
    db = tmp_path / "app.sqlite"
    con = sqlite3.connect(db)
    con.executescript("PRAGMA application_id=1234; CREATE TABLE meta (key TEXT, value TEXT);")
    con.close()
    before = db.read_bytes()
    with pytest.raises(StoreError, match="another program"):
        Store.open(db)
    assert db.read_bytes() == before


@pytest.mark.parametrize(
    ("damage", "expect"),
    [
        ("UPDATE meta SET value='two' WHERE key='schema_version'", "schema_version is 'two'"),
        ("DELETE FROM meta", "schema_version is None"),
        ("DROP TABLE windows", "lacks table(s) windows"),
    ],
)
def test_damaged_database_one_line_untouched(tmp_path: Path, damage: str, expect: str) -> None:
    db = tmp_path / "d.sqlite"
    Store.open(db).close()
    con = sqlite3.connect(db)
    con.execute(damage)
    con.commit()
    con.execute("PRAGMA journal_mode=DELETE")
    con.close()
    before = db.read_bytes()
    for create in (True, False):
        with pytest.raises(StoreError, match="not modified") as e:
            Store.open(db, create=create)
        assert expect in str(e.value)
    assert db.read_bytes() == before
    _one_line_error(_cli("report", "--db", str(db), cwd=tmp_path), expect)
    assert db.read_bytes() == before and not _side_files(db)


def test_new_file_is_marked_ours(tmp_path: Path) -> None:
    db = tmp_path / "n.sqlite"
    Store.open(db).close()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert con.execute("SELECT value FROM meta").fetchone()[0] == str(SCHEMA_VERSION)
    con.close()
    db.unlink()
    db.write_bytes(b"")  # an empty file (touch) is a new database, not a foreign one
    Store.open(db).close()
    assert sqlite3.connect(db).execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


# --- readers ---
def _rollback_mode_db(path: Path) -> Path:
    make_db(path)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=DELETE")
    con.close()
    return path


def test_readers_never_change_the_file(tmp_path: Path) -> None:
    db = _rollback_mode_db(tmp_path / "r.sqlite")
    before = db.read_bytes()
    for args in (
        ["report", "--db", str(db), "-f", "json"],
        ["report", "--db", str(db), "-f", "md", "--all-runs"],
        ["compare", str(db), str(db)],
        ["label", "--db", str(db), "-o", str(tmp_path / "labels"), "--no-png"],
    ):
        r = _cli(*args, cwd=tmp_path)
        assert r.returncode == 0, (args, r.stderr)
        assert db.read_bytes() == before, args  # before: Store.open switched the file to WAL
    assert not _side_files(db)
    with Store.open(db, create=False) as s:
        assert s.readonly
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            s.conn.execute("DELETE FROM runs")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files anyway")
def test_read_only_file_can_be_reported(tmp_path: Path) -> None:
    db = _rollback_mode_db(tmp_path / "r.sqlite")
    db.chmod(0o444)
    r = _cli("report", "--db", str(db), "-f", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_v1_file_read_as_is_upgraded_on_write(tmp_path: Path) -> None:
    db = tmp_path / "v1.sqlite"
    con = sqlite3.connect(db)
    con.executescript(
        V1_SCHEMA + "INSERT INTO runs (suite, started, status, host) VALUES ('s', 1.0, 'running', 'h');"
    )
    con.close()
    before = db.read_bytes()
    with Store.open(db, create=False) as s:
        assert s.runs()[0]["status"] == "running"  # a v1 row has no pid: nothing to judge it by
    assert db.read_bytes() == before
    with Store.open(db) as s:
        (run,) = s.runs()
        assert run["status"] == "interrupted" and run["pid"] is None  # a running run of an older writer
    con = sqlite3.connect(db)
    assert con.execute("SELECT value FROM meta").fetchone()[0] == str(SCHEMA_VERSION)
    assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    con.close()


# --- one run at a time; dead runs ---
def _fake_run(db: Path, pid: int, proc_start: int | None, host: str | None = None) -> None:
    con = sqlite3.connect(db)
    con.execute(
        "INSERT INTO runs (suite, started, status, host, pid, proc_start) VALUES ('s', 1.7e9, 'running', ?, ?, ?)",
        (host or platform.node(), pid, proc_start),
    )
    con.commit()
    con.close()


def _start_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_second_writer_refused_while_the_first_lives(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    Store.open(db).close()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        _fake_run(db, other.pid, _start_of(other.pid))
        with Store.open(db) as s:
            assert s.runs()[0]["status"] == "running"  # alive: left alone
            with pytest.raises(StoreError) as e:
                s.begin_run("s", "", {}, platform.node(), "rev")
        msg = str(e.value)
        assert f"in use by run 1 (pid {other.pid} on {platform.node()}" in msg and "\n" not in msg
        assert len(Store.open(db, create=False).runs()) == 1  # nothing inserted
    finally:
        other.kill()
        other.wait()
    with Store.open(db) as s:  # the writer is gone: its run is marked on the next open
        assert s.runs()[0]["status"] == "interrupted"
        rid = s.begin_run("s", "", {}, platform.node(), "rev")
        s.end_run(rid, "done")
        assert [r["status"] for r in s.runs()] == ["interrupted", "done"]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_reused_pid_and_other_host_count_as_gone(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    Store.open(db).close()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        _fake_run(db, live.pid, _start_of(live.pid) + 1)  # same pid, another process start: reused pid
        _fake_run(db, live.pid, _start_of(live.pid), host="elsewhere.example")  # WAL: never shared
        with Store.open(create=False, path=db) as s:
            assert [r["status"] for r in s.runs()] == ["interrupted", "interrupted"]  # derived, not written
        stored = sqlite3.connect(db).execute("SELECT status FROM runs").fetchall()
        assert stored == [("running",), ("running",)]
        with Store.open(db) as s:
            assert [r["status"] for r in s.runs()] == ["interrupted", "interrupted"]
    finally:
        live.kill()
        live.wait()


# --- write errors ---
def test_disk_full_is_one_store_error_and_the_run_is_marked(tmp_path: Path) -> None:
    db = tmp_path / "f.sqlite"
    with Store.open(db) as s:
        rid = s.begin_run("fixture", "", {}, platform.node(), "rev")
        pages = s.conn.execute("PRAGMA page_count").fetchone()[0]
        s.conn.execute(f"PRAGMA max_page_count={pages}")  # SQLITE_FULL on the first page more
        row = rows()[0] | {"run_id": rid, "job_key": "k", "provenance": {"blob": "x" * 20000}}
        with pytest.raises(StoreError) as e:
            s.save_result(Result.from_columns(row), [])
        assert "database or disk is full" in str(e.value) and "free disk space" in str(e.value)
        s.end_run(rid, "failed")  # an update in place still fits
    with Store.open(db, create=False) as s:
        assert [r["status"] for r in s.runs()] == ["failed"] and s.results() == []


TINY = """
[suite]
name = "tiny"

[run]
warmup_s = 0.01
window_s = 0.05
min_windows = 1
max_windows = 1
ci_target = 0.9

[[tasks]]
name = "digits"
recipe = "digits_mlp"
recipe_params = { hidden = [16], max_iter = 60 }
min_accuracy = 0.5

[[variants]]
name = "fp32"
technique = "fp32"

[[targets]]
name = "cpu-ort"
kind = "cpu"
runtime = "ort"
"""

# run the CLI with every writable database capped at its size after opening: the first result is
# refused with SQLITE_FULL, as on a full disk
FULL_DISK = """
import sys
from harness.results import store as st
_open = st.Store.open.__func__
def capped(cls, path, *, create=True):
    s = _open(cls, path, create=create)
    if create:
        s.conn.execute("PRAGMA max_page_count=%d" % s.conn.execute("PRAGMA page_count").fetchone()[0])
    return s
st.Store.open = classmethod(capped)
from harness.cli.main import main
sys.argv = ["frugalbench", *sys.argv[1:]]
main()
"""


def test_disk_full_mid_run_one_line_and_run_failed(tmp_path: Path) -> None:
    # six results of ~1.3 kB: more than the free room of the tables' pages, so one needs a new page
    more = '\n[[variants]]\nname = "int8-dynamic"\ntechnique = "int8"\nparams = { mode = "dynamic" }\n'
    more += '\n[[variants]]\nname = "int8-static"\ntechnique = "int8"\nparams = { mode = "static" }\n'
    more += '\n[[targets]]\nname = "cpu-litert"\nkind = "cpu"\nruntime = "litert"\n'
    (tmp_path / "s.toml").write_text(TINY + more)
    r = subprocess.run(
        [sys.executable, "-c", FULL_DISK, "run", "s.toml", "--db", "f.sqlite", "--no-report"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "2000"},
        timeout=600,
    )
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    errors = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "database or disk is full" in errors[0], r.stderr
    with Store.open(tmp_path / "f.sqlite", create=False) as s:
        assert [x["status"] for x in s.runs()] == ["failed"]
        assert 0 < len(s.results()) < 6  # what was finished before the disk filled is kept


# --- run ids that do not exist ---
def test_unknown_run_id_refused(tmp_path: Path) -> None:
    db = make_db(tmp_path / "r.sqlite")
    _one_line_error(
        _cli("report", "--db", str(db), "--run-id", "999", cwd=tmp_path), "has no run 999", "runs: 1"
    )
    _one_line_error(
        _cli("report", "--db", str(db), "--run-id", "999", "--all-runs", cwd=tmp_path), "no run 999"
    )
    _one_line_error(
        _cli("compare", str(db), "--old-run", "1", "--new-run", "99", cwd=tmp_path), "has no run 99"
    )
    _one_line_error(
        _cli("compare", str(db), "--old-run", "5", "--new-run", "1", cwd=tmp_path), "has no run 5"
    )
    r = _cli("label", "--db", str(db), "--run-id", "7", "-o", str(tmp_path / "l"), "--no-png", cwd=tmp_path)
    _one_line_error(r, "has no run 7")
    assert _cli("report", "--db", str(db), "--run-id", "1", "-f", "json", cwd=tmp_path).returncode == 0


# --- non-finite minimum stored by an older frugalbench ---
@pytest.mark.parametrize("bad", ["nan", "-inf", "inf"])
def test_non_finite_stored_minimum_is_unknown(tmp_path: Path, bad: str) -> None:
    db = make_db(tmp_path / "r.sqlite")
    con = sqlite3.connect(db)
    con.execute("UPDATE results SET min_accuracy=? WHERE variant='int8-static'", (float(bad),))
    con.commit()
    con.close()
    with Store.open(db, create=False) as s:
        odd = [r for r in s.results() if r.variant == "int8-static"]
    assert odd and all(r.min_accuracy is None for r in odd)
    for fmt in ("md", "html", "json", "csv"):  # before: -inf broke md (plot limits) and html (OverflowError)
        r = _cli("report", "--db", str(db), "-f", fmt, "-o", str(tmp_path / f"r.{fmt}"), cwd=tmp_path)
        assert r.returncode == 0, (fmt, r.stderr)
        if bad != "nan":  # SQLite stores nan as NULL: unknown already, nothing to note
            assert "non-finite min_accuracy" in r.stderr and "treated as unknown" in r.stderr, r.stderr
    doc = (tmp_path / "r.json").read_text()
    assert "NaN" not in doc and "Infinity" not in doc
    r = _cli("label", "--db", str(db), "-o", str(tmp_path / "labels"), "--no-png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for fmt in ("md", "html", "json"):
        r = _cli("compare", str(db), str(db), "-f", fmt, cwd=tmp_path)
        assert r.returncode == 0, (fmt, r.stderr)
    assert not math.isfinite(float(bad))


# --- the job key decides reuse: gate and run rules ---
def test_job_key_includes_gate_and_run_rules(tmp_path: Path) -> None:
    from harness.ir.model import Variant
    from harness.pipeline.runner import Runner
    from harness.suite import load_suite

    v = Variant("digits", "fp32", "k", {}, {})
    tab = {"name": "cpu-ort", "kind": "cpu", "runtime": "ort"}

    def key(text: str) -> str:
        p = tmp_path / "s.toml"
        p.write_text(text)
        with Store.open(tmp_path / "k.sqlite") as s:
            return Runner(load_suite(p), s).job_key(v, tab)

    base = key(TINY)
    assert key(TINY) == base
    edits = [
        ("min_accuracy = 0.5", "min_accuracy = 0.6"),
        ("min_accuracy = 0.5", 'min_accuracy = 0.5\nmetric = "macro_f1"'),
        ("min_accuracy = 0.5", 'min_accuracy = 0.5\nmetric = "top_k"\nmetric_params = { k = 2 }'),
        ("window_s = 0.05", "window_s = 0.1"),
        ("warmup_s = 0.01", "warmup_s = 0.02"),
        ("min_windows = 1", "min_windows = 1\nseed = 3"),
        ("max_windows = 1", "max_windows = 2"),
        ("ci_target = 0.9", "ci_target = 0.5"),
    ]
    keys = {key(TINY.replace(a, b, 1)) for a, b in edits}
    assert base not in keys and len(keys) == len(edits)
    k2 = key(
        TINY.replace('metric = "top_k"', "").replace(
            "min_accuracy = 0.5", 'min_accuracy = 0.5\nmetric = "top_k"\nmetric_params = { k = 3 }', 1
        )
    )
    assert k2 not in keys | {base}


def test_v3_file_gains_the_mcu_footprint_columns(tmp_path: Path) -> None:
    """Schema 4 added results.ram_bytes / flash_bytes: a v3 file reads them as unknown (None) untouched,
    and gets the columns on its first writable open; a new MCU row stores its figures."""
    db = tmp_path / "v3.sqlite"
    with Store.open(db) as s:
        rid = s.begin_run("s", "", {}, platform.node(), "rev")
        cols = {"suite": "s", "task": "t", "variant": "v", "target": "qemu", "status": "done"}
        s.save_result(Result.from_columns({**cols, "run_id": rid, "job_key": "a", "macs": 7}), [])
    con = sqlite3.connect(db)
    for col in ("ram_bytes", "flash_bytes"):
        con.execute(f"ALTER TABLE results DROP COLUMN {col}")
    con.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    con.commit()
    con.close()
    before = db.read_bytes()
    with Store.open(db, create=False) as s:
        (old,) = s.results()
        assert old.model.macs == 7 and old.model.ram_bytes is None and old.model.flash_bytes is None
    assert db.read_bytes() == before
    with Store.open(db) as s:
        rid = s.begin_run("s", "", {}, platform.node(), "rev")
        new = {**cols, "run_id": rid, "job_key": "b", "ram_bytes": 30_000, "flash_bytes": 90_000}
        s.save_result(Result.from_columns(new), [])
        got = {r.job_key: r.model for r in s.results()}
    assert got["a"].ram_bytes is None and (got["b"].ram_bytes, got["b"].flash_bytes) == (30_000, 90_000)
    con = sqlite3.connect(db)
    assert con.execute("SELECT value FROM meta").fetchone()[0] == str(SCHEMA_VERSION) == "4"
    con.close()
