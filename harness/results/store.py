"""SQLite results store (WAL): one row per result with full provenance, windows beside it.

A result is written in one transaction after all its windows are measured, so an interruption
(Ctrl-C, kill -9) never leaves a half result; resume skips job keys already ``done`` or ``skipped``.

Integrity: a file is ours when it carries our ``PRAGMA application_id`` (v1 files: a ``meta`` table with
a numeric ``schema_version`` and all our tables); anything else is refused before a byte is written.
Readers open read-only (``mode=ro``) and never change the file. One run at a time per database: a run
row records the pid, host and process start time of its writer; :meth:`Store.begin_run` refuses while
another live process has a run ``running``, and a writable open marks runs whose process is gone
``interrupted``.

# schema history:
#   1  runs, results, windows, meta(schema_version)
#   2  results.base_model (the recipe a variant was built from; a task may have several). Opening a
#      v1 file to write adds the column and fills it from each run's suite settings (the task's
#      single recipe, else NULL); a v1 file opened read-only is left untouched and reads NULL.
#   3  runs.pid, runs.proc_start (liveness of a running run's writer); PRAGMA application_id. Older
#      files get both on their first writable open; read-only they are left untouched.
#   4  results.ram_bytes, results.flash_bytes (an MCU model's peak RAM and flash). Added empty (NULL:
#      not measured) on an older file's first writable open; read-only, older rows read None.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StoreError
from .record import COLUMNS, STORED_ONLY, Result

SCHEMA_VERSION = 4
#: ``PRAGMA application_id`` of frugalbench results files ("FrBn")
APPLICATION_ID = 0x4672426E
_TABLES = ("meta", "runs", "results", "windows")

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    suite TEXT NOT NULL, suite_path TEXT, started REAL NOT NULL, finished REAL,
    status TEXT NOT NULL, git_rev TEXT, host TEXT, settings TEXT, pid INTEGER, proc_start INTEGER
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    job_key TEXT NOT NULL UNIQUE,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    suite TEXT NOT NULL, task TEXT NOT NULL, base_model TEXT, variant TEXT NOT NULL, variant_key TEXT,
    technique TEXT, target TEXT NOT NULL, target_kind TEXT, runtime TEXT,
    status TEXT NOT NULL CHECK (status IN ('done', 'skipped', 'failed')), reason TEXT,
    metric TEXT, min_accuracy REAL, accuracy REAL, base_accuracy REAL,
    latency_p50_s REAL, latency_p90_s REAL, latency_p99_s REAL, latency_ci_rel REAL,
    throughput_ips REAL, n_windows INTEGER, n_inferences INTEGER,
    energy_per_inference_j REAL, energy_ci_rel REAL, energy_dyn_j REAL, p_idle_w REAL,
    energy_class TEXT, marker_method TEXT, meter TEXT, boundary TEXT,
    instr_per_inference REAL,
    params INTEGER, macs INTEGER, model_bytes INTEGER, model_bytes_gz INTEGER,
    ram_bytes INTEGER, flash_bytes INTEGER,
    fine_tuned INTEGER, epochs INTEGER,
    produce_s REAL, produce_j REAL, produce_energy_class TEXT,
    pue REAL, grid_g_per_kwh REAL, grid_source TEXT,
    provenance TEXT, variant_meta TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS windows (
    result_id INTEGER NOT NULL REFERENCES results(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL, n INTEGER NOT NULL, seconds REAL NOT NULL, dut_s REAL,
    latency_p50_s REAL, energy_j REAL, valid INTEGER NOT NULL, problem TEXT, extra TEXT
);
CREATE INDEX IF NOT EXISTS results_task ON results(task);
"""

# the ``results`` columns a record fills (the record <-> column map itself is ``record.COLUMNS``)
RESULT_COLUMNS = tuple(col for col, _, _ in COLUMNS if col not in STORED_ONLY)


@dataclass
class WindowRow:
    idx: int
    n: int
    seconds: float
    dut_s: float | None
    latency_p50_s: float | None
    energy_j: float | None
    valid: bool
    problem: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WindowRange:
    """The lowest and highest window figure of one result (see :meth:`Store.window_ranges`)."""

    latency_min_s: float | None
    latency_max_s: float | None
    energy_min_j: float | None
    energy_max_j: float | None


