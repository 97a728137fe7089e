"""``farm run``: acquire places, run jobs on them in parallel, re-queue jobs of lost places, release.

One worker thread per acquired place takes jobs of its board kind from a shared queue and measures
them with the runner's own per-job code (accuracy pass, windows, store), all through the run's one
SQLite connection (:mod:`.sharedstore`). A job whose place fails under it (exporter gone, board reset,
serial link dropped) goes back to the queue for another place of the same kind, at most
``attempts`` times in all; the store keeps one row per job key (a later success replaces a failed
attempt). Places are released at the end, on error and on Ctrl-C (and by the labgrid bridge if this
process dies). The state is written to a JSON status file that ``farm status`` reads.
"""

from __future__ import annotations

import contextlib
import re
import signal
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FrugalbenchError, TargetError
from ..pipeline.runner import Progress, Runner, make_meter
from ..pipeline.variants import default_cache_dir
from ..suite import Suite
from ..sysinfo import git_revision, host_summary
from .errors import CoordinatorUnreachable, NoFreePlace, PlaceHeld
from .jobqueue import JobQueue, StatusFile
from .jobs import Job, expand
from .lgsession import LabgridSession, Snapshot
from .placed import PlacedTarget
from .profile import Endpoint, FarmProfile, available, candidates, check_fit, endpoint
from .sharedstore import SharedStore

JOIN_S = 15.0  # how long workers get to stop after Ctrl-C before places are released anyway


def default_status_path(db: Path) -> Path:
    return db.with_name(db.name + ".farm.json")


@dataclass
class FarmOptions:
    coordinator: str
    db: Path
    cache: Path | None = None
    profile: FarmProfile = field(default_factory=FarmProfile)
    wait_s: float = 300.0  # how long to wait for a free place of a needed kind
    attempts: int = 3  # runs of one job in all (first try + re-queues after lost places)
    max_places: int | None = None  # per board kind
    poll_s: float = 1.0
    status_path: Path | None = None
    user: str | None = None  # labgrid LG_USERNAME (who appears as the holder)


@dataclass
class FarmSummary:
    run_id: int
    done: int = 0
    failed: int = 0
    skipped_already_done: int = 0
    requeued: int = 0
    places_used: list[str] = field(default_factory=list)
    places_lost: list[str] = field(default_factory=list)
    acquire_s: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    jobs_s: float = 0.0  # from the first acquire to the last job (the part that scales with places)
    job_s: dict[str, list[float]] = field(default_factory=dict)  # place -> wall s of each job it finished
    open_s: dict[str, float] = field(default_factory=dict)  # place -> s to open its board link (not in job_s)

    def per_job_s(self, place: str) -> float | None:
        """Median wall seconds of one finished job on ``place`` (``None`` if it finished none)."""
        times = self.job_s.get(place)
        return statistics.median(times) if times else None


