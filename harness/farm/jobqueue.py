"""The farm's shared state: the job queue per board kind and the JSON status file ``farm status`` reads."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from .jobs import Job


class JobQueue:
    """Jobs per board kind; a worker waits while jobs of its kind may still come back."""

    def __init__(self, jobs: list[Job]) -> None:
        self.cv = threading.Condition()
        self.pending: dict[str, deque[Job]] = {}
        self.running: dict[str, tuple[Job, str]] = {}
        self.stop = False
        for j in jobs:
            self.pending.setdefault(j.board, deque()).append(j)

    def take(self, board: str) -> Job | None:
        with self.cv:
            while not self.stop:
                q = self.pending.get(board)
                if q:
                    return q.popleft()
                if not any(j.board == board for j, _ in self.running.values()):
                    return None
                self.cv.wait(0.5)
            return None

    def start(self, job: Job, place: str) -> None:
        with self.cv:
            self.running[job.key] = (job, place)

    def finish(self, job: Job, requeue: bool = False) -> None:
        with self.cv:
            self.running.pop(job.key, None)
            if requeue:
                self.pending.setdefault(job.board, deque()).appendleft(job)
            self.cv.notify_all()

    def boards_waiting(self) -> dict[str, int]:
        with self.cv:
            return {b: len(q) for b, q in self.pending.items() if q}

    def empty(self) -> bool:
        with self.cv:
            return not self.running and not any(self.pending.values())

    def halt(self) -> None:
        with self.cv:
            self.stop = True
            self.cv.notify_all()


class StatusFile:
    """Atomic JSON status file: places, the job queue, what the run waits for."""

    def __init__(self, path: Path, coordinator: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.data: dict[str, Any] = {
            "coordinator": coordinator,
            "pid": os.getpid(),
            "started": time.time(),
            "state": "starting",
            "places": {},
            "waiting": "",
            "events": [],
        }

    def update(self, queue: JobQueue | None = None, **kw: Any) -> None:
        with self.lock:
            self.data.update(kw)
            if queue is not None:
                with queue.cv:
                    self.data["pending"] = [j.label for q in queue.pending.values() for j in q]
                    self.data["running"] = {j.label: p for j, p in queue.running.values()}
            self._write()

    def place(self, name: str, **kw: Any) -> None:
        with self.lock:
            self.data["places"].setdefault(name, {}).update(kw)
            self._write()

    def event(self, text: str) -> None:
        with self.lock:
            self.data["events"] = (self.data["events"] + [f"{time.strftime('%H:%M:%S')} {text}"])[-50:]
            self._write()

    def _write(self) -> None:
        self.data["updated"] = time.time()
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, self.path)
