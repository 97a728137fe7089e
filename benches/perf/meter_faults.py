"""Meter windows through a fault-injecting link: is a wrong energy ever judged valid?

A byte-level meter emulator (LPM01A :mod:`harness.emulators.lpm01a` or PPK2 :mod:`harness.emulators.ppk2`,
served on ``socket://``) sits behind the fault proxy (:mod:`harness.emulators.faultproxy`), which injects
every fault kind (drop, flip, garbage, stall, close) in both directions at random byte positions. The real
driver runs window after window: ``begin_window``, wait past the DUT's marker pulse, ``stop``, then
integrate between the markers (``gpio``: LPM01A D7 ``event`` lines, PPK2 logic input D0). On any error or
lost link the meter is closed and opened again, as the runner does before it re-runs an invalid window.
``jobs_failed`` counts the times more than :data:`harness.pipeline.measure.MAX_RETRIES` windows in a row
were invalid: the runner would have failed that job. A window that does not finish within
``WINDOW_LIMIT_S`` is a hang.

The truth is exact: a square power profile (2 mW / 20 mW, 10 ms half period) whose marker pulse spans
whole samples, so the energy between the markers is :meth:`Profile.energy`.

**What "wrong" means.** Neither stream has a checksum (LPM01A ``ascii_dec`` lines, PPK2 4-byte frames),
so a bit flip that turns a value into another valid value cannot be seen by any driver: a mantissa digit
into another digit, the exponent's last digit into its neighbour (a sample ×10 or ÷10), a leading digit
into ``0`` (a zero sample), a PPK2 ADC bit, or a range bit that names another valid range. Everything
else is seen and makes the window invalid (``tests/test_meter_flips.py`` enumerates every single-bit
flip of a sample). On the real instruments the USB CDC link (CRC16 per packet, resent on error) keeps
flips from reaching the host at all; the proxy here flips bytes after that check would have run. So a
valid window is *wrong* when its energy is off the truth by more than the meter's stated accuracy
(LPM01A ±2 %, UM2243 §9; PPK2 ±10 %, Nordic's spec), the error the instrument itself may have. Windows
off by more than the mantissa/ADC quantization but within the accuracy are counted separately
(``windows_off_within_accuracy``, with the largest error), never hidden. ``worst_unseen_flip_rel`` is the
largest window error one unseen flip can cause here, found by running every single-bit flip of every
sample value this profile produces through the driver's own parser: it bounds what a flip can do. In
general one unseen flip changes one sample: on the LPM01A by at most 9 × its value (×10 at most), so a
window moves by at most 9 × (largest sample) / (window energy); on the PPK2 to at most 1.1 A (a larger
reading is refused), i.e. 1.1 A × V / 100 kHz of energy. Long windows (MLPerf Tiny's ≥ 10 s) shrink
both. The run also counts a hang when ``STUCK_WINDOWS`` windows in a row fail with no new fault
injected (the rig stopped moving).

Measured here (2 shared cores, seed 7, 0.8 s stalls, command timeout 0.5 s, the two meters at once;
thread timing varies the windows from run to run: an earlier run of each gave the same 0 wrong, 0 hangs):

* LPM01A (1 kHz, 1/6000 faults per byte, 0.42 s windows at 4× speed): 1,001 faults (down: 204 close,
  204 drop, 217 flip, 182 garbage, 187 stall; up: 7) over 1,600 windows in 434 s: 794 valid, 806
  invalid (re-run), 0 hangs, 0 errors escaping as non-frugalbench errors, ``wrong_results_stored=0``;
  4 valid windows off by more than the mantissa quantization (0.06 %, 0.12 %, 0.24 %, 0.55 %; the
  largest is one sample's exponent digit flipped, -08 → -09), all within ±2 %; worst one unseen flip
  here: 1.21 % (a leading 2 → 6 on a 20 mW sample). ``jobs_failed=70``: runs of 4 invalid windows at
  this fault rate (about one fault per window).
* PPK2 (100 kS/s, 1/20000 faults per byte, 0.05 s windows at 1× speed): 1,001 faults (down: 204 close,
  208 drop, 218 flip, 183 garbage, 188 stall) over 1,607 windows in 357 s: 313 valid, 1,294 invalid,
  0 hangs, 0 escaping errors, ``wrong_results_stored=0``; 3 valid windows off beyond quantization
  (0.48 %, 5.1 %, 5.1 %: the latter a range bit, range 1 read as range 3 in one sample), within ±10 %;
  worst one unseen flip here: 5.1 %. ``jobs_failed=256``: a 0.8 s stall outlasts several 0.05 s
  windows ("no samples received"), so each stall spoils 3–4 windows in a row; with the runner's ≥ 1 s
  windows it spoils one.

Usage: ``python benches/perf/meter_faults.py [--meter lpm01a|ppk2|all] [--faults N] [--kinds k1,k2]``
(default: all meters, 1000 faults each, all kinds). Prints per-meter figures (``lpm01a_…=``), then the
totals; last line: ``wrong_results_stored=<n>``.
"""

