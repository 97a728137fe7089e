"""The one integrator, the one poller, the meter's begin/end window and the timed-window loop."""

from __future__ import annotations

import ast
import time
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from harness.errors import MeterError, ProtocolError, TargetError
from harness.meters.base import Meter, MeterConfig, MeterInfo
from harness.meters.energy import cumulative, mean_power, window_energy
from harness.meters.poller import Poller
from harness.meters.trace import HostWindow, Trace
from harness.meters.windows import host_window
from harness.pipeline.measure import MAX_RETRIES, measure
from harness.suite import RunRules
from harness.targets.base import Target, Window

METERS_DIR = Path(__file__).resolve().parents[1] / "harness" / "meters"


# --- one integrator -------------------------------------------------------------------------------
def test_polled_power_is_the_integral_of_its_linear_interpolant() -> None:
    tr = Trace(t_s=np.array([0.0, 1.0, 2.0, 4.0]), power_w=np.array([1.0, 3.0, 3.0, 1.0]))
    # on [0.5, 3.0]: 0.5 s rising 2→3 W (1.25 J), 1 s at 3 W (3 J), 1 s falling 3→2 W (2.5 J)
    assert window_energy(tr, 0.5, 3.0) == pytest.approx(6.75, rel=1e-15)
    assert mean_power(tr, 0.5, 3.0) == pytest.approx(6.75 / 2.5, rel=1e-15)
    w = host_window(tr, 0.5, 3.0, 3)  # energy windows integrate with the same function
    assert w.valid and w.e_win_j == window_energy(tr, 0.5, 3.0)


def test_counter_and_sampled_traces() -> None:
    counter = Trace(t_s=np.array([10.0, 11.0, 12.0]), energy_j=np.array([100.0, 102.0, 106.0]))
    assert window_energy(counter, 10.5, 11.5) == pytest.approx(1.0 + 2.0)
    assert list(cumulative(counter)[1]) == [0.0, 2.0, 6.0]
    # each sample is the mean power of its period [i/r, (i+1)/r): edges carry the cumulative energy
    sampled = Trace(t_s=np.array([0.25, 0.75]), power_w=np.array([2.0, 4.0]), rate_hz=2.0, host_aligned=False,
                    extra={"edges_energy_j": np.array([0.0, 1.0, 3.0])})  # fmt: skip
    assert window_energy(sampled, 0.0, 1.0) == pytest.approx(3.0)
    assert window_energy(sampled, 0.25, 0.75) == pytest.approx(0.5 + 1.0)


def test_uncovered_or_empty_windows_are_refused() -> None:
    tr = Trace(t_s=np.array([0.0, 1.0]), power_w=np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="not covered"):
        window_energy(tr, 0.5, 1.5)
    with pytest.raises(ValueError, match="not after"):
        window_energy(tr, 0.5, 0.5)


def _relative_imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            out |= {node.module} if node.module else {a.name for a in node.names}
    return out


def test_measurement_modules_import_without_a_cycle() -> None:
    graph = {
        p.stem: _relative_imports(p) & {q.stem for q in METERS_DIR.glob("*.py")}
        for p in METERS_DIR.glob("*.py")
    }
    assert "base" not in graph["energy"] and "base" not in graph["trace"]
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"import cycle: {' -> '.join((*path, node))}"
        if node not in done:
            for nxt in graph.get(node, set()):
                visit(nxt, (*path, node))
            done.add(node)

    for m in graph:
        if m != "__init__":
            visit(m, ())


# --- one poller -------------------------------------------------------------------------------------
def test_poller_readings_span_start_to_stop_even_when_slow() -> None:
    values = iter(range(100))
    p = Poller(lambda: float(next(values)), poll_hz=0.01)  # one reading per 100 s on the thread
    p.start()
    t_started = time.perf_counter()
    t_stop = time.perf_counter()
    p.stop()
    assert p.t[0] <= t_started and p.t[-1] >= t_stop and p.v == [0.0, 1.0]
    assert not p.running and p.problems() == []


def test_poller_classifies_failures_and_keeps_the_loss() -> None:
    outcomes: list[object] = [1.0, ProtocolError("bad checksum"), MeterError("no reply"), 2.0, 3.0]

    def read() -> float:
        o = outcomes.pop(0) if outcomes else 4.0
        if isinstance(o, Exception):
            raise o
        return float(o)  # type: ignore[arg-type]

    p = Poller(read, poll_hz=200)
    p.start()
    deadline = time.monotonic() + 30
    while len(p.v) < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    p.stop()
    assert p.rejected == ["bad checksum"] and p.missed == 1
    assert p.problems() == ["bad checksum", "1 polls got no reply"]
    tr = p.power_trace()
    assert not tr.valid and tr.dropped == 2

    def unplugged() -> float:
        raise OSError("device gone")

    lost = Poller(unplugged, poll_hz=200)
    lost.start()
    lost.stop()
    assert lost.t == [] and isinstance(lost.error, OSError) and "connection lost: device gone" in lost.lost


