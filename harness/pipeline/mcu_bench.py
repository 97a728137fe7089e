"""``frugalbench bench MODEL --target BOARD``: one model file on a microcontroller board profile.

The file (``.onnx`` or ``.tflite``) is converted to the IR, quantised to the MCU int8 blob with random
normal calibration inputs, checked against the board's budget (a model that does not fit is refused
with both sizes, nothing is sent), uploaded and timed in windows. What is measured is cost, which
does not depend on the calibration data: instructions per inference (emulated boards), latency and,
where the board profile names a run power, simulated energy. Accuracy is not measured here: the
suites do that with the task's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..ir.importers.common import Imported, NotConvertible
from ..mcu.blob.codec import export_blob
from ..meters.mcu_sim import McuSimMeter, SimConfig
from ..targets import TARGETS
from ..targets.mcu import McuConfig, McuTarget

CALIB_ROWS = 64


@dataclass(frozen=True)
class McuBenchResult:
    """Costs of one model file on one board; ``None`` where unknown (never 0)."""

    model: str
    board: str
    board_label: str
    blob_bytes: int
    macs: int
    instructions_per_inference: float | None
    latency_p50_ms: float
    latency_clock: str  # what the latency is measured or simulated on
    energy_per_inference_j: float | None
    energy_model: str | None
    n_windows: int
    n_inferences: int


def _network(path: Path) -> Imported:
    raw = path.read_bytes()
    try:
        if path.suffix.lower() == ".tflite":
            from ..ir.importers.tflite_import import tflite_to_network

            return tflite_to_network(raw)
        if path.suffix.lower() == ".onnx":
            from ..ir.importers.onnx_import import onnx_to_network

            return onnx_to_network(raw)
    except NotConvertible as e:
        raise ModelError(f"{path}: cannot run on an MCU board: {e}") from None
    raise ModelError(f"{path}: --target takes a .onnx or .tflite file")


def bench_on_board(
    path: Path, board: str, *, windows: int = 3, window_s: float = 0.01, seed: int = 0
) -> McuBenchResult:
    """Time ``path`` on ``board`` (a board profile name or file); ``window_s`` is in the board's own
    (simulated, for an emulated board) seconds."""
    imp = _network(Path(path))
    net = imp.net
    x = np.random.default_rng(seed).normal(size=(CALIB_ROWS, net.in_dim)).astype(np.float32)
    blob = export_blob(net, x)
    target: McuTarget = TARGETS.get("mcu")(McuConfig(name=board, kind="mcu", board=board))  # type: ignore[assignment]
    with target:
        target.load_blob(blob)  # refused with both sizes if it does not fit
        target.set_inputs(x[:1])
        meter = McuSimMeter(SimConfig(kind="mcu-sim")) if target.profile.emulated else None
        if meter is not None:
            meter.bind_target(target.info())
        lat: list[np.ndarray] = []
        energies: list[float] = []
        instr: list[float] = []
        n = 0
        for _ in range(windows):
            if meter is not None:
                meter.begin_window()
            w = target.window(window_s)
            if meter is not None:
                ew = meter.end_window(w).require_valid()
                if np.isfinite(ew.e_win_j):
                    energies.append(ew.e_per_inf_j)
            lat.append(np.asarray(w.latencies_s))
            n += w.n
            if w.instr_per_inference is not None:
                instr.append(w.instr_per_inference)
        prof = target.profile
        em = prof.energy
        clock = (
            f"{em.mcu} at {em.clock_hz / 1e6:g} MHz (simulated from instructions)"
            if prof.emulated and em is not None
            else "the board's own clock"
        )
        return McuBenchResult(
            model=str(path),
            board=prof.name,
            board_label=prof.label,
            blob_bytes=len(blob),
            macs=int(net.macs()),
            instructions_per_inference=float(np.median(instr)) if instr else None,
            latency_p50_ms=float(np.median(np.concatenate(lat))) * 1e3,
            latency_clock=clock,
            energy_per_inference_j=float(np.median(energies)) if energies else None,
            energy_model=em.describe() if em is not None else None,
            n_windows=windows,
            n_inferences=n,
        )