class FarmRunner:
    """Runs one suite on the farm into one store (see module docstring)."""

    def __init__(
        self,
        suite: Suite,
        opts: FarmOptions,
        *,
        progress: Progress | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        self.suite = suite
        self.opts = opts
        self.cache = opts.cache or default_cache_dir()
        self.progress = progress or Progress()
        self.say = on_status or (lambda _t: None)
        self.status = StatusFile(opts.status_path or default_status_path(opts.db), opts.coordinator)
        self.session: LabgridSession | None = None
        self.threads: dict[str, threading.Thread] = {}
        self.lost: set[str] = set()
        self.endpoints: dict[str, tuple[str, Endpoint]] = {}
        self._said: tuple[str, float] = ("", 0.0)
        self.store: SharedStore | None = None
        self.summary = FarmSummary(run_id=0)
        self._lock = threading.Lock()

    # ------------------------------------------------------------ top level
    def run(self) -> FarmSummary:
        t0 = time.monotonic()
        old = _sigterm_as_interrupt()
        try:
            self.session = LabgridSession(self.opts.coordinator, user=self.opts.user)
            store = SharedStore(self.opts.db)
        except BaseException:
            if self.session is not None:
                self.session.close()
            _restore_sigterm(old)
            raise
        s = self.suite
        run_id = store.begin_run(
            s.suite.name,
            str(s.path or ""),
            {**s.model_dump(mode="json", exclude={"path"}), "farm": {"coordinator": self.opts.coordinator}},
            str(host_summary()["host"]),
            git_revision(),
        )
        self.summary.run_id = run_id
        state = "failed"
        queue: JobQueue | None = None
        try:
            runner = Runner(s, store, cache=self.cache, progress=self.progress)  # type: ignore[arg-type]
            self.store = store
            jobs, skipped = expand(s, runner, run_id, self.cache, self.progress)
            self.summary.skipped_already_done = skipped
            self._check_places(jobs)
            queue = JobQueue(jobs)
            self.status.update(queue, state="running", total=len(jobs) + skipped, already_done=skipped)
            self.progress.phase("farm", len(jobs))
            if jobs:
                t_jobs = time.monotonic()
                self._schedule(queue, run_id)
                self.summary.jobs_s = time.monotonic() - t_jobs
            state = "done"
        except KeyboardInterrupt:
            state = "interrupted"
            raise
        finally:
            if queue is not None:
                queue.halt()
            stop_by = time.monotonic() + JOIN_S
            for th in list(self.threads.values()):
                th.join(max(0.0, stop_by - time.monotonic()))
            if self.session is not None:
                self.session.close()  # releases every place we hold
            for name in self.summary.places_used:
                self.status.place(name, state="released")
            self.status.update(queue, state=state, waiting="")
            store.end_run(run_id, state)
            store.close()
            _restore_sigterm(old)
            self.summary.wall_s = time.monotonic() - t0
        return self.summary

    # ------------------------------------------------------------ scheduling
    def _check_places(self, jobs: list[Job]) -> None:
        """Every named place exists and every candidate fits its board (clear errors up front)."""
        assert self.session is not None
        snap = self.session.snapshot()
        for board in sorted({j.board for j in jobs}):
            for name in candidates(snap, self.opts.profile.board(board)):
                check_fit(snap, name, board)

    def _schedule(self, queue: JobQueue, run_id: int) -> None:
        assert self.session is not None
        wait_since: dict[str, float] = {}
        while not queue.empty():
            waiting = queue.boards_waiting()
            live = self._live_boards()
            messages = []
            snap: Snapshot | None = None
            for board, n_pending in waiting.items():
                n_live = live.get(board, 0)
                cap = self.opts.max_places
                if cap is not None and n_live >= cap:
                    continue
                if n_live >= n_pending + self._running(queue, board):
                    continue
                got = self._restart_idle(board, queue, run_id, n_pending)
                try:
                    snap = snap or self.session.snapshot()
                except CoordinatorUnreachable as e:
                    if not n_live:
                        raise
                    messages.append(f"{e}; carrying on with the places already held")
                    continue
                got += self._acquire_some(snap, board, n_pending - got, queue, run_id)
                if got or n_live:
                    wait_since.pop(board, None)
                    continue
                since = wait_since.setdefault(board, time.monotonic())
                held = self._describe_busy(snap, board)
                msg = (
                    f"waiting for a free place of board {board} ({n_pending} job(s) queued; {held}) "
                    f"{time.monotonic() - since:.0f}/{self.opts.wait_s:.0f} s"
                )
                messages.append(msg)
                if time.monotonic() - since > self.opts.wait_s:
                    self.status.update(queue, waiting=msg)
                    raise NoFreePlace(
                        f"no free place of board {board} within {self.opts.wait_s:.0f} s ({held}); "
                        f"{n_pending} job(s) not run. Free or add a place (tag it board={board}), or raise "
                        "--wait; finished results are stored, the same command resumes"
                    )
            text = "; ".join(messages)
            if text != self.status.data.get("waiting"):
                self._say_throttled(text)
                self.status.update(queue, waiting=text)
            with queue.cv:
                queue.cv.wait(self.opts.poll_s)
            self.status.update(queue)

    def _say_throttled(self, text: str) -> None:
        """Print a waiting line when what we wait for changes, else every 10 s (not each poll)."""
        gist = re.sub(r"\d+/\d+ s", "", text)
        now = time.monotonic()
        if text and (gist != self._said[0] or now - self._said[1] >= 10):
            self.say(text)
            self._said = (gist, now)

    def _status_of(self, key: str) -> str | None:
        assert self.store is not None
        return self.store.status_of(key)

    def _running(self, queue: JobQueue, board: str) -> int:
        with queue.cv:
            return sum(1 for j, _ in queue.running.values() if j.board == board)

    def _live_boards(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with self._lock:
            for key, th in self.threads.items():
                if th.is_alive():
                    board = key.split("\0", 1)[0]
                    out[board] = out.get(board, 0) + 1
        return out

    def _describe_busy(self, snap: Snapshot, board: str) -> str:
        try:
            names = candidates(snap, self.opts.profile.board(board))
        except FrugalbenchError as e:
            return str(e)
        if not names:
            return f"no place is tagged board={board} and the farm profile names none"
        parts = []
        for n in names:
            p = snap.places[n]
            if n in self.lost:
                parts.append(f"{n} lost")
            elif p.acquired and n not in self.summary.places_used:
                parts.append(f"{n} held by {p.acquired}")
            elif not available(snap, n):
                parts.append(f"{n} offline")
            else:
                parts.append(f"{n} in use by this run")
        return ", ".join(parts)

    def _acquire_some(self, snap: Snapshot, board: str, want: int, queue: JobQueue, run_id: int) -> int:
        """Acquire up to ``want`` free, fitting places for ``board``; start a worker on each."""
        assert self.session is not None
        got = 0
        for name in candidates(snap, self.opts.profile.board(board)):
            if got >= want or (
                self.opts.max_places and self._live_boards().get(board, 0) >= self.opts.max_places
            ):
                break
            p = snap.places[name]
            if (
                name in self.lost
                or name in self.summary.places_used
                or p.acquired
                or not available(snap, name)
            ):
                continue
            endpoint(snap, name, board, resolve=False)  # a misfit place is an error before anything is locked
            t = time.perf_counter()
            try:
                after = self.session.acquire(name)
            except PlaceHeld:
                continue  # lost the race to another client
            dt = time.perf_counter() - t
            ep = endpoint(after, name, board)
            assert ep is not None
            self.summary.acquire_s[name] = dt
            self.summary.places_used.append(name)
            self.status.place(name, state="acquired", board=board, acquire_s=round(dt, 3), **ep.provenance())
            self.status.event(f"acquired {name} ({ep.url} via {ep.exporter}@{ep.host}) in {dt:.2f} s")
            self.say(f"acquired place {name} ({ep.url}, exporter {ep.exporter} on {ep.host}) in {dt:.2f} s")
            self._start_worker(board, ep, queue, run_id)
            got += 1
        return got

    # ------------------------------------------------------------ workers
    def _start_worker(self, board: str, ep: Endpoint, queue: JobQueue, run_id: int) -> None:
        th = threading.Thread(
            target=self._work, args=(board, ep, queue, run_id), name=f"farm-{ep.place}", daemon=True
        )
        with self._lock:
            self.threads[f"{board}\0{ep.place}"] = th
            self.endpoints[ep.place] = (board, ep)
        th.start()

    def _restart_idle(self, board: str, queue: JobQueue, run_id: int, want: int) -> int:
        """Put workers back on places we still hold whose worker ended (jobs came back to the queue)."""
        n = 0
        with self._lock:
            idle = [
                ep
                for b, ep in self.endpoints.values()
                if b == board
                and ep.place not in self.lost
                and not self.threads[f"{b}\0{ep.place}"].is_alive()
            ]
        for ep in idle[:want]:
            self._start_worker(board, ep, queue, run_id)
            n += 1
        return n

    def _work(self, board: str, ep: Endpoint, queue: JobQueue, run_id: int) -> None:
        target: PlacedTarget | None = None
        meter: Any = None
        done = int(self.status.data["places"].get(ep.place, {}).get("done", 0))
        job: Job | None = None
        # one SQLite connection per process (see sharedstore.py), shared by every worker
        assert self.store is not None
        runner = Runner(self.suite, self.store, cache=self.cache, progress=_Notes(self.status))  # type: ignore[arg-type]
        try:
            while True:
                job = queue.take(board)
                if job is None:
                    break
                job.attempts += 1
                job.history.append(ep.place)
                queue.start(job, ep.place)
                self.status.place(ep.place, state="running", job=job.label)
                self.status.update(queue)
                fault: BaseException | None = None
                t_job = time.perf_counter()
                try:
                    if target is None:
                        target = PlacedTarget(job.tab, ep, {"farm_coordinator": self.opts.coordinator})
                        target.open()
                        meter = make_meter(dict(self.suite.meter), target)
                        meter.open()
                        self._opened(ep.place, time.perf_counter() - t_job)
                        t_job = time.perf_counter()
                    target.fault = None
                    target.extra.update(farm_attempt=job.attempts, farm_places_tried=list(job.history))
                    runner.measure_job(run_id, job.base, job.variant, job.tab, target, meter)
                    status = self._status_of(job.key)
                    if status == "failed" and target.fault is not None:
                        fault = target.fault
                except (TargetError, OSError, EOFError, FrugalbenchError) as e:
                    fault = e
                except Exception as e:  # noqa: BLE001 - e.g. serial.SerialException: the link dropped
                    fault = e
                if fault is None:
                    job_s = time.perf_counter() - t_job
                    done += 1
                    self._count(job, runner, ep.place, job_s)
                    queue.finish(job)
                    self.status.place(ep.place, state="idle", job="", done=done, last_job_s=round(job_s, 3))
                    self.progress.advance(f"{job.label} on {ep.place}")
                    job = None
                    continue
                lost = not self._healthy(ep, target)
                self._retry_or_fail(job, fault, ep, queue, run_id, runner, lost)
                job = None
                if target is not None:
                    target.close()
                    target = None
                if meter is not None:
                    meter.close()
                    meter = None
                if lost:
                    self.lost.add(ep.place)
                    self.summary.places_lost.append(ep.place)
                    self.status.place(
                        ep.place, state="lost", job="", reason=f"{type(fault).__name__}: {fault}"
                    )
                    self.status.event(f"place {ep.place} lost: {fault}")
                    self.say(f"place {ep.place} lost ({type(fault).__name__}: {fault}); its job is re-queued")
                    break
        except Exception as e:  # noqa: BLE001 - a bug must not kill the run silently
            self.status.event(f"worker on {ep.place} stopped: {type(e).__name__}: {e}")
            self.say(f"worker on {ep.place} stopped: {type(e).__name__}: {e}")
        finally:
            if job is not None:  # interrupted or crashed mid-job: nothing was stored, run it elsewhere
                queue.finish(job, requeue=True)
            if meter is not None:
                meter.close()
            if target is not None:
                target.close()
            if ep.place in self.lost and self.session is not None:
                with contextlib.suppress(FrugalbenchError):
                    self.session.release(ep.place)

    def _healthy(self, ep: Endpoint, target: PlacedTarget | None) -> bool:
        """The place is still ours, online, and its board answers a fresh connection."""
        assert self.session is not None
        try:
            snap = self.session.snapshot()
        except CoordinatorUnreachable:
            snap = None
        if snap is not None:
            p = snap.places.get(ep.place)
            if p is None or p.acquired != snap.me or not available(snap, ep.place):
                return False
        if target is None:
            return False
        try:
            target.close()
            target.open()
        except Exception:  # noqa: BLE001 - any failure to reopen means the board is gone
            return False
        return True

    def _retry_or_fail(
        self,
        job: Job,
        fault: BaseException,
        ep: Endpoint,
        queue: JobQueue,
        run_id: int,
        runner: Runner,
        lost: bool,
    ) -> None:
        why = f"{type(fault).__name__}: {fault}"
        if job.attempts < self.opts.attempts:
            with self._lock:
                self.summary.requeued += 1
            self.status.event(f"re-queued {job.label} (attempt {job.attempts} on {ep.place} failed: {why})")
            queue.finish(job, requeue=True)
            return
        reason = f"failed on {job.attempts} place attempt(s) ({', '.join(job.history)}); last: {why}"
        if self._status_of(job.key) != "failed" or lost:
            with contextlib.suppress(FrugalbenchError):
                runner.save_result(
                    run_id, job.base, job.variant, job.tab, None, status="failed", reason=reason
                )
        with self._lock:
            self.summary.failed += 1
        self.status.event(f"gave up on {job.label}: {reason}")
        queue.finish(job)
        self.progress.advance(f"{job.label} failed")

    def _opened(self, place: str, seconds: float) -> None:
        with self._lock:
            self.summary.open_s[place] = self.summary.open_s.get(place, 0.0) + seconds

    def _count(self, job: Job, runner: Runner, place: str, seconds: float) -> None:
        """Count a finished job (done or failed in the store) and its wall time on ``place``."""
        status = self._status_of(job.key)
        with self._lock:
            self.summary.job_s.setdefault(place, []).append(seconds)
            if status == "failed":
                self.summary.failed += 1
            else:
                self.summary.done += 1


class _Notes(Progress):
    """Runner notes (a failed job...) go to the status file's event list."""

    def __init__(self, status: StatusFile) -> None:
        self.status = status

    def note(self, text: str) -> None:
        self.status.event(text)


def _sigterm_as_interrupt() -> Any:
    """SIGTERM behaves like Ctrl-C (places are released on the way out); returns the old handler."""

    def handler(_sig: int, _frm: Any) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (tests): leave it
        return signal.getsignal(signal.SIGTERM)


def _restore_sigterm(old: Any) -> None:
    with contextlib.suppress(ValueError, TypeError):
        signal.signal(signal.SIGTERM, old)


def farm_run(suite: Suite, opts: FarmOptions, **kw: Any) -> FarmSummary:
    """Run ``suite`` on the farm described by ``opts`` (see :class:`FarmRunner`)."""
    return FarmRunner(suite, opts, **kw).run()