# --- begin/end window and the timed-window loop -------------------------------------------------------
class ScriptedMeter(Meter):
    """A host-clock meter whose stop() returns the next scripted trace (or raises it)."""

    name = "scripted"

    def __init__(self, traces: list[Trace | Exception]) -> None:
        super().__init__(MeterConfig(kind="scripted"))
        self.traces = traces
        self.started = 0

    def open(self) -> None:
        pass

    def start(self) -> None:
        self.started += 1

    def stop(self) -> Trace:
        t = self.traces.pop(0)
        if isinstance(t, Exception):
            raise t
        return t

    def info(self) -> MeterInfo:
        return MeterInfo("external", "scripted", "board", None, "exact", "host-clock")


GOOD = Trace(t_s=np.array([0.0, 100.0]), power_w=np.array([2.0, 2.0]))


class StepTarget:
    """Windows of 4 inferences, 1 s apart on the host clock, latencies 10 ms."""

    def __init__(self) -> None:
        self.k = 0

    def window(self, duration_s: float, *, warmup_s: float = 0.0) -> Window:
        self.k += 1
        return Window(4, float(self.k), self.k + 0.5, np.full(4, 0.01), 0.4, extra={"k": self.k})


def step_target() -> Target:
    return cast(Target, StepTarget())


def test_end_window_gets_the_window_and_says_why_it_is_invalid() -> None:
    w = StepTarget().window(0.5)
    m = ScriptedMeter([GOOD, Trace(t_s=GOOD.t_s, power_w=GOOD.power_w, valid=False, problem="lost"),
                       Trace(t_s=np.array([0.0, 1.2]), power_w=np.array([2.0, 2.0]))])  # fmt: skip
    m.begin_window()
    ew = m.end_window(w)
    assert ew.valid and ew.e_win_j == pytest.approx(1.0) and ew.method == "host-clock"
    assert (ew.n, ew.t0, ew.t1, ew.n_samples) == (4, 1.0, 1.5, 0) and ew.e_per_inf_j == pytest.approx(0.25)
    m.begin_window()
    assert m.end_window(w).problem == "lost"
    m.begin_window()
    bad = m.end_window(w)
    assert not bad.valid and bad.problem.startswith("energy window not covered by the meter trace")
    m.traces = [GOOD]
    assert m.end_window(HostWindow(10.0, 10.5)).mean_power_w == pytest.approx(2.0)


def test_measure_reruns_invalid_windows_and_stores_them() -> None:
    dropped = Trace(t_s=GOOD.t_s, power_w=GOOD.power_w, dropped=3)
    m = ScriptedMeter([GOOD, dropped, MeterError("cable pulled"), GOOD, GOOD])
    res = measure(step_target(), m, RunRules(min_windows=3, max_windows=3, warmup_s=0.0))
    assert [r.valid for r in res.rows] == [True, False, False, True, True]
    assert [r.problem for r in res.rows[1:3]] == ["3 samples dropped", "cable pulled"]
    assert (res.rows[1].n, res.rows[2].n) == (4, 0)  # a lost link leaves no window
    assert [ew.e_win_j for _, ew in res.good] == pytest.approx([1.0, 1.0, 1.0])
    assert res.rows[0].energy_j == pytest.approx(1.0) and res.rows[0].extra["k"] == 1
    assert res.p_idle_w is None and res.ci_rel >= 0
    always = Trace(t_s=np.array([0.0, 1e12]), power_w=np.array([2.0, 2.0]))  # covers any perf_counter instant
    idle = measure(
        step_target(), ScriptedMeter([always] * 2), RunRules(min_windows=1, max_windows=1, idle_s=0.01)
    )
    assert idle.p_idle_w == pytest.approx(2.0) and len(idle.rows) == 1

    failing = ScriptedMeter([dropped] * (MAX_RETRIES + 1))
    with pytest.raises(TargetError, match=f"{MAX_RETRIES + 1} invalid windows in a row"):
        measure(step_target(), failing, RunRules(min_windows=1, max_windows=2))
