"""SQLite results store (WAL): one row per result with full provenance, windows beside it.

A result is written in one transaction after all its windows are measured, so an interruption
(Ctrl-C, kill -9) never leaves a half result; resume skips job keys already ``done`` or ``skipped``.

# schema history:
#   1  runs, results, windows, meta(schema_version)
#   2  results.base_model (the recipe a variant was built from; a task may have several). Opening a
#      v1 file to write adds the column and fills it from each run's suite settings (the task's
#      single recipe, else NULL); a v1 file opened read-only is left untouched and reads NULL.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StoreError
from .record import COLUMNS, STORED_ONLY, Result

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    suite TEXT NOT NULL, suite_path TEXT, started REAL NOT NULL, finished REAL,
    status TEXT NOT NULL, git_rev TEXT, host TEXT, settings TEXT
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
    """The results database. Open with :meth:`open`; refuses files of a newer schema untouched."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True) -> Store:
        path = Path(path)
        if not path.exists() and not create:
            raise StoreError(f"database {path} not found; run `frugalbench run SUITE --db {path}` first")
        # No open()/close() of the file ourselves: closing any descriptor of a database file drops the
        # POSIX locks SQLite holds on it through other connections of this process.
        try:
            conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            conn.row_factory = sqlite3.Row
            version = cls._version(conn)
            if version is not None and version > SCHEMA_VERSION:
                conn.close()
                raise StoreError(
                    f"{path} uses results schema v{version}, newer than this frugalbench (v{SCHEMA_VERSION}); "
                    "upgrade frugalbench (`pip install -U frugalbench`) to read it. The file was not modified."
                )
            if not create and version is None:
                conn.close()
                raise StoreError(f"{path} holds no frugalbench results")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            if version is None:
                conn.executescript(_SCHEMA)  # idempotent; meta last, so a crash here just re-runs it
                with _tx(conn):
                    conn.execute(
                        "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                    )
            elif version < SCHEMA_VERSION and create:
                _migrate(conn, version)
        except sqlite3.DatabaseError as e:
            if "not a database" in str(e):
                raise StoreError(f"{path} is not an SQLite database; pass another --db path") from None
            raise StoreError(f"cannot open results database {path}: {e}") from None
        return cls(conn, path)

    @staticmethod
    def _version(conn: sqlite3.Connection) -> int | None:
        has = conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if not has:
            return None
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
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
        cur = self.conn.execute(
            "INSERT INTO runs (suite, suite_path, started, status, git_rev, host, settings) "
            "VALUES (?, ?, ?, 'running', ?, ?, ?)",
            (suite, suite_path, time.time(), git_rev, host, json.dumps(settings, default=str)),
        )
        return int(cur.lastrowid or 0)

    def end_run(self, run_id: int, status: str) -> None:
        self.conn.execute("UPDATE runs SET finished=?, status=? WHERE id=?", (time.time(), status, run_id))

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
        with _tx(self.conn):
            self.conn.execute("DELETE FROM results WHERE job_key=? AND status='failed'", (job_key,))
            cur = self.conn.execute(
                f"INSERT INTO results (job_key, run_id, {cols}, created) VALUES (?, ?, {marks}, ?)",
                (job_key, result.run_id, *vals.values(), time.time()),
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
        out = []
        for r in self.conn.execute(q + " ORDER BY id", args):
            d = dict(r)
            for k in ("provenance", "variant_meta"):
                d[k] = json.loads(d[k]) if d[k] else {}
            out.append(Result.from_columns(d))
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
        return [dict(r) for r in self.conn.execute("SELECT * FROM runs ORDER BY id")]


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
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
