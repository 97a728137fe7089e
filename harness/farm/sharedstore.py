"""One SQLite connection for a whole farm run, shared by its worker threads under a lock.

Why not one ``Store.open()`` per worker: SQLite's POSIX file locks belong to the process, and closing
*any* descriptor of the file drops them (``Store.open`` reads the header with Python's ``open()``). A
second ``Store.open`` while a connection is live thus leaves that connection unlocked, and a reader in
another process (``frugalbench report`` during the run) may then checkpoint and delete the WAL under
it: committed results vanish. Measured here before this module existed. So: open once, share.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from ..results.record import Result
from ..results.store import Store, WindowRow


class SharedStore:
    """The subset of :class:`Store` the runner's per-job code uses, safe to call from any thread."""

    def __init__(self, path: Path) -> None:
        store = Store.open(path)  # schema, version checks, WAL mode (nothing else of ours is open yet)
        store.conn.close()
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys=ON")
        store.conn = conn
        self.store = store
        self.path = path
        self.lock = threading.RLock()

    def begin_run(self, *a: Any, **kw: Any) -> int:
        with self.lock:
            return self.store.begin_run(*a, **kw)

    def end_run(self, run_id: int, status: str) -> None:
        with self.lock:
            self.store.end_run(run_id, status)

    def finished_jobs(self) -> set[str]:
        with self.lock:
            return self.store.finished_jobs()

    def save_result(self, result: Result, windows: list[WindowRow]) -> int:
        with self.lock:
            return self.store.save_result(result, windows)

    def results(self, **kw: Any) -> list[Result]:
        with self.lock:
            return self.store.results(**kw)

    def status_of(self, job_key: str) -> str | None:
        """``done``/``skipped``/``failed`` of one job key, or ``None`` if it has no row."""
        with self.lock:
            row = self.store.conn.execute("SELECT status FROM results WHERE job_key=?", (job_key,)).fetchone()
        return str(row[0]) if row else None

    def close(self) -> None:
        with self.lock:
            self.store.close()