from __future__ import annotations

import argparse
import faulthandler
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.emulators import lpm01a as lpm_emu
from harness.emulators import ppk2 as ppk_emu
from harness.emulators.base import EmulatorServer, MeterEmulator
from harness.emulators.faultproxy import KINDS, FaultPlan, FaultProxy
from harness.emulators.profile import Profile
from harness.errors import FrugalbenchError
from harness.meters import lpm01a, ppk2
from harness.meters.base import Meter
from harness.meters.trace import HostWindow, Trace
from harness.meters.windows import EnergyWindow
from harness.pipeline.measure import MAX_RETRIES

WINDOW_LIMIT_S = 20.0  # longest: a few command timeouts + stop timeout + reconnect
STUCK_WINDOWS = 50  # failed windows in a row without a new fault: nothing moves on the link any more
LOW_W, HIGH_W = 0.002, 0.02
VOLTS = 3.3
VERBOSE = False


@dataclass(frozen=True)
class Setup:
    """One meter on the faulty link: its emulator, driver, window and what counts as wrong."""

    name: str
    rate: float  # faults per forwarded byte, each direction
    speed: float  # emulator virtual seconds per wall second
    pulse: tuple[float, float]  # the DUT's marker pulse (virtual s): whole samples
    span_s: float  # virtual seconds recorded per window
    quant_rel: float  # error a fault-free window may have (mantissa digits / ADC codes)
    accuracy_rel: float  # the meter's stated accuracy
    emulator: Callable[[Profile, float], MeterEmulator]
    meter: Callable[[str], Meter]
    worst_flip: Callable[[Profile, float], float]  # the largest window error of one unseen flip (J)


# --- the largest effect of one flip the driver cannot see -----------------------------------------
def lpm_worst_flip(prof: Profile, freq: float) -> float:
    """Every single-bit flip of every sample line the profile produces, through :class:`LpmStream`."""
    lo, hi = (a * VOLTS / freq for a in lpm01a.AMPS_RANGE)
    worst = 0.0
    for p in (LOW_W, HIGH_W):
        line = (lpm_emu.encode_value(p / freq) + "\r\n").encode()
        for i in range(len(line)):
            for bit in range(8):
                bad = bytearray(line)
                bad[i] ^= 1 << bit
                s = lpm01a.LpmStream(int(freq), freq, lo, hi)
                s.feed(line + bytes(bad) + line)
                if not s.problems and len(s.values) == 3 and not np.isnan(s.values).any():
                    worst = max(worst, abs(s.values[1] - s.values[0]) / freq)
    return worst


