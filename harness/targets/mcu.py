"""A microcontroller over serial: EEMBC / MLPerf Tiny protocol, our int8 runtime, QEMU or a real board.

``board`` names a profile (``boards/<name>.toml``). With an emulated board (``qemu-mps2-an386``) the
target builds ``boards/firmware`` and starts QEMU itself (``-icount``, UART on a localhost TCP port
with ``nodelay=on``), so costs are deterministic instruction counts; latency and energy derived from
them are *simulated* with the profile's energy model (meter ``mcu-sim``). With a real board give
``port`` (any ``serial_for_url`` URL); times come from ``m-lap-us`` and energy from an external meter.

The target consumes :attr:`Artefact.MCU_BLOB` files, which the variant pipeline exports, calibrates
and caches (the target never builds a model). Each blob is checked against the board budget before
it is sent, uploaded to RAM with the binary bulk extension (CRC32), then ``predict()`` runs the eval
set on the device in batches and ``window()`` runs ``infer N 0`` windows. A reset (boot banner) or a
stall makes the window invalid.

The link is not trusted: replies carry a checksum (negotiated ``xcrc``) and are cross-checked
(``xstat`` must report the negotiated tick rate, and under ``-icount`` the ``m-lap-us`` time must
equal instructions x 2^shift ns); a reply that fails is asked again or the window is invalid, never
stored. A dropped connection is reopened before the next operation, uploads and the accuracy pass are
retried (``retries`` times), and every link error becomes a :class:`TargetError` that fails one job,
never the run. Under an emulator each window carries its instruction count and
energy model (:class:`~harness.meters.trace.SimulatedEnergy`), from which the ``mcu-sim`` meter
prices it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import Field

from ..errors import ProtocolError, StateError, TargetError, WindowInvalid
from ..ir.model import Variant
from ..mcu.blob.codec import (
    BlobError,
    QModel,
    needs_graph,
    network_graph,
    read_any_blob,
    supported_kinds,
    tflite_int8_model,
    tflite_is_mlp,
    unsupported_layers,
    variant_graph,
)
from ..mcu.blob.graph import QGraph
from ..mcu.blob.tflite_graph import SUPPORTED_OPS
from ..mcu.board import BoardProfile, load_board
from ..mcu.footprint import Footprint, check_fits, footprint
from ..mcu.protocol import DutClient, DutCommandError, DutReset, Extensions
from .artefact import Artefact, ArtefactFile
from .base import TARGETS, SimulatedEnergy, Target, TargetConfig, Window

log = logging.getLogger(__name__)
PROBE_N = 64  # inferences of the load-time probe that fixes instructions/inference
LAP_TOLERANCE_S = 1.5e-6  # two m-lap-us stamps, each truncated to 1 us
T = TypeVar("T")
# refusals that mean the DUT lost its state (an unseen reset): upload again and retry, not a failed job
LOST_STATE = (
    "e-[No model loaded",
    "e-[No inference has run yet",
    "e-[xbatch: the db buffer holds",
    "e-[Input holds",
)
LinkError = (ProtocolError, OSError)  # OSError: serial.SerialException, a dropped socket


def model_dims(m: QModel | QGraph) -> tuple[int, int]:
    """Input and output bytes per inference of a dense blob model or an operator graph."""
    if isinstance(m, QGraph):
        return m.in_tensor.size, m.out_tensor.size
    return m.in_dim, m.out_dim


class LinkGaveUp(TargetError):
    """An operation failed on every bounded retry because of the link (not a DUT refusal)."""


class McuConfig(TargetConfig):
    """Suite ``[[targets]]`` entry of kind ``mcu``.

    Example::

        [[targets]]
        name = "qemu-m4"
        kind = "mcu"
        board = "qemu-mps2-an386"
    """

    board: str = Field(description="board profile name (boards/<name>.toml) or path")
    port: str | None = Field(
        None, description="serial URL of a real board (socket://, rfc2217://, /dev/tty...)"
    )
    baud: int | None = Field(None, gt=0, description="override the profile's baud rate")
    firmware: str | None = Field(None, description="prebuilt ELF for the emulator (default: build it)")
    icount_shift: int | None = Field(None, ge=0, le=10)
    extensions: bool = Field(True, description="negotiate binary upload (false: plain EEMBC hex)")
    timeout_s: float = Field(5.0, gt=0)
    infer_timeout_s: float = Field(120.0, gt=0)
    retries: int = Field(2, ge=0, le=10)
    max_window_inferences: int = Field(2_000_000, gt=0)
    qemu_monitor: str | None = Field(
        None, description="unix socket for the QEMU monitor (debugging, fault tests)"
    )
    io_manager: bool = Field(
        False,
        description="port is an EEMBC IO manager (MLPerf Tiny energy mode) that forwards to the DUT at its "
        "own baud (9600): commands go as 'dut <cmd>%', plain EEMBC only (a stock DUT with its built-in model)",
    )
    activity: str | None = Field(
        None,
        description="emulated board: socket://HOST:PORT of a bench twin (frugalbench emulate twin) that the "
        "board reports its marker edges and sleep to, so an emulated LPM01A/PPK2 measures it",
    )


@TARGETS.register("mcu")
class McuTarget(Target):
    """Runs blobs on a microcontroller (real or QEMU) through the EEMBC DUT protocol."""

    kind = "mcu"
    Config = McuConfig
    config: McuConfig
    artefact = Artefact.MCU_BLOB

    def __init__(self, config: McuConfig) -> None:  # type: ignore[override]
        super().__init__(config)
        self.profile: BoardProfile = load_board(config.board)
        self.qemu: Any = None
        self.port: Any = None
        self.dut: DutClient | None = None
        self.ext: Extensions | None = None
        self.qm: QModel | QGraph | None = None
        self.blob: bytes | None = None
        self.footprint: Footprint | None = None  # RAM/flash of the loaded operator graph
        # RAM/flash of the graph last offered to load_blob, kept when it was refused: the provenance of
        # a "does not fit" result names what the model needed, not the previously loaded model's sizes
        self.wanted: Footprint | None = None
        self._elf: Path | None = Path(config.firmware) if config.firmware else None
        self.variant: Variant | None = None
        self._input: bytes | None = None
        self._probe: float | None = None  # instructions per inference (emulator) or DUT s per inference
        self._stale = False
        self._broken = False  # the port dropped: reconnect before the next operation
        self.dut_name = ""
        self.reconnects = 0
        self.link_retries = 0

    # ------------------------------------------------------------ capability
    @classmethod
    def availability(cls) -> str | None:
        from ..mcu.build import toolchain_missing
        from ..mcu.qemu import qemu_missing

        return toolchain_missing() or qemu_missing()

    @property
    def shift(self) -> int:
        return self.config.icount_shift if self.config.icount_shift is not None else self.profile.icount_shift

    def supports(self, variant: Variant) -> str | None:
        stored = variant.path(self.artefact.value)
        if stored is not None:
            try:
                read_any_blob(stored.read_bytes())
            except (BlobError, OSError) as e:
                return f"its MCU blob is unusable: {e}"
            return None
        meta = variant.meta
        if meta.get("int8_file"):
            own = variant.path("tflite")
            why = "it is not a .tflite"
            if own is not None:
                try:
                    raw = own.read_bytes()
                    tflite_int8_model(raw) if tflite_is_mlp(raw) else variant_graph(variant, None)
                    return None  # carried over with the file's own quantisation
                except BlobError as e:
                    why = str(e)
            return (
                f"the model file is already int8, but it cannot be carried over to the MCU runtime ({why}); "
                "the MCU runs full-integer .tflite models of "
                f"{', '.join(SUPPORTED_OPS)} as they are, and exports other networks from a float model: "
                "give the task the float model (.onnx, or a float .tflite) and add a variant with technique "
                'int8, mode = "static"'
            )
        net = variant.net()
        if net is None:
            why = str(meta.get("ir") or "").removeprefix("not converted: ")
            return (
                "the MCU runtime runs only networks frugalbench converts from the model file, and this one did "
                f"not convert{f' ({why})' if why else ''}; measure this task on a CPU target, or give a model made "
                f"of layers the MCU runs ({', '.join(supported_kinds())})"
            )
        steps = meta.get("steps") or []
        last = steps[-1] if steps else {}
        if last.get("technique") != "int8" or (last.get("params") or {}).get("mode", "static") != "static":
            # Our MCU runtime is full-integer int8: running an fp32 or dynamic-range variant here would
            # silently measure its static int8 form under the wrong name.
            return (
                f"the MCU runtime runs full-integer int8 only; variant technique {meta.get('technique')!r} "
                'is not static int8 (add an int8 step with mode = "static" to run it on the MCU)'
            )
        if needs_graph(net):  # a CNN: an operator graph (blob version 2); check that its export converts
            try:
                probe = np.random.default_rng(0).standard_normal((8, net.in_dim)).astype(np.float32)
                network_graph(net, probe)
            except BlobError as e:
                return f"the MCU runtime cannot run this network as an int8 operator graph: {e}"
            return None
        missing = unsupported_layers(net)
        if missing:
            return f"the MCU runtime lacks layer(s) {', '.join(missing)}; it runs: {', '.join(supported_kinds())}"
        return None

    # ------------------------------------------------------------ lifecycle
    def open(self) -> None:
        if self.dut is not None:
            return
        try:
            self._connect()
        except LinkError as e:
            self.close()
            raise TargetError(
                f"mcu target {self.config.name}: no working EEMBC DUT on the link ({e}); check the port, "
                "baud rate and that the firmware runs"
            ) from None
        except BaseException:
            self.close()
            raise

    def _connect(self) -> None:
        import serial

        p, c = self.profile, self.config
        fresh = False
        if p.emulated and c.port is None:
            from ..mcu.build import build_firmware
            from ..mcu.qemu import QemuDut

            if self.qemu is None or not self.qemu.alive():
                elf = Path(c.firmware) if c.firmware else build_firmware(p.firmware_board)
                self._elf = elf
                mon = Path(c.qemu_monitor) if c.qemu_monitor else None
                self.qemu = QemuDut(
                    elf, machine=p.qemu_machine, icount_shift=self.shift, monitor=mon, activity=c.activity
                )
                fresh = True
            self.port = self.qemu.open_serial()
        elif c.port is None:
            raise TargetError(
                f"board {p.name} is a real board: give its serial port in the target's 'port' key"
            )
        else:
            try:
                self.port = serial.serial_for_url(c.port, baudrate=c.baud or p.baud, timeout=1.0)
            except (serial.SerialException, ValueError) as e:
                raise TargetError(f"cannot open {c.port}: {e}") from None
        if c.io_manager:
            from ..mcu.iomanager import IoManagerPort

            self.port = IoManagerPort(self.port)
        self.dut = DutClient(
            self.port, timeout_s=c.timeout_s, infer_timeout_s=c.infer_timeout_s, retries=c.retries
        )
        if fresh:
            try:
                self.dut.wait_banner()
            except DutReset:
                pass  # the banner itself: the DUT booted
            except ProtocolError:
                self.dut.resync()  # a corrupted banner: the DUT booted all the same
        else:
            self.dut.resync()
        self.dut_name = self.dut.name()
        self.ext = self._negotiate()
        if self.ext is not None and self.ext.crc:
            self.dut_name = self.dut.name()  # read again under the reply checksum
        self._broken = False

    def _negotiate(self) -> Extensions | None:
        """Extensions (and reply checksums) of the DUT; the same DUT must keep offering what it offered."""
        had = self.ext
        # a line bridge (IO manager) carries no binary bulk transfer: plain EEMBC behind it
        ext = self._need().negotiate() if self.config.extensions and not self.config.io_manager else None
        if had is not None and (ext is None or (had.crc and not ext.crc)):
            raise ProtocolError(
                "the DUT stopped offering the extensions or reply checksums it offered before: "
                "a stale or corrupted reply"
            )
        return ext

    def _reconnect(self) -> None:
        """Reopen a dropped link (QEMU keeps running); the DUT's model is uploaded again before use."""
        port, self.port, self.dut = self.port, None, None
        if port is not None:
            try:
                port.close()
            except Exception:  # noqa: BLE001 - the port is already dead
                log.debug("closing the dropped port failed", exc_info=True)
        self._broken = True
        self.reconnects += 1
        try:
            self._connect()
        except TargetError as e:  # the port cannot be opened (yet): a link error, retried by the caller
            raise ConnectionError(str(e)) from None
        self._stale = self.blob is not None

    def _recover(self, e: BaseException) -> None:
        """Make the link usable again after ``e``: reconnect a dropped port, else resynchronise."""
        if isinstance(e, DutReset):
            self._stale = True
        try:
            if isinstance(e, OSError) or self._broken or self.dut is None:
                self._reconnect()
            else:
                self.dut.resync()
        except LinkError as again:
            self._broken = True
            log.debug("link recovery failed: %s", again)

    def _retrying(self, what: str, fn: Callable[[], T], attempts: int | None = None) -> T:
        """Run ``fn`` over the link, recovering and retrying (bounded) after link errors.

        A refusal by the DUT (an ``e-`` line under the checksum) is not retried. Every failure ends
        as a TargetError, which fails one job.
        """
        last: BaseException | None = None
        tries = attempts or 1 + self.config.retries
        for attempt in range(tries):
            try:
                if self._broken or self.dut is None:
                    self._reconnect()
                if self._stale and self.blob is not None and what != "model upload":
                    self._reload()
                return fn()
            except DutCommandError as e:
                if not any(err.startswith(LOST_STATE) for err in e.errors) or attempt == tries - 1:
                    raise TargetError(f"{what}: {e}") from None
                self._stale = self.blob is not None
                last = e
            except LinkError as e:
                last = e
                if attempt < tries - 1:
                    self.link_retries += 1
                    log.info("%s: link error, retrying: %s", what, e)
                self._recover(e)
        raise LinkGaveUp(f"{what} failed after {tries} attempts over the link: {last}")

    def close(self) -> None:
        self._broken = False
        self.ext = None  # a later open() may meet another DUT
        port, self.port, self.dut = self.port, None, None
        if port is not None:
            try:
                port.close()
            except Exception:  # noqa: BLE001 - closing a dead socket must not hide the real error
                log.debug("closing the serial port failed", exc_info=True)
        if self.qemu is not None:
            self.qemu.stop()
            self.qemu = None

    def _need(self) -> DutClient:
        if self.dut is None:
            if self._broken:
                raise ProtocolError("the link to the DUT is down")
            raise StateError("mcu target: call open() first")
        return self.dut

    # ------------------------------------------------------------ models
    def check_budget(self, blob: bytes, qm: QModel | QGraph) -> None:
        """Refuse, before sending, a model the board cannot hold (sizes in the message)."""
        b = self.profile.budget
        limit = min(
            b.model_ram_bytes, self.ext.model_max if self.ext and self.ext.model_max else b.model_ram_bytes
        )
        if len(blob) > limit:
            raise TargetError(
                f"model blob is {len(blob)} bytes but board {self.profile.name} has {limit} bytes of model RAM "
                f"(flash {b.flash_bytes}, RAM {b.ram_bytes}); compress the model further"
            )
        in_dim, _ = model_dims(qm)
        if isinstance(qm, QModel):
            act = min(b.act_max, self.ext.act_max if self.ext and self.ext.act_max else b.act_max)
            if qm.max_dim > act:
                raise TargetError(
                    f"model has a {qm.max_dim}-wide activation but board {self.profile.name} allows {act}"
                )
        if in_dim > b.db_bytes:
            raise TargetError(f"model input is {in_dim} bytes but the board's input buffer is {b.db_bytes}")

    def load(self, variant: Variant, artefact: ArtefactFile) -> None:
        """Upload the variant's MCU blob (exported and calibrated by the variant pipeline)."""
        if artefact.kind is not self.artefact:
            raise TargetError(
                f"variant {variant.name}: the MCU target loads {self.artefact.value} files, "
                f"was given {artefact.kind.value}"
            )
        self.load_blob(artefact.read_bytes())
        self.variant = variant

    def load_blob(self, blob: bytes) -> None:
        """Check, upload and probe a blob (also used directly by tests and benches)."""
        if self.dut is None and not self._broken:
            raise StateError("mcu target: call open() first")
        qm = read_any_blob(blob)
        # nothing of the previous model survives an attempt: a refused model's result must not carry
        # the previous model's sizes, layers or instruction count
        self.qm = self.blob = self.footprint = self._probe = self.wanted = None
        graph = isinstance(qm, QGraph)
        if not graph:  # an MLP blob's usual limit is the model area: say that first
            self.check_budget(blob, qm)
        # RAM and flash on this board (an operator graph's arena, or an MLP blob's static buffers),
        # refused with every size if over
        fp = self.wanted = footprint(blob, self.profile, elf=self._elf)
        check_fits(fp, self.profile)
        if graph:
            self.check_budget(blob, qm)
        if self.ext is None or "model" not in self.ext.bulk:
            self._retrying("built-in model", lambda: self._use_builtin(blob, qm))
            return

        def upload() -> None:
            dut = self._need()
            reply = dut.bulk("model", blob)
            info = reply.value("m-model-info-")
            if f"bytes={len(blob)}" not in info:
                raise ProtocolError(f"DUT reports a different model after upload: {info}")
            self.qm, self.blob, self.footprint = qm, blob, fp
            self._input = qm.quantize_input(np.zeros((1, model_dims(qm)[0]), np.float32)).tobytes()
            dut.upload_input(self._input)
            self._stale = False
            self._probe = self._measure_probe()

        self._retrying("model upload", upload)

    def _use_builtin(self, blob: bytes, qm: QModel | QGraph) -> None:
        """A stock DUT (no model upload: an MLPerf Tiny firmware, or ours built with ``MODEL_BLOB=``):
        measure the model it was built with, if it is this variant's (``profile%`` names its model id);
        inputs go over plain EEMBC hex (``db load``/``db``), outputs come from ``results``."""
        dut = self._need()
        _, built_in = dut.profile()
        if built_in != qm.model_id:
            raise TargetError(
                f"this DUT does not offer model upload (a stock MLPerf Tiny firmware) and runs model "
                f"{built_in!r}, not this variant's {qm.model_id!r}; build the firmware with this variant's blob "
                "(make -C boards/firmware MODEL_BLOB=...) or use the frugalbench firmware with extensions = true"
            )
        self.qm, self.blob = qm, blob
        self.footprint = footprint(blob, self.profile, elf=self._elf)
        n_in, n_out_want = model_dims(qm)
        self._input = qm.quantize_input(np.zeros((1, n_in), np.float32)).tobytes()
        dut.upload_input(self._input)
        self._stale = False
        self._probe = self._measure_probe()
        n_out = len(dut.infer(1, 0, retry=True).results)
        if n_out != n_out_want:
            raise TargetError(
                f"the DUT's built-in model {built_in!r} gives {n_out} outputs, this variant {n_out_want}: "
                "another model under the same id; build the firmware with this variant's blob"
            )

    def _measure_probe(self) -> float:
        """Instructions per inference (emulator; deterministic) or DUT seconds per inference."""
        dut = self._need()
        r = dut.infer(PROBE_N, 1, retry=True)
        if self.profile.emulated and self.ext is not None:
            ticks, hz, n = dut.xstat()
            if n != PROBE_N:
                raise ProtocolError(f"DUT timed {n} probe inferences, expected {PROBE_N}")
            self._cross_check(r.dut_s, ticks / hz)
            return ticks * (1e9 / hz) / (1 << self.shift) / n
        if r.dut_s is None:
            return r.host_s / PROBE_N
        return max(r.dut_s, 1e-6) / PROBE_N

    @staticmethod
    def _cross_check(lap_s: float | None, ticks_s: float) -> None:
        """``m-lap-us`` and ``xstat`` are two replies about one timed section: they must agree.

        Under ``-icount`` this is "dut_s equals instructions x 2^shift ns"."""
        if lap_s is not None and abs(lap_s - ticks_s) > LAP_TOLERANCE_S:
            raise ProtocolError(
                f"m-lap-us says {lap_s:.6f} s but xstat says {ticks_s:.6f} s for the same section: "
                "a reply was corrupted on the link"
            )

    def set_inputs(self, x: np.ndarray) -> None:
        """Windows run on the first row of ``x`` (the DUT's input buffer holds one input)."""
        if self.qm is None:
            raise StateError("mcu target: load() a variant before set_inputs()")
        data = self.qm.quantize_input(np.asarray(x, np.float32)[:1]).tobytes()
        self._input = data
        self._retrying("input upload", lambda: self._need().upload_input(data))

    # ------------------------------------------------------------ accuracy pass
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Dequantised outputs for every row, computed on the device (each batch retried on link errors)."""
        qm = self._model()
        xq = qm.quantize_input(np.asarray(x, np.float32).reshape(len(x), -1))
        if self.ext is None:
            if self.dut is None and not self._broken:
                raise StateError("mcu target: call open() first")
            return self._predict_eembc(xq)
        return qm.dequantize_output(self.predict_int8(xq))

    def predict_int8(self, xq: np.ndarray) -> np.ndarray:
        """The model's int8 outputs ``(N, out)`` for int8 input rows ``(N, in)``, computed on the device."""
        qm = self._model()
        if self.dut is None and not self._broken:
            raise StateError("mcu target: call open() first")
        if self.ext is None:
            raise TargetError("int8 outputs need the frugalbench extensions (xbatch); set extensions = true")
        in_dim, out_dim = model_dims(qm)
        xq = np.ascontiguousarray(xq, dtype=np.int8).reshape(len(xq), -1)
        db = min(self.profile.budget.db_bytes, self.ext.db_max)
        chunk = max(1, min(1024, db // in_dim))
        outs: list[np.ndarray] = []
        i = 0
        while i < len(xq):
            part = xq[i : i + chunk]

            def batch(part: np.ndarray = part) -> np.ndarray:
                dut = self._need()
                dut.bulk("db", part.tobytes())
                return dut.xbatch(len(part), out_dim)

            try:
                outs.append(self._retrying("accuracy pass", batch, attempts=2 if chunk > 1 else None))
            except LinkGaveUp:
                if chunk == 1:
                    raise
                chunk = max(1, chunk // 4)  # long replies fail more often on a noisy link: shorter batches
                continue
            i += len(part)
        if self._input is not None:
            data = self._input
            self._retrying("input upload", lambda: self._need().upload_input(data))
        return np.concatenate(outs)

    def _predict_eembc(self, xq: np.ndarray) -> np.ndarray:
        """Plain EEMBC: hex upload and ``infer 1 0`` per row; scores from ``m-results`` floats."""
        out = []
        for row in xq:

            def one(row: np.ndarray = row) -> np.ndarray:
                dut = self._need()
                dut.db_load_hex(row.tobytes())
                return dut.infer(1, 0).results

            out.append(self._retrying("accuracy pass", one))
        return np.stack(out).astype(np.float32)

    def _model(self) -> QModel | QGraph:
        if self.qm is None:
            raise StateError("mcu target: load() a variant first")
        return self.qm

    # ------------------------------------------------------------ timed windows
    def window(self, duration_s: float, *, warmup_s: float = 0.0) -> Window:
        """``infer N 0`` with N sized from the load-time probe; latencies from ``m-lap-us``.

        Emulated board: ``duration_s`` is *simulated* time on the profile's MCU (instructions x CPI /
        clock), so N, the instruction count and the window are the same on every run; the window's
        latencies and ``dut_s`` are that simulated time too (``extra["simulated_s"]``), the clock the
        simulated energy is priced at; QEMU's virtual time (``m-lap-us``) stays in ``extra["dut_lap_s"]``.
        """
        import time

        qm = self._model()
        if self._broken or self._stale or self.dut is None:
            self._retrying("link recovery", lambda: None)  # reconnect, upload model and input again
        dut = self._need()
        try:
            if self._stale:
                self._reload()
            per_inf_s = self._seconds_per_inference()
            n = int(min(self.config.max_window_inferences, max(1, math.ceil(duration_s / per_inf_s))))
            w = int(min(10_000, math.ceil(warmup_s / per_inf_s))) if warmup_s > 0 else 0
            if w:
                dut.infer(w, 0)
            t_start = time.perf_counter()
            r = dut.infer(n, 0)
            t_end = time.perf_counter()
            extra: dict[str, Any] = {"warmup_inferences": w, "host_s": r.host_s, "dut_lap_s": r.dut_s}
            instr, sim = None, None
            if self.profile.emulated and self.ext is not None:
                ticks, hz, n_dut = dut.xstat()
                if n_dut != n:
                    raise WindowInvalid(f"DUT timed {n_dut} inferences, expected {n}")
                total = ticks * (1e9 / hz) / (1 << self.shift)
                self._cross_check(r.dut_s, total * (1 << self.shift) * 1e-9)
                instr = round(total / n, 1)
                extra.update(instructions=total, instr_per_inference_probe=self._probe)
                em = self.profile.energy
                if em is not None:
                    # the same window on the named MCU (instructions x CPI / clock): simulated
                    extra["simulated_s"] = total * em.cycles_per_instruction / em.clock_hz
                    extra["simulated_mcu"] = f"{em.mcu} at {em.clock_hz / 1e6:g} MHz"
                    # joules_per_instruction is None where no run power is known: energy unknown
                    sim = SimulatedEnergy(total, em.joules_per_instruction, em.describe())
            if r.dut_s is None:
                raise WindowInvalid("the DUT printed no m-lap-us timestamps (energy-mode firmware?)")
            # m-lap-us is QEMU's virtual time under -icount (2^shift ns per instruction, a 1 GHz clock at
            # shift 0); an emulated board reports its latency on the named MCU's clock instead, the same
            # clock its simulated energy is priced at, so the row's latency, throughput and energy agree
            em = self.profile.energy
            if self.profile.emulated and self.ext is None and em is not None:
                # a stock DUT offers no xstat: its instructions come from m-lap-us (1 us = 1000 / 2^shift)
                extra["simulated_s"] = self._instructions(r.dut_s) * em.cycles_per_instruction / em.clock_hz
                extra["simulated_mcu"] = f"{em.mcu} at {em.clock_hz / 1e6:g} MHz"
            dut_s = extra.get("simulated_s", r.dut_s)
        except DutReset as e:
            self._stale = True
            raise WindowInvalid(f"the DUT reset during the window (boot banner seen): {e}") from None
        except ProtocolError as e:
            self._stale = True
            raise WindowInvalid(f"the DUT stalled or sent garbage during the window: {e}") from None
        except OSError as e:
            self._broken = True
            raise WindowInvalid(f"the link to the DUT dropped during the window: {e}") from None
        _ = qm
        return Window(
            n=n,
            t_start=t_start,
            t_end=t_end,
            latencies_s=np.array([dut_s / n]),
            dut_s=dut_s,
            instr_per_inference=instr,
            extra=extra,
            simulated=sim,
        )

    def _seconds_per_inference(self) -> float:
        assert self._probe is not None
        em = self.profile.energy
        if self.profile.emulated and self.ext is not None and em is not None:
            return self._probe * em.cycles_per_instruction / em.clock_hz
        if self.profile.emulated and em is not None:  # a stock DUT: the probe is QEMU virtual seconds
            return self._instructions(self._probe) * em.cycles_per_instruction / em.clock_hz
        return self._probe

    def _instructions(self, virtual_s: float) -> float:
        """Guest instructions in ``virtual_s`` of QEMU's virtual time under ``-icount shift``."""
        return virtual_s * 1e9 / (1 << self.shift)

    def _reload(self) -> None:
        """After a reset the model in RAM is gone: resync, renegotiate (a reset DUT boots without
        reply checksums), upload the model and the window input again."""
        dut = self._need()
        dut.resync()
        self.ext = self._negotiate()
        assert self.blob is not None
        probe, data = self._probe, self._input
        self.load_blob(self.blob)
        if data is not None and data != self._input:
            self._input = data
            self._need().upload_input(data)
        if (
            probe is not None
            and self._probe is not None
            and self.profile.emulated
            and abs(self._probe - probe) > 0.5
        ):
            raise TargetError(f"instructions per inference changed after reload: {probe} -> {self._probe}")

    # ------------------------------------------------------------ provenance
    def info(self) -> dict[str, Any]:
        p = self.profile
        info: dict[str, Any] = {
            "board": p.name,
            "board_label": p.label,
            "cpu": p.cpu,
            "isa": p.isa,
            "runtime": "frugalbench-mcu",
            "dut_name": self.dut_name,
            "protocol": "EEMBC/MLPerf Tiny" + (" + frugalbench extensions" if self.ext else " (plain)"),
            "threads": 1,
            "batch": 1,
            # the board's memory, for "which core fits this model"; ram_bytes / flash_bytes below are
            # the model's own peak RAM and flash (operator graphs only: unknown for a v1 MLP blob)
            "board_ram_bytes": p.budget.ram_bytes,
            "board_flash_bytes": p.budget.flash_bytes,
        }
        if p.emulated:
            info.update(emulator=f"qemu-system-arm -M {p.qemu_machine} -icount shift={self.shift}")
            info["cost_unit"] = f"icount instructions (not {p.cpu} cycles)"
        if p.energy is not None:
            info["energy_model"] = p.energy.describe()
        if self._probe is not None and p.emulated:
            info["instr_per_inference"] = self._probe
        if self.qm is None and self.wanted is not None:  # refused for its size: what it needed
            info.update(ram_bytes=self.wanted.ram_bytes, flash_bytes=self.wanted.flash_bytes)
            info.update(footprint=self.wanted.how, model_blob_bytes=self.wanted.weights_bytes)
        elif self.qm is not None and self.blob is not None:
            info["model_blob_bytes"] = len(self.blob)
            fp = self.footprint
            if fp is not None:
                info.update(ram_bytes=fp.ram_bytes, flash_bytes=fp.flash_bytes, footprint=fp.how)
                info.update(arena_bytes=fp.arena_bytes, scratch_bytes=fp.scratch_bytes)
            if isinstance(self.qm, QGraph):
                info["model_layers"] = [op.kind for op in self.qm.ops]
                info["notes"] = list(self.qm.notes)
            else:
                info["model_layers"] = [q.name for q in self.qm.layers]
                info["notes"] = self.qm.notes
        return info

    def default_meter(self) -> dict[str, Any] | None:
        if self.profile.emulated:
            return {"kind": "mcu-sim"}
        return dict(self.profile.meter) if self.profile.meter else None
