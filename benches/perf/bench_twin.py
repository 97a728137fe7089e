"""The bench twin through ``frugalbench run``: stored energy per inference against the twin's exact energy.

For each meter (LPM01A at 1 kHz ``output energy``, PPK2 at 100 kS/s in source mode) the example suite
(``benches/examples/bench-twin*.toml``: digits MLP int8 on the emulated Cortex-M4, 1.2 s windows on the
STM32L4R5's 120 MHz clock, 1.8 V) runs twice through the runner and the store: once clean, once with a
dropped-samples window, a missing-marker window and a lost-meter window. The error is
|stored E/inference − exact E/inference| / exact, exact = the twin's energy between the marker edges
of the clean windows (integral of the power model's current × the meter's voltage) / N.

Measured here (2 shared cores, QEMU 7.2, -icount shift=0), one run:

* lpm01a: clean 3 windows of N=15,156 inferences (1.2 s on the 120 MHz clock), 0.29 s wall per window,
  error 0.022 % (the 1 kHz sample holding each marker edge, the 4-digit mantissa); with faults 6 windows,
  3 stored invalid and re-run (buffer overflow + 20 samples dropped; no markers; connection lost, meter
  reopened), error 0.020 %.
* ppk2: clean 3 windows, 0.60 s wall per window, error 0.010 % (14-bit ADC in range 2); with faults 6
  windows, 3 invalid and re-run (20 samples dropped by the counter; no markers; connection lost), 0.009 %.
* ``twin_energy_error_pct=0.0224``; over four runs 0.022-0.053 (the LPM01A's edge samples move with
  where the marker edges fall in a 1 ms sample); wall time per window 0.3-0.8 s with the machine's load.

Usage: ``python benches/perf/bench_twin.py``. Last line: ``twin_energy_error_pct=<worst of the two>``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from harness.emulators.base import EmulatorServer
from harness.emulators.twin import BenchTwin, PowerModel, TwinFaults, TwinWindow, twin_meter
from harness.pipeline.api import run_suite
from harness.results.store import Store

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SUITES = {"lpm01a": "bench-twin.toml", "ppk2": "bench-twin-ppk2.toml"}
FAULTS = [
    TwinFaults(window=1, drop_n=20, drop_at_s=0.2),
    TwinFaults(window=3, miss_marker=True),
    TwinFaults(window=5, lose_meter_at_s=0.3),
]


def run(meter: str, faults: list[TwinFaults], tmp: Path) -> dict[str, object]:
    twin = BenchTwin(PowerModel.from_board("qemu-mps2-an386"), faults=faults)
    done_at: list[float] = []

    def seen(_w: TwinWindow) -> None:
        done_at.append(time.perf_counter())

    twin.on_window = seen
    with twin, EmulatorServer(twin_meter(meter, twin)) as srv:
        text = (EXAMPLES / SUITES[meter]).read_text()
        text = text.replace("socket://127.0.0.1:7101", srv.url).replace("socket://127.0.0.1:7102", twin.url)
        suite = tmp / f"{meter}-{len(faults)}.toml"
        suite.write_text(text)
        db = tmp / f"{meter}-{len(faults)}.sqlite"
        results = run_suite(suite, db=db)
    r = results[0]
    if r.status != "done" or r.id is None:
        raise SystemExit(f"{meter}: run {r.status}: {r.reason}")
    with Store.open(db, create=False) as store:
        rows = store.windows(r.id)
    good = [w for w in rows if w["valid"]]
    clean = [w for w in twin.windows if not w.faulted]
    exact = float(np.median([w.energy_j for w in clean])) / good[0]["n"]
    measured = r.energy.per_inference_j
    assert measured is not None
    return {
        "error_pct": abs(measured - exact) / exact * 100,
        "windows": len(rows),
        "invalid": [w["problem"][:60] for w in rows if not w["valid"]],
        "n": good[0]["n"],
        "s_per_window": float(np.median(np.diff(done_at))) if len(done_at) > 1 else float("nan"),
        "class": r.energy.measurement_class,
        "markers": r.energy.marker_method,
        "e_uj": measured * 1e6,
        "exact_uj": exact * 1e6,
    }


def main() -> None:
    worst = 0.0
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for meter in SUITES:
            for label, faults in (("clean", []), ("faults", FAULTS)):
                r = run(meter, faults, tmp)
                print(
                    f"{meter}_{label}: class={r['class']} markers={r['markers']} windows={r['windows']} "
                    f"n={r['n']} s_per_window={r['s_per_window']:.3f} e_uj={r['e_uj']:.6f} "
                    f"exact_uj={r['exact_uj']:.6f} error_pct={r['error_pct']:.4f}"
                )
                for p in r["invalid"]:  # type: ignore[attr-defined]
                    print(f"  invalid, re-run: {p}")
                worst = max(worst, float(r["error_pct"]))  # type: ignore[arg-type]
    print(f"twin_energy_error_pct={worst:.4f}")


if __name__ == "__main__":
    main()