def ppk_worst_flip(prof: Profile, freq: float) -> float:
    """Every single-bit flip of the value bits (0–23) of every frame the profile produces, through
    :class:`Ppk2Stream`; logic bits are markers (a flipped marker bit is a glitch: window invalid)."""
    cal = ppk2.Calibration.from_metadata(ppk2.parse_metadata(ppk_emu.metadata_text(int(VOLTS * 1000))))
    worst = 0.0
    for p in (LOW_W, HIGH_W):
        raw = ppk_emu.encode_frames(np.full(3, p / VOLTS), np.arange(3), np.zeros(3, np.uint8)).tobytes()
        for bit in range(24):
            bad = bytearray(raw)
            bad[4 + bit // 8] ^= 1 << (bit % 8)
            s = ppk2.Ppk2Stream(cal=cal, vdd_v=VOLTS)
            s.feed(bytes(bad))
            amps = s.current()
            if not (s.corrupted or s.over_range or s.dropped or np.isnan(amps).any()):
                worst = max(worst, abs(amps[1] - amps[0]) * VOLTS / freq)
    return worst


SETUPS = {
    "lpm01a": Setup(
        name="lpm01a",
        rate=1 / 6000,
        speed=4.0,
        pulse=(0.05, 0.35),
        span_s=0.42,
        quant_rel=5e-4,  # 4-digit mantissa: half a unit of the 4th digit per sample
        accuracy_rel=0.02,
        emulator=lambda prof, speed: lpm_emu.Lpm01aEmulator(prof, speed=speed),
        meter=lambda url: lpm01a.Lpm01a(
            lpm01a.Lpm01aConfig(kind="lpm01a", url=url, freq_hz=1000, timeout_s=0.5, marker_method="gpio")
        ),
        worst_flip=lambda prof, _r: lpm_worst_flip(prof, 1000.0),
    ),
    "ppk2": Setup(
        name="ppk2",
        rate=1 / 20000,
        speed=1.0,
        pulse=(0.01, 0.04),
        span_s=0.05,
        quant_rel=5e-4,  # half an ADC code per sample: 3.6e-4 of 0.6 mA on range 1
        accuracy_rel=0.10,
        emulator=lambda prof, speed: ppk_emu.Ppk2Emulator(prof, speed=speed),
        meter=lambda url: ppk2.Ppk2(
            ppk2.Ppk2Config(
                kind="ppk2",
                url=url,
                vdd_mv=int(VOLTS * 1000),
                timeout_s=0.5,
                marker_method="gpio",
                marker_channel=0,
            )
        ),
        worst_flip=lambda prof, _r: ppk_worst_flip(prof, float(ppk2.RATE_HZ)),
    ),
}


# --- one window, as the runner runs it --------------------------------------------------------------
def one_window(meter: Meter, need_open: bool, wait_s: float) -> tuple[EnergyWindow, Trace]:
    """(Re)open if needed, then one runner window: ``begin_window``, the DUT's pulse, ``end_window``.

    Raises MeterError / WindowInvalid when the link fails (the runner re-runs the window)."""
    if need_open:
        meter.close()
        meter.open()
    meter.begin_window()
    t_start = time.perf_counter()
    time.sleep(wait_s)
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


def bench(s: Setup, want: int, kinds: tuple[str, ...]) -> dict[str, Any]:
    """Windows until ``want`` faults were injected; the figures of one meter."""
    prof = Profile(kind="square", low_w=LOW_W, high_w=HIGH_W, dt=0.01, windows=[s.pulse], voltage_v=VOLTS)
    truth = prof.energy(*s.pulse)
    t0 = time.monotonic()
    f: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    worst_seen = 0.0
    in_a_row = 0
    with EmulatorServer(s.emulator(prof, s.speed)) as srv:
        host, _, port = srv.url[len("socket://") :].partition(":")
        with FaultProxy((host, int(port)), FaultPlan(seed=1)) as fp:
            meter = s.meter(fp.url)
            meter.open()
            clean, _ = one_window(meter, False, s.span_s / s.speed)  # the bench's own check, before any fault
            assert clean.valid and abs(clean.e_win_j - truth) <= s.quant_rel * truth, (clean, truth)
            fp.set_plan(FaultPlan(rate=s.rate, kinds=kinds, stall_s=0.8, seed=7))
            need_open = False
            idle = 0  # windows in a row with no valid window and no new fault: is the link dead?
            while len(fp.log) < want:
                n_faults = len(fp.log)
                done, box = run_with_limit(
                    lambda n=need_open: one_window(meter, n, s.span_s / s.speed), WINDOW_LIMIT_S
                )
                f["windows"] += 1
                if not done:
                    f["hangs"] += 1
                    print(f"{s.name} window {f['windows']}: hang (over {WINDOW_LIMIT_S:.0f} s)", flush=True)
                    break  # the driver is stuck in another thread: stop here
                ok = "err" not in box and box["v"][0].valid
                idle = 0 if ok or len(fp.log) > n_faults else idle + 1
                if idle >= STUCK_WINDOWS:  # a test rig that stopped (emulator or proxy gone): a hang too
                    f["hangs"] += 1
                    print(
                        f"{s.name}: {idle} windows in a row failed with no fault injected: stuck", flush=True
                    )
                    faulthandler.dump_traceback()
                    break
                if not ok:
                    f["invalid"] += 1
                    in_a_row += 1
                    if in_a_row > MAX_RETRIES:
                        f["jobs_failed"] += 1
                        in_a_row = 0
                if "err" in box:
                    f["escaped"] += int(box.get("escaped", False))
                    reasons[type(box["err"]).__name__] += 1
                    if VERBOSE:
                        print(f"{s.name} window {f['windows']}: {box['err']!r}"[:300], flush=True)
                    need_open = True  # what the runner does: reopen the meter, re-run the window
                    continue
                need_open = False
                if not ok:
                    reasons["EnergyWindow.valid=False"] += 1
                    if VERBOSE:
                        print(
                            f"{s.name} window {f['windows']}: invalid: {box['v'][0].problem}"[:300],
                            flush=True,
                        )
                    continue
                in_a_row = 0
                f["valid"] += 1
                err = abs(box["v"][0].e_win_j - truth) / truth
                worst_seen = max(worst_seen, err)
                if err > s.accuracy_rel:
                    f["wrong"] += 1
                    print(f"{s.name} window {f['windows']}: WRONG by {err:.2%}", flush=True)
                elif err > s.quant_rel:
                    f["off"] += 1
                    print(f"{s.name} window {f['windows']}: off by {err:.3%} (within accuracy)", flush=True)
                if f["windows"] % 100 == 0:
                    print(
                        f"{s.name}: {f['windows']} windows, {len(fp.log)} faults, {time.monotonic() - t0:.0f} s",
                        flush=True,
                    )
            fp.set_plan(FaultPlan())
            if f["hangs"] == 0:
                meter.close()
            counts = fp.counts()
    n = s.name
    print(
        f"{n}: faults by direction/kind: " + ", ".join(f"{d}/{k}={c}" for (d, k), c in sorted(counts.items()))
    )
    print(f"{n}: invalid windows by error: " + ", ".join(f"{k}={c}" for k, c in sorted(reasons.items())))
    out = {
        "faults_injected": sum(counts.values()),
        "windows": f["windows"],
        "windows_valid": f["valid"],
        "windows_invalid": f["invalid"],
        "windows_off_within_accuracy": f["off"],
        "worst_valid_error_rel": round(worst_seen, 6),
        "worst_unseen_flip_rel": round(s.worst_flip(prof, 0.0) / truth, 6),
        "accuracy_rel": s.accuracy_rel,
        "quant_rel": s.quant_rel,
        "rate_per_byte": round(s.rate, 7),
        "errors_not_frugalbench": f["escaped"],
        "wall_s": round(time.monotonic() - t0),
        "jobs_failed": f["jobs_failed"],
        "hangs": f["hangs"],
        "wrong_results_stored": f["wrong"],
    }
    for k, v in out.items():
        print(f"{n}_{k}={v}", flush=True)
    return out


def main() -> None:
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints every thread's stack (a stuck run)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--meter", choices=[*SETUPS, "all"], default="all")
    ap.add_argument("--faults", type=int, default=1000, help="faults to inject per meter")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma list of fault kinds")
    ap.add_argument("--verbose", action="store_true", help="print every invalid window's error")
    args = ap.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    kinds = tuple(args.kinds.split(","))
    names = list(SETUPS) if args.meter == "all" else [args.meter]
    results = [bench(SETUPS[n], args.faults, kinds) for n in names]
    print(f"meters={','.join(names)} kinds={','.join(kinds)}")
    for key in ("faults_injected", "hangs", "jobs_failed", "wrong_results_stored"):
        print(f"{key}={sum(r[key] for r in results)}")


if __name__ == "__main__":
    main()
