"""MCU jobs through a fault-injecting link, stored in a real results database: is anything wrong stored?

A QEMU mps2-an386 DUT (the frugalbench firmware) is reached through the fault proxy
(:mod:`harness.emulators.faultproxy`), which injects every fault kind (drop, flip, garbage, stall,
close) in both directions at random byte positions. Each job is what the runner does for one variant
on the ``mcu`` target: upload the model blob, the accuracy pass on the device, then timed windows;
the result (accuracy, instructions per inference, latency, windows) is saved with
:class:`harness.results.store.Store`, or saved as failed when the target gives up.

The truth is known without the link: outputs from the NumPy reference of the firmware
(:mod:`harness.mcu.reference`, bit-exact) and the instruction count of a fault-free window
(deterministic under ``-icount``). After the run the database is read back and every ``done`` result
and every valid window is compared with the truth: ``wrong_results_stored`` counts mismatches. A job
that does not finish within ``JOB_LIMIT_S`` counts as a hang.

Measured here (2 shared cores, QEMU 7.2, seed 7, 1/2500 faults per byte each way, 0.8 s stalls,
host timeout 0.5 s, 4 retries): 1,031 faults injected (up: 147 close, 151 drop, 166 flip, 142
garbage, 142 stall; down: 61 close, 64 drop, 58 flip, 45 garbage, 55 stall) over 38 jobs in 818 s;
37 jobs done, 1 failed (the model upload gave up after 5 attempts over a link that kept dropping),
107 of 111 windows valid, 0 hangs, wrong_results_stored=0.

Usage: ``python benches/perf/link_faults.py [faults]`` (default 1000: jobs run until that many faults
were injected). Last line: ``wrong_results_stored=<n>``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.emulators.faultproxy import KINDS, FaultPlan, FaultProxy
from harness.errors import FrugalbenchError, WindowInvalid
from harness.ir.layers import Dense
from harness.ir.network import Network
from harness.mcu import reference
from harness.mcu.blob import codec
from harness.mcu.build import build_firmware
from harness.mcu.qemu import QemuDut
from harness.results.record import Latency, Result
from harness.results.store import Store, WindowRow
from harness.targets.mcu import McuConfig, McuTarget

RATE = 1 / 2500  # faults per forwarded byte, each direction
JOB_LIMIT_S = 300.0
WINDOWS = 3
LAP_TOLERANCE_S = 1.5e-6


@dataclass
class Truth:
    blob: bytes
    x: np.ndarray
    labels: np.ndarray
    accuracy: float
    instructions: float | None = None  # of one window of the clean run
    n: int | None = None


def models(rng: np.random.Generator) -> list[Truth]:
    out = []
    for n_in, hid, n_out in ((48, 32, 10), (64, 24, 12), (40, 16, 6)):
        net = Network(
            [
                Dense(rng.normal(size=(n_in, hid)) / np.sqrt(n_in), rng.normal(size=hid) * 0.1, "relu"),
                Dense(rng.normal(size=(hid, n_out)) / np.sqrt(hid), rng.normal(size=n_out) * 0.1),
            ]
        )
        x = rng.normal(size=(100, n_in)).astype(np.float32)
        blob = codec.export_blob(net, x[:64])
        labels = net.forward(x).argmax(1)
        acc = float((reference.predict(blob, x).argmax(1) == labels).mean())
        out.append(Truth(blob, x, labels, acc))
    return out


def job(t: McuTarget, truth: Truth) -> tuple[float, list[Any]]:
    """One runner job: load, accuracy pass on the device, windows (invalid ones kept as invalid)."""
    t.load_blob(truth.blob)
    y = t.predict(truth.x)
    acc = float((y.argmax(1) == truth.labels).mean())
    t.set_inputs(truth.x)
    windows: list[Any] = []
    for _ in range(WINDOWS):
        try:
            windows.append(t.window(0.004))
        except WindowInvalid as e:
            windows.append(str(e))
    return acc, windows


def store_job(store: Store, run_id: int, key: str, truth_i: int, outcome: Any) -> None:
    if isinstance(outcome, BaseException):
        r = Result("link-faults", f"m{truth_i}", key, "qemu", "failed", reason=str(outcome)[:300])
        store.save_result(_keyed(r, run_id, key), [])
        return
    acc, wins = outcome
    rows = []
    for i, w in enumerate(wins):
        if isinstance(w, str):
            rows.append(WindowRow(i, 0, 0.0, None, None, None, False, w))
        else:
            rows.append(
                WindowRow(
                    i,
                    w.n,
                    w.t_end - w.t_start,
                    w.dut_s,
                    w.dut_s / w.n,
                    None,
                    True,
                    "",
                    {"instructions": w.extra.get("instructions")},
                )
            )
    valid = [w for w in wins if not isinstance(w, str)]
    ipi = valid[0].instr_per_inference if valid else None
    lat = Latency(
        p50_s=float(np.median([w.dut_s / w.n for w in valid])) if valid else None,
        n_windows=len(valid),
        instr_per_inference=ipi,
    )
    r = Result("link-faults", f"m{truth_i}", key, "qemu", "done", accuracy=acc, latency=lat)
    store.save_result(_keyed(r, run_id, key), rows)


def _keyed(r: Result, run_id: int, key: str) -> Result:
    from dataclasses import replace

    return replace(r, run_id=run_id, job_key=key)


def run_with_limit(fn: Any, limit_s: float) -> tuple[bool, Any]:
    box: dict[str, Any] = {}

    def go() -> None:
        try:
            box["v"] = fn()
        except FrugalbenchError as e:
            box["v"] = e
        except Exception as e:  # noqa: BLE001 - counted: anything but a TargetError escaping is a bug
            box["v"] = e
            box["escaped"] = True

    th = threading.Thread(target=go, daemon=True)
    th.start()
    th.join(limit_s)
    if th.is_alive():
        return False, None
    return True, box


def main() -> None:
    want = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    rng = np.random.default_rng(0)
    truths = models(rng)
    elf = build_firmware("qemu-mps2-an386")
    tmp = Path(tempfile.mkdtemp(prefix="link-faults-"))
    hangs = escaped = 0
    t0 = time.monotonic()
    with QemuDut(elf, icount_shift=0) as q, FaultProxy(("127.0.0.1", q.port), FaultPlan(seed=1)) as fp:
        cfg = McuConfig(
            name="flaky",
            kind="mcu",
            board="qemu-mps2-an386",
            port=fp.url,
            timeout_s=0.5,
            infer_timeout_s=5.0,
            retries=4,
        )
        t = McuTarget(cfg)
        t.open()
        for tr in truths:  # the truth: a fault-free window of every model
            t.load_blob(tr.blob)
            t.set_inputs(tr.x)
            w = t.window(0.004)
            tr.instructions, tr.n = w.extra["instructions"], w.n
        fp.set_plan(FaultPlan(rate=RATE, kinds=KINDS, stall_s=0.8, seed=7))
        store = Store.open(tmp / "r.sqlite")
        run_id = store.begin_run("link-faults", "", {}, "bench", "")
        jobs = idle = 0
        while len(fp.log) < want and idle < 20:  # 20 jobs without a fault: the link no longer moves bytes
            before = len(fp.log)
            i = jobs % len(truths)
            key = f"job{jobs}"
            done, box = run_with_limit(lambda tr=truths[i]: job(t, tr), JOB_LIMIT_S)
            jobs += 1
            if not done:
                hangs += 1
                print(f"{key}: hang (over {JOB_LIMIT_S:.0f} s)", flush=True)
                break  # the target is stuck in another thread: stop here
            escaped += int(box.get("escaped", False))
            store_job(store, run_id, key, i, box["v"])
            idle = idle + 1 if len(fp.log) == before else 0
            state = "failed" if isinstance(box["v"], BaseException) else "done"
            print(f"{key}: {state}, faults so far {len(fp.log)}, {time.monotonic() - t0:.0f} s", flush=True)
        fp.set_plan(FaultPlan())
        t.close()
        store.end_run(run_id, "done")
        counts = fp.counts()
    wrong = failed = ok = 0
    for r in store.results(run_id=run_id):
        if r.status == "failed":
            failed += 1
            continue
        tr = truths[int(r.task[1:])]
        ok += 1
        bad = r.accuracy != tr.accuracy
        assert r.id is not None
        for w in store.windows(r.id):
            if not w["valid"]:
                continue
            ins = json.loads(w["extra"] or "{}").get("instructions")
            assert tr.instructions is not None
            # shift 0: one instruction per ns of DUT time
            lap_off = abs(w["dut_s"] - tr.instructions * 1e-9) > LAP_TOLERANCE_S
            if w["n"] != tr.n or ins != tr.instructions or lap_off:
                bad = True
        wrong += int(bad)
    store.close()
    print("faults by direction/kind: " + ", ".join(f"{d}/{k}={n}" for (d, k), n in sorted(counts.items())))
    print(f"jobs={jobs} jobs_done={ok} errors_escaping_as_non_target_errors={escaped}")
    print(f"wall_s={time.monotonic() - t0:.0f} rate_per_byte={RATE:.5f} store={tmp / 'r.sqlite'}")
    print(f"faults_injected={sum(counts.values())}")
    print(f"hangs={hangs}")
    print(f"jobs_failed={failed}")
    print(f"wrong_results_stored={wrong}")


if __name__ == "__main__":
    main()