class Store:
    """The results database. Open with :meth:`open`; refuses files that are not ours, or of a newer
    schema, untouched."""

    def __init__(self, conn: sqlite3.Connection, path: Path, *, readonly: bool = False) -> None:
        self.conn = conn
        self.path = path
        self.readonly = readonly

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True) -> Store:
        """Open (``create``: and create or upgrade) a results database.

        ``create=False`` opens an existing database read-only, for reports: nothing is written, so a
        read-only file can be read and the file is never changed. A writable open checks the file is
        ours *before* writing anything (WAL mode, tables, upgrade), then marks runs whose process is
        gone ``interrupted``.
        """
        path = Path(path)
        if not path.exists() and not create:
            raise StoreError(f"database {path} not found; run `frugalbench run SUITE --db {path}` first")
        # No open()/close() of the file ourselves: closing any descriptor of a database file drops the
        # POSIX locks SQLite holds on it through other connections of this process.
        conn: sqlite3.Connection | None = None
        try:
            if path.exists():  # look before writing: a read-only connection cannot change the file
                conn = _connect(path, readonly=True)
                version = _inspect(conn, path)
                if not create:
                    if version is None:
                        raise StoreError(f"{path} holds no frugalbench results")
                    return cls(conn, path, readonly=True)
                conn.close()
                conn = None
            conn = _connect(path, readonly=False)
            version = _inspect(conn, path)  # again: the file may have changed since we looked
            if version is None:
                conn.executescript(
                    f"BEGIN IMMEDIATE;{_SCHEMA}"
                    f"INSERT OR REPLACE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');"
                    f"PRAGMA application_id={APPLICATION_ID};COMMIT;"
                )
            elif version < SCHEMA_VERSION:
                _migrate(conn, version)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            store = cls(conn, path)
            store.mark_interrupted()
        except StoreError:
            if conn is not None:
                _close_quietly(conn)
            raise
        except sqlite3.DatabaseError as e:
            if conn is not None:
                _close_quietly(conn)
            if "not a database" in str(e):
                raise StoreError(f"{path} is not an SQLite database; pass another --db path") from None
            raise StoreError(f"cannot open results database {path}: {e}") from None
        return store

    @staticmethod
    def _version(conn: sqlite3.Connection) -> int | None:
        """The schema version a connection's database records (None: none recorded)."""
        has = conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() if has else None
        return int(row[0]) if row else None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- runs ---
    def begin_run(
        self, suite: str, suite_path: str, settings: dict[str, Any], host: str, git_rev: str
    ) -> int:
        """Record a new ``running`` run of this process; refuses (StoreError) while another live process
        has a run ``running`` in this database (two runs would measure the same jobs twice)."""
        pid = os.getpid()
        try:
            with _tx(self.conn):
                for run in self.conn.execute("SELECT * FROM runs WHERE status='running' ORDER BY id"):
                    r = dict(run)
                    if r.get("pid") == pid and r.get("host") == platform.node():
                        continue  # a process does not block itself
                    if _alive(r):
                        raise StoreError(
                            f"{self.path} is in use by run {r['id']} (pid {r['pid']} on {r['host']}, "
                            f"started {_when(r['started'])}); wait for it to finish, or pass another --db"
                        )
                    self.conn.execute("UPDATE runs SET status='interrupted' WHERE id=?", (r["id"],))
                cur = self.conn.execute(
                    "INSERT INTO runs (suite, suite_path, started, status, git_rev, host, settings, pid, "
                    "proc_start) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?)",
                    (
                        suite,
                        suite_path,
                        time.time(),
                        git_rev,
                        host,
                        json.dumps(settings, default=str),
                        pid,
                        _proc_start(pid),
                    ),
                )
        except sqlite3.Error as e:
            raise self._write_error(e) from None
        return int(cur.lastrowid or 0)

    def end_run(self, run_id: int, status: str) -> None:
        try:
            self.conn.execute(
                "UPDATE runs SET finished=?, status=? WHERE id=?", (time.time(), status, run_id)
            )
        except sqlite3.Error as e:
            raise self._write_error(e) from None

    def mark_interrupted(self) -> list[int]:
        """Mark ``running`` runs whose process is gone ``interrupted``; returns their ids."""
        gone = [
            int(r["id"])
            for r in self.conn.execute("SELECT * FROM runs WHERE status='running'")
            if not _alive(dict(r))
        ]
        if gone:
            with _tx(self.conn):
                self.conn.executemany(
                    "UPDATE runs SET status='interrupted' WHERE id=? AND status='running'",
                    [(i,) for i in gone],
                )
        return gone

    def require_run(self, run_id: int) -> None:
        """Raise StoreError naming the runs there are unless run ``run_id`` exists."""
        if self.conn.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone() is None:
            known = [r[0] for r in self.conn.execute("SELECT id FROM runs ORDER BY id")]
            listed = ", ".join(map(str, known)) if known else "none"
            raise StoreError(f"{self.path} has no run {run_id}; its runs: {listed}")

    def _write_error(self, e: sqlite3.Error) -> StoreError:
        """A one-line StoreError for a failed write, with what to do."""
        text = str(e)
        if "full" in text:
            hint = "free disk space and re-run the same command: finished results are kept"
        elif "locked" in text or "busy" in text:
            hint = "another process holds the database; wait for it or pass another --db"
        elif "readonly" in text or "read-only" in text:
            hint = "the file or its folder is read-only; pass a writable --db"
        else:
            hint = "the finished results are kept; re-run to resume"
        return StoreError(f"cannot write to {self.path}: {text}; {hint}")

    # --- results ---
    def finished_jobs(self) -> set[str]:
        rows = self.conn.execute("SELECT job_key FROM results WHERE status IN ('done', 'skipped')")
        return {r[0] for r in rows}

    def save_result(self, result: Result, windows: list[WindowRow]) -> int:
        """Insert (or replace a failed attempt of) one result and its windows atomically."""
        if result.run_id is None or result.job_key is None:
            raise StoreError("a result needs its run_id and job_key to be stored")
        job_key = result.job_key
        row = result.columns()
        vals = {k: row[k] for k in RESULT_COLUMNS}
        for k in ("provenance", "variant_meta"):  # an empty mapping is stored as NULL and read back as {}
            vals[k] = json.dumps(vals[k], default=str, sort_keys=True) if vals[k] else None
        cols = ", ".join(RESULT_COLUMNS)
        marks = ", ".join("?" for _ in RESULT_COLUMNS)
        try:
            return self._insert(job_key, result.run_id, vals, cols, marks, windows)
        except sqlite3.Error as e:
            raise self._write_error(e) from None

    def _insert(
        self, job_key: str, run_id: int, vals: dict[str, Any], cols: str, marks: str, windows: list[WindowRow]
    ) -> int:
        with _tx(self.conn):
            self.conn.execute("DELETE FROM results WHERE job_key=? AND status='failed'", (job_key,))
            cur = self.conn.execute(
                f"INSERT INTO results (job_key, run_id, {cols}, created) VALUES (?, ?, {marks}, ?)",
                (job_key, run_id, *vals.values(), time.time()),
            )
            rid = int(cur.lastrowid or 0)
            self.conn.executemany(
                "INSERT INTO windows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        rid,
                        w.idx,
                        w.n,
                        w.seconds,
                        w.dut_s,
                        w.latency_p50_s,
                        w.energy_j,
                        int(w.valid),
                        w.problem,
                        json.dumps(w.extra, default=str),
                    )
                    for w in windows
                ],
            )
        return rid

    def results(self, *, run_id: int | None = None, status: str | None = None) -> list[Result]:
        """Stored results as records, in insertion order; optionally one run's, or one status."""
        q, args = "SELECT * FROM results WHERE 1=1", list[object]()
        if run_id is not None:
            q += " AND run_id=?"
            args.append(run_id)
        if status is not None:
            q += " AND status=?"
            args.append(status)
        out, odd = [], []
        for r in self.conn.execute(q + " ORDER BY id", args):
            d = dict(r)
            for k in ("provenance", "variant_meta"):
                d[k] = json.loads(d[k]) if d[k] else {}
            m = d.get("min_accuracy")
            if m is not None and not math.isfinite(m):  # written before suites were checked (nan, inf)
                odd.append(f"{d['id']} ({m})")
                d["min_accuracy"] = None
            out.append(Result.from_columns(d))
        if odd:
            more = f" and {len(odd) - 5} more" if len(odd) > 5 else ""
            log.warning(
                "%s: result(s) %s%s store a non-finite min_accuracy; treated as unknown (no gate, not ranked)",
                self.path,
                ", ".join(odd[:5]),
                more,
            )
        return out

    def results_as_of(self, run_id: int) -> list[Result]:
        """The done results the database held for run ``run_id``'s suite once that run ended: its own
        and those of earlier runs of the same suite (a resumed run skips what they finished), in
        insertion order. Raises StoreError if there is no such run."""
        row = self.conn.execute("SELECT suite FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            known = [r["id"] for r in self.runs()]
            raise StoreError(f"{self.path} has no run {run_id}; its runs are {known}")
        ids = [
            r[0]
            for r in self.conn.execute(
                "SELECT id FROM results WHERE run_id<=? AND suite=? AND status='done' ORDER BY id",
                (run_id, row[0]),
            )
        ]
        keep = set(ids)
        return [r for r in self.results(status="done") if r.id in keep]

    def window_ranges(self) -> dict[int, WindowRange]:
        """Per result id, the range of its valid windows: lowest and highest window median latency (s),
        lowest and highest window energy per inference (J); None where no window has one."""
        rows = self.conn.execute(
            "SELECT result_id, MIN(latency_p50_s), MAX(latency_p50_s), "
            "MIN(CASE WHEN n > 0 THEN energy_j / n END), MAX(CASE WHEN n > 0 THEN energy_j / n END) "
            "FROM windows WHERE valid=1 GROUP BY result_id"
        )
        return {int(r[0]): WindowRange(r[1], r[2], r[3], r[4]) for r in rows}

    def windows(self, result_id: int) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self.conn.execute("SELECT * FROM windows WHERE result_id=? ORDER BY idx", (result_id,))
        ]

    def runs(self) -> list[dict[str, Any]]:
        """The runs, oldest first; a ``running`` run whose process is gone reads as ``interrupted``
        (also in a read-only database, where it cannot be marked)."""
        out = [dict(r) for r in self.conn.execute("SELECT * FROM runs ORDER BY id")]
        for r in out:
            if r["status"] == "running" and r.get("pid") is not None and not _alive(r):
                r["status"] = "interrupted"
        return out


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    if readonly:
        uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
    else:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


