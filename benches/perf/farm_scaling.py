"""Farm scaling: the same job list on one place and on two places of a real labgrid farm, in one run.

Starts a ``labgrid-coordinator`` and one emulated host (an exporter with two QEMU boards running our
firmware) on localhost, builds the variants once (not timed), then runs the job list into a fresh
store with ``max_places=1`` and with two places, alternating ``--rounds`` times. Jobs per minute count
the scheduling phase only (first acquire to last result). Last line:
``farm_scaling_2_places=<jobs per minute with 2 / with 1>`` (median of the per-round ratios). Goal ≥ 1.7 on a 2-core
machine (the firmware idles in WFI, so a waiting board costs almost no host CPU).

    python benches/perf/farm_scaling.py [--jobs 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from harness.farm.emuhost import EmuHost, LocalCoordinator  # noqa: E402
from harness.farm.profile import FarmProfile  # noqa: E402
from harness.farm.run import FarmOptions, farm_run  # noqa: E402
from harness.suite import load_suite  # noqa: E402

SUITE = """
[suite]
name = "farm-scaling"
[run]
warmup_s = 0.0
window_s = 0.02
min_windows = 3
max_windows = 3
ci_target = 0.5
time_budget_s = 60
[[tasks]]
name = "digits"
recipe = "digits_mlp"
recipe_params = {{ hidden = [64] }}
min_accuracy = 0.5
{variants}
[[targets]]
name = "m4"
kind = "mcu"
board = "qemu-mps2-an386"
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        variants = "".join(  # the MCU runs static int8: prune, then quantise
            f'[[variants]]\nname = "p{i}"\nsteps = [{{ technique = "prune-weights", sparsity = {0.05 + 0.1 * i:.2f} }}, '
            '{ technique = "int8" }]\n'
            for i in range(a.jobs)
        )
        (work / "s.toml").write_text(SUITE.format(variants=variants), encoding="utf-8")
        suite = load_suite(work / "s.toml")
        coord = LocalCoordinator(work / "coordinator").start()
        addr = coord.address
        host = EmuHost(addr, "bench", 2, work / "host").start()
        prof = FarmProfile(boards=[{"board": "qemu-mps2-an386", "places": host.places}])
        try:
            farm_run(
                suite, FarmOptions(addr, work / "warm.sqlite", cache=work / "cache", profile=prof)
            )  # builds
            rates: dict[int, list[float]] = {1: [], 2: []}
            acq: list[float] = []
            for r in range(a.rounds):
                for places in (1, 2):
                    opts = FarmOptions(
                        addr,
                        work / f"r{r}-{places}.sqlite",
                        cache=work / "cache",
                        profile=prof,
                        max_places=places,
                    )
                    s = farm_run(suite, opts)
                    assert s.done == a.jobs, s
                    rates[places].append(60 * s.done / s.jobs_s)
                    acq += list(s.acquire_s.values())
                    print(
                        f"round {r}: {places} place(s): {s.done} jobs in {s.jobs_s:.2f} s = "
                        f"{rates[places][-1]:.1f} jobs/min (acquire {', '.join(f'{v * 1e3:.0f} ms' for v in s.acquire_s.values())})"
                    )
        finally:
            host.stop()
            coord.stop()
        ratios = [b / a_ for a_, b in zip(rates[1], rates[2], strict=True)]  # paired by round
        one, two = statistics.median(rates[1]), statistics.median(rates[2])
        print(
            f"acquire median {1e3 * statistics.median(acq):.0f} ms (persistent labgrid session; {len(acq)} acquires)"
        )
        print(
            f"jobs/min: 1 place {one:.1f}, 2 places {two:.1f}; per-round ratios {', '.join(f'{r:.2f}' for r in ratios)}"
        )
        print(
            f"load average at start {load0:.2f}, at end {os.getloadavg()[0]:.2f} (other processes skew both sides)"
        )
        print(f"farm_scaling_2_places={statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
