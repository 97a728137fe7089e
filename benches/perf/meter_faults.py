"""LPM01A measurement windows through a fault-injecting link: is a wrong energy ever judged valid?

The byte-level LPM01A emulator (:mod:`harness.emulators.lpm01a`, served on ``socket://``) sits behind
the fault proxy (:mod:`harness.emulators.faultproxy`), which injects every fault kind (drop, flip,
garbage, stall, close) in both directions at random byte positions. The real driver
(:class:`harness.meters.lpm01a.Lpm01a`, 1 kHz, ``output energy``) runs window after window: ``start``,
wait past the DUT's marker pulse, ``stop``, then integrate between the two D7 ``event`` markers
(:meth:`window_energy`, ``gpio``). On any error or lost link the meter is closed and opened again, as
the runner does before it re-runs an invalid window.

The truth is exact: a square power profile (2 mW / 20 mW, 10 ms half period) whose marker pulse
spans whole samples, so the energy between the markers is :meth:`Profile.energy`. The only error of a
fault-free window is the 4-digit mantissa of each sample (at most half a unit of the 4th digit,
5e-4 relative): a window judged valid whose energy differs from the truth by more than that is a
wrong result. A window that does not finish within ``WINDOW_LIMIT_S`` is a hang.

Measured here (2 shared cores, seed 7, 1/6000 faults per byte each way, 0.8 s stalls, command
timeout 0.5 s; two runs at once):

* all kinds: 1,001 faults (down: 203 close, 204 drop, 214 flip, 180 garbage, 187 stall; up: 13) over
  1,588 windows in 435 s: 793 valid, 795 invalid (re-run), 0 hangs, 0 errors escaping as
  non-frugalbench errors, ``wrong_results_stored=3``: each a down-link bit flip that turned one
  mantissa digit of one sample into another digit (windows off by +0.06 %, -0.55 %, -0.6 %: beyond the
  5e-4 quantization bound, inside the board's ±2 % accuracy). ``ascii_dec`` lines carry no checksum,
  so no driver can see such a flip; on the real board the USB CDC link checks every packet (CRC16) and
  resends, so flips do not reach the host there. Flipped exponents are caught (range check).
* drop, garbage, stall, close: 1,000 faults (down: 221 close, 270 drop, 250 garbage, 244 stall; up:
  15) over 1,644 windows in 495 s: 843 valid, 801 invalid, 0 hangs, ``wrong_results_stored=0``.

Usage: ``python benches/perf/meter_faults.py [faults] [kinds]`` (default 1000 faults, all kinds;
``kinds`` is a comma list). Last line: ``wrong_results_stored=<n>``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from typing import Any

from harness.emulators.base import EmulatorServer
from harness.emulators.faultproxy import KINDS, FaultPlan, FaultProxy
from harness.emulators.lpm01a import Lpm01aEmulator
from harness.emulators.profile import Profile
from harness.errors import FrugalbenchError
from harness.meters.lpm01a import Lpm01a, Lpm01aConfig
from harness.meters.trace import HostWindow, Trace
from harness.meters.windows import EnergyWindow

RATE = 1 / 6000  # faults per forwarded byte, each direction
SPEED = 4.0  # emulator virtual seconds per wall second
FREQ_HZ = 1000
PULSE = (0.05, 0.35)  # the DUT's marker pulse (virtual s): whole samples at 1 kHz
SPAN_S = 0.42  # virtual seconds recorded per window
REL_TOL = 5e-4  # 4-digit mantissa: half a unit of the 4th digit per sample
WINDOW_LIMIT_S = 20.0  # longest: a few command timeouts + stop timeout + reconnect
VERBOSE = False


def one_window(meter: Lpm01a, need_open: bool) -> tuple[EnergyWindow, Trace]:
    """(Re)open if needed, then one runner window: ``begin_window``, the DUT's pulse, ``end_window``.

    Raises MeterError / WindowInvalid when the link fails (the runner re-runs the window)."""
    if need_open:
        meter.close()
        meter.open()
    meter.begin_window()
    t_start = time.perf_counter()
    time.sleep(SPAN_S / SPEED)
    t_end = time.perf_counter()
    trace = meter.stop()
    return meter.energy_window(trace, HostWindow(t_start, t_end)), trace


def run_with_limit(fn: Any, limit_s: float) -> tuple[bool, dict[str, Any]]:
    box: dict[str, Any] = {}

    def go() -> None:
        try:
            box["v"] = fn()
        except FrugalbenchError as e:
            box["err"] = e
        except Exception as e:  # noqa: BLE001 - counted: anything but a FrugalbenchError is a bug
            box["err"] = e
            box["escaped"] = True

    th = threading.Thread(target=go, daemon=True)
    th.start()
    th.join(limit_s)
    return not th.is_alive(), box


def main() -> None:
    want = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    kinds = tuple(sys.argv[2].split(",")) if len(sys.argv) > 2 else KINDS
    prof = Profile(kind="square", low_w=0.002, high_w=0.02, dt=0.01, windows=[PULSE])
    truth = prof.energy(*PULSE)
    t0 = time.monotonic()
    valid = invalid = wrong = hangs = escaped = windows = 0
    reasons: Counter[str] = Counter()
    emu = Lpm01aEmulator(prof, speed=SPEED)
    with EmulatorServer(emu) as srv:
        host, _, port = srv.url[len("socket://") :].partition(":")
        with FaultProxy((host, int(port)), FaultPlan(seed=1)) as fp:
            meter = Lpm01a(
                Lpm01aConfig(kind="lpm01a", url=fp.url, freq_hz=FREQ_HZ, timeout_s=0.5, marker_method="gpio")
            )
            meter.open()
            clean, _ = one_window(meter, False)  # the bench's own check, before any fault
            assert clean.valid and abs(clean.e_win_j - truth) <= REL_TOL * truth, (clean, truth)
            fp.set_plan(FaultPlan(rate=RATE, kinds=kinds, stall_s=0.8, seed=7))
            need_open = False
            while len(fp.log) < want:
                n_before = len(fp.log)
                done, box = run_with_limit(lambda n=need_open: one_window(meter, n), WINDOW_LIMIT_S)
                windows += 1
                if not done:
                    hangs += 1
                    print(f"window {windows}: hang (over {WINDOW_LIMIT_S:.0f} s)", flush=True)
                    break  # the driver is stuck in another thread: stop here
                if "err" in box:
                    invalid += 1
                    escaped += int(box.get("escaped", False))
                    reasons[type(box["err"]).__name__] += 1
                    if VERBOSE:
                        print(
                            f"window {windows}: {type(box['err']).__name__}: {box['err']}"[:300], flush=True
                        )
                    need_open = True  # what the runner does: reopen the meter, re-run the window
                    continue
                need_open = False
                w, trace = box["v"]
                if not w.valid:
                    invalid += 1
                    reasons["EnergyWindow.valid=False"] += 1
                    continue
                valid += 1
                if not abs(w.e_win_j - truth) <= REL_TOL * truth:
                    wrong += 1
                    print(f"window {windows}: WRONG {w.e_win_j:.9g} J vs {truth:.9g} J", flush=True)
                    if VERBOSE:
                        print(f"  faults {fp.log[n_before:]}; markers {trace.markers}", flush=True)
                        bad = [
                            (i, v)
                            for i, v in enumerate(trace.power_w)
                            if abs(v - prof.level([int(i / FREQ_HZ / prof.dt)])[0]) > 1e-3 * v
                        ]
                        print(f"  samples {len(trace.power_w)} off-profile {bad[:5]}", flush=True)
                if windows % 50 == 0:
                    print(
                        f"{windows} windows, {len(fp.log)} faults, {time.monotonic() - t0:.0f} s", flush=True
                    )
            fp.set_plan(FaultPlan())
            if hangs == 0:
                meter.close()
            counts = fp.counts()
    print("faults by direction/kind: " + ", ".join(f"{d}/{k}={n}" for (d, k), n in sorted(counts.items())))
    print("invalid windows by error: " + ", ".join(f"{k}={n}" for k, n in sorted(reasons.items())))
    print(f"windows={windows} exact_j={truth:.9g} rel_tol={REL_TOL:g} errors_not_frugalbench={escaped}")
    print(f"wall_s={time.monotonic() - t0:.0f} rate_per_byte={RATE:.5f} kinds={','.join(kinds)}")
    print(f"faults_injected={sum(counts.values())}")
    print(f"windows_valid={valid}")
    print(f"windows_invalid={invalid}")
    print(f"hangs={hangs}")
    print(f"wrong_results_stored={wrong}")


if __name__ == "__main__":
    main()