def _close_quietly(conn: sqlite3.Connection) -> None:
    with suppress(sqlite3.Error):
        conn.close()


def _inspect(conn: sqlite3.Connection, path: Path) -> int | None:
    """The schema version of a frugalbench database, None for an empty one (no tables); StoreError for
    anything else: another program's database, a newer or damaged one. Reads only."""
    unchanged = "The file was not modified."
    tables = {
        str(r[0])
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
        )
    }
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    if app_id not in (0, APPLICATION_ID):
        raise StoreError(
            f"{path} belongs to another program (SQLite application_id {app_id:#x}); "
            f"pass another --db path. {unchanged}"
        )
    if not tables and app_id == 0:
        return None
    if "meta" not in tables:
        listed = ", ".join(sorted(tables)) or "none"
        raise StoreError(
            f"{path} is an SQLite database but not a frugalbench results file (tables: {listed}); "
            f"pass another --db path. {unchanged}"
        )
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    raw = None if row is None else row[0]
    try:
        version = int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise StoreError(
            f"{path}: meta.schema_version is {raw!r}, not a schema number; the file is damaged or not a "
            f"frugalbench results file. {unchanged}"
        ) from None
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} uses results schema v{version}, newer than this frugalbench (v{SCHEMA_VERSION}); "
            f"upgrade frugalbench (`pip install -U frugalbench`) to read it. {unchanged}"
        )
    missing = [t for t in _TABLES if t not in tables]
    if version < 1 or missing:
        what = f"lacks table(s) {', '.join(missing)}" if missing else f"has schema_version {version}"
        raise StoreError(
            f"{path} {what}: a damaged frugalbench results file; restore it from a copy or pass "
            f"another --db path. {unchanged}"
        )
    return version


