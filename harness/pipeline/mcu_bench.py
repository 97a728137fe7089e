"""``frugalbench bench MODEL --target BOARD``: one model file on an emulated MCU board.

A full-integer ``.tflite`` is imported with its own quantisation
(:func:`harness.mcu.blob.tflite_graph.tflite_graph`) and planned and packed as a blob (version 2). Any
other ``.tflite`` or ``.onnx`` is converted to the IR and quantised with random normal calibration
rows (cost does not depend on them; accuracy is not measured here, the suites do that): an operator
graph for a CNN, a dense blob (version 1) for an MLP. The blob is checked against the board's budget
(a model that does not fit is refused with both sizes, nothing is sent) and uploaded by the MCU
target, which counts instructions under QEMU ``-icount``. Latency and energy are *simulated*: the
instruction count times the board profile's cycles per instruction, at its clock and run power
(``[energy]`` of ``boards/<board>.toml``), the same figures the MCU target stores in a result row.

``check`` (full-integer ``.tflite`` only) runs random int8 inputs through the device and through LiteRT's reference kernels
(``BUILTIN_REF``, no delegate) and compares the int8 outputs (the tensor before a dropped SOFTMAX).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ModelError
from ..ir.counts import count_tflite
from ..mcu.blob.codec import export_blob, graph_blob, needs_graph, network_graph, read_any_blob
from ..mcu.blob.container import BlobError
from ..mcu.blob.graph import QGraph
from ..mcu.blob.tflite_graph import tflite_graph
from ..mcu.board import known_boards, load_board
from ..mcu.litert_ref import reference_interpreter, tensor_by_name

CALIB_ROWS = 64  # random normal rows that quantise a float model file (cost does not depend on them)

#: target names that stand for a board profile (the suites' usual name of the emulated M4)
TARGET_BOARDS = {"qemu-m4": "qemu-mps2-an386"}


@dataclass
class McuBenchResult:
    """What one ``bench --target`` run measured (``None``: not known, never 0)."""

    model: str
    target: str
    board: str
    instructions_per_inference: float
    latency_ms: float | None  # simulated: instructions x CPI / clock
    throughput_ips: float | None
    energy_per_inference_j: float | None
    energy_class: str
    ram_bytes: int | None
    flash_bytes: int | None
    macs: int | None
    blob_bytes: int
    clock_hz: float | None
    cycles_per_instruction: float | None
    energy_model: str | None
    mcu: str | None
    ops: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bit_exact: bool | None = None
    max_abs_diff: int | None = None
    check_samples: int | None = None

    def summary(self) -> dict[str, Any]:
        """The ``--json`` object."""
        out = {k: v for k, v in vars(self).items() if k not in ("ops", "notes")}
        if self.bit_exact is None:
            for k in ("bit_exact", "max_abs_diff", "check_samples"):
                out.pop(k)
        return {**out, "ops": self.ops, "notes": self.notes}


def emulated_boards() -> list[str]:
    """Names of the packaged MCU board profiles with an emulator."""
    out = []
    for name in known_boards():
        try:
            if load_board(name).emulated:
                out.append(name)
        except ConfigError:  # not an MCU profile (a Raspberry Pi's)
            continue
    return out


def board_for_target(target: str) -> str:
    """A board profile name for ``--target``: ``qemu-m4`` or any board profile name or path."""
    return TARGET_BOARDS.get(target, target)


def litert_reference_int8(raw: bytes, g: QGraph, xq: np.ndarray) -> np.ndarray:
    """LiteRT's reference-kernel int8 values of ``g``'s output tensor for int8 graph inputs ``xq``
    (fed dequantised where the file takes floats: the file's QUANTIZE gives back ``xq`` exactly)."""
    from ai_edge_litert.interpreter import Interpreter

    d = Interpreter(model_content=raw).get_input_details()[0]
    x: np.ndarray = xq.reshape(len(xq), *d["shape"][1:])
    if d["dtype"] != np.int8:
        t = g.in_tensor
        x = ((x.astype(np.float32) - np.float32(t.zero_point)) * np.float32(t.scale)).astype(d["dtype"])
    it = reference_interpreter(raw, x)
    return tensor_by_name(it, g.out_tensor.name).reshape(len(xq), -1)


def bench_mcu(
    path: Path, *, target: str = "qemu-m4", check: bool = False, samples: int = 64, seed: int = 0
) -> McuBenchResult:
    """Run one int8 ``.tflite`` on an MCU target's board (see the module docstring)."""
    from ..targets.mcu import McuConfig, McuTarget

    if path.suffix.lower() not in (".tflite", ".onnx"):
        raise ConfigError(f"{path}: --target runs .tflite or .onnx files on the MCU")
    if not path.is_file():
        raise ModelError(f"model file {path} not found")
    raw = path.read_bytes()
    model_id = path.stem[:16] or "model"
    own = path.suffix.lower() == ".tflite" and _full_integer(raw)
    if own:
        g: QGraph | None = tflite_graph(raw, model_id=model_id)  # refuses what the MCU cannot run
        assert g is not None
        blob, macs = graph_blob(g), count_tflite(raw).macs
    else:
        if check:
            raise ConfigError(
                f"{path}: --check compares with LiteRT's int8 reference kernels, so it needs a full-integer "
                ".tflite; this file is float and is quantised here with random calibration"
            )
        g, blob, macs = _quantised_blob(path, raw, model_id, seed)
    emulated = ", ".join([*TARGET_BOARDS, *emulated_boards()])
    try:
        t = McuTarget(McuConfig(name=target, kind="mcu", board=board_for_target(target)))
    except ConfigError:
        raise ConfigError(f"--target {target}: not an MCU board profile; use one of {emulated}") from None
    if not t.profile.emulated:
        raise ConfigError(
            f"--target {target}: bench runs on an emulated board ({emulated}); measure the real board "
            f"{t.profile.name} through a suite target with its serial port"
        )
    why = McuTarget.availability()
    if why is not None:
        raise ConfigError(f"--target {target} needs the MCU toolchain and emulator: {why}")
    with t:
        t.load_blob(blob)  # checks the board budget first, then uploads and probes
        qm = g if g is not None else read_any_blob(blob)
        ops = (
            [op.where or op.kind for op in qm.ops] if isinstance(qm, QGraph) else [q.name for q in qm.layers]
        )
        n_in = qm.in_tensor.size if isinstance(qm, QGraph) else qm.in_dim
        xq = np.random.default_rng(seed).integers(-128, 128, (max(1, samples), n_in)).astype(np.int8)
        t.set_inputs(_dequantize(qm, xq[:1]))
        w = t.window(1e-6)
        dev = t.predict_int8(xq) if check else None
        info = t.info()
    em = t.profile.energy
    instr = float(w.instr_per_inference) if w.instr_per_inference is not None else float("nan")
    per_s = instr * em.cycles_per_instruction / em.clock_hz if em is not None else None
    jpi = em.joules_per_instruction if em is not None else None
    res = McuBenchResult(
        model=str(path),
        target=target,
        board=t.profile.name,
        instructions_per_inference=instr,
        latency_ms=per_s * 1e3 if per_s is not None else None,
        throughput_ips=1.0 / per_s if per_s else None,
        energy_per_inference_j=instr * jpi if jpi is not None else None,
        energy_class="simulated",
        ram_bytes=info.get("ram_bytes"),
        flash_bytes=info.get("flash_bytes"),
        macs=macs,
        blob_bytes=len(blob),
        clock_hz=em.clock_hz if em is not None else None,
        cycles_per_instruction=em.cycles_per_instruction if em is not None else None,
        energy_model=em.describe() if em is not None else None,
        mcu=em.mcu if em is not None else None,
        ops=ops,
        notes=list(g.notes) if g is not None else ["quantised with random normal calibration rows"],
    )
    if dev is not None and g is not None:
        ref = litert_reference_int8(raw, g, xq)
        diff = int(np.abs(dev.astype(np.int32) - ref.astype(np.int32)).max())
        res.bit_exact, res.max_abs_diff, res.check_samples = diff == 0, diff, len(xq)
    return res


def _dequantize(m: Any, xq: np.ndarray) -> np.ndarray:
    """Float rows that the model's ``quantize_input`` maps back to ``xq`` exactly (a graph or a dense blob)."""
    if isinstance(m, QGraph):
        scale, zp = m.in_tensor.scale, m.in_tensor.zero_point
    else:
        scale, zp = m.in_scale, m.in_zp
    return ((xq.astype(np.float64) - zp) * scale).astype(np.float32)


def _full_integer(raw: bytes) -> bool:
    """Whether a ``.tflite`` computes in int8 (its first operator's output is int8, after an optional
    QUANTIZE of a float input): such a file keeps its own quantisation."""
    from ..ir.importers.tflite_file import TfliteFile

    try:
        f = TfliteFile(raw)
    except ValueError as e:
        raise ModelError(f"cannot read the .tflite: {e}") from None
    return any(f.type_name(i) == "INT8" for i in range(len(f.tensors)) if not f.is_const(i))


def _quantised_blob(path: Path, raw: bytes, model_id: str, seed: int) -> tuple[QGraph | None, bytes, int]:
    """A float model file converted to the IR and quantised with random normal calibration rows:
    (graph or None for a dense blob, blob bytes, MACs)."""
    from ..ir.importers.common import NotConvertible

    try:
        if path.suffix.lower() == ".tflite":
            from ..ir.importers.tflite_import import tflite_to_network

            net = tflite_to_network(raw).net
        else:
            from ..ir.importers.onnx_import import onnx_to_network

            net = onnx_to_network(raw).net
    except NotConvertible as e:
        raise ModelError(f"{path}: cannot run on an MCU board: {e}") from None
    x = np.random.default_rng(seed).normal(size=(CALIB_ROWS, net.in_dim)).astype(np.float32)
    try:
        if needs_graph(net):
            g = network_graph(net, x, model_id=model_id)
            return g, graph_blob(g), int(net.macs())
        return None, export_blob(net, x, model_id=model_id), int(net.macs())
    except BlobError as e:
        raise ModelError(f"{path}: cannot run on an MCU board: {e}") from None