def _proc_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (Linux ``/proc``), else None: with the
    pid it tells a live writer from a later process that reuses its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])  # field 22, counted after the (comm) field
    except (OSError, ValueError, IndexError):
        return None


def _alive(run: dict[str, Any]) -> bool:
    """Whether the process that writes a ``running`` run is still there. Only this host can be asked;
    a run of another host (or of a frugalbench before schema v2, without a pid) counts as gone: a WAL
    database is never written from two hosts at once."""
    pid = run.get("pid")
    if pid is None or run.get("host") != platform.node():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    start = run.get("proc_start")
    now = _proc_start(int(pid))
    return start is None or now is None or start == now


def _when(t: float | None) -> str:
    return "at an unknown time" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _migrate(conn: sqlite3.Connection, version: int) -> None:
    """Bring an older schema up to :data:`SCHEMA_VERSION` in one transaction (see the history above)."""
    with _tx(conn):
        if version < 2:
            conn.execute("ALTER TABLE results ADD COLUMN base_model TEXT")
            for run_id, settings in conn.execute("SELECT id, settings FROM runs").fetchall():
                for task, recipe in _single_recipes(settings).items():
                    conn.execute(
                        "UPDATE results SET base_model=? WHERE run_id=? AND task=?", (recipe, run_id, task)
                    )
        if version < 3:
            have = {str(r[1]) for r in conn.execute("PRAGMA table_info(runs)")}
            for col in ("pid", "proc_start"):
                if col not in have:
                    conn.execute(f"ALTER TABLE runs ADD COLUMN {col} INTEGER")
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        if version < 4:
            have = {str(r[1]) for r in conn.execute("PRAGMA table_info(results)")}
            for col in ("ram_bytes", "flash_bytes"):
                if col not in have:
                    conn.execute(f"ALTER TABLE results ADD COLUMN {col} INTEGER")
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


def _single_recipes(settings: str | None) -> dict[str, str]:
    """Task name -> its recipe, from a run's stored suite settings (tasks with a single recipe only)."""
    try:
        tasks = json.loads(settings or "{}").get("tasks") or []
    except (json.JSONDecodeError, AttributeError):
        return {}
    return {
        t["name"]: t["recipe"]
        for t in tasks
        if isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("recipe"), str)
    }


@contextmanager
def _tx(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:  # SQLite already rolled back after some errors (SQLITE_FULL)
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
