"""RAM and flash of an int8 operator graph on a board, and the check that it fits before any upload.

- **RAM** = arena (planned tensor bytes) + scratch (largest per-op buffer) + the firmware's runtime
  state: its static ``.data`` + ``.bss`` (+ ``.noinit``) measured in the built ELF (``arm-none-eabi-size -A``) less the
  buffers reserved for models and the host link (``fb_arena``, ``fb_scratch``, the uploaded-model area
  and the EEMBC ``db`` input buffer, sized with ``arm-none-eabi-nm -S``). The stack is not included.
  An MLP blob (version 1) has no arena: its layers run in the firmware's static activation buffers
  (sized for the board's widest activation), which the runtime state already counts.
- **flash** = the blob (weights, biases, requantisation and tables; built into flash on a real board)
  + the firmware image (``.text`` + ``.ARM.exidx`` + ``.data`` initialisers, same ELF).

Without the cross toolchain the firmware terms are unknown (``None``) and so are the totals; the arena,
scratch and blob sizes are always known. :func:`check_fits` refuses a model over the board profile's
budget or the firmware's arena/scratch/model capacities with every size and what would fit.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError, TargetUnavailable
from .blob.codec import blob_version, read_blob
from .blob.container import HEADER
from .blob.graph import QGraph
from .blob.graph_codec import GRAPH, read_graph_blob, write_graph_blob
from .board import BoardProfile
from .build import build_firmware, toolchain_missing
from .plan import plan

# static buffers that hold a model or host data rather than runtime state
RESERVED_SYMBOLS = ("fb_arena", "fb_scratch", "model_area", "db_words")
SIZE_TOOL, NM_TOOL = "arm-none-eabi-size", "arm-none-eabi-nm"


class ModelTooLarge(ModelError):
    """A model needs more RAM, flash, arena, scratch or model area than the board has."""


@dataclass(frozen=True)
class FirmwareSizes:
    """What the built firmware itself occupies, read from its ELF."""

    image_bytes: int  # flash: .text + .ARM.exidx + .data initialisers
    static_ram_bytes: int  # .data + .bss + .noinit
    reserved: dict[str, int]  # sizes of RESERVED_SYMBOLS present in the ELF

    @property
    def runtime_ram_bytes(self) -> int:
        return self.static_ram_bytes - sum(self.reserved.values())

    @property
    def arena_capacity(self) -> int | None:
        return self.reserved.get("fb_arena")

    @property
    def scratch_capacity(self) -> int | None:
        return self.reserved.get("fb_scratch")


@dataclass(frozen=True)
class Footprint:
    """Memory of one model on one board (bytes; ``None`` = not measured)."""

    board: str
    arena_bytes: int
    scratch_bytes: int
    weights_bytes: int  # the whole blob: weights, biases, requantisation, tables
    firmware_flash_bytes: int | None
    runtime_ram_bytes: int | None
    arena_capacity: int | None = None
    scratch_capacity: int | None = None
    how: str = ""

    @property
    def ram_bytes(self) -> int | None:
        if self.runtime_ram_bytes is None:
            return None
        return self.arena_bytes + self.scratch_bytes + self.runtime_ram_bytes

    @property
    def flash_bytes(self) -> int | None:
        if self.firmware_flash_bytes is None:
            return None
        return self.weights_bytes + self.firmware_flash_bytes


def firmware_sizes(elf: Path) -> FirmwareSizes:
    """Section and reserved-buffer sizes of a built firmware ELF (GNU binutils for Arm)."""
    for tool in (SIZE_TOOL, NM_TOOL):
        if shutil.which(tool) is None:
            raise TargetUnavailable(f"{tool} not found (it comes with gcc-arm-none-eabi)")
    out = subprocess.run([SIZE_TOOL, "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    sec = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sec[parts[0]] = int(parts[1])
    syms = subprocess.run([NM_TOOL, "-S", str(elf)], capture_output=True, text=True, check=True).stdout
    reserved = {}
    for line in syms.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] in RESERVED_SYMBOLS:
            reserved[parts[3]] = int(parts[1], 16)
    image = sec.get(".text", 0) + sec.get(".ARM.exidx", 0) + sec.get(".data", 0)
    static = sec.get(".data", 0) + sec.get(".bss", 0) + sec.get(".noinit", 0)
    return FirmwareSizes(image, static, reserved)


def _blob_of(model: QGraph | bytes) -> bytes:
    if isinstance(model, bytes):
        return model
    if any(t.offset < 0 for t in model.tensors):
        plan(model)
    return write_graph_blob(model)


def footprint(model: QGraph | bytes, board: BoardProfile, *, elf: Path | None = None) -> Footprint:
    """RAM and flash of ``model`` (a graph, planned here if needed, or a blob of either version) on ``board``.

    ``elf`` is the firmware to measure; by default the board's firmware is built (cached). Without the
    cross toolchain the firmware terms and the totals are ``None``.
    """
    blob = _blob_of(model)
    fw: FirmwareSizes | None = None
    if blob_version(blob) == 1:
        read_blob(blob)  # validates the layers and the CRC
        arena, scratch = 0, 0
        how = "MLP blob (version 1): activations in the firmware's static buffers, counted in its runtime RAM"
    else:
        read_graph_blob(blob)  # validates version and CRC
        arena, scratch = GRAPH.unpack_from(blob, HEADER.size)[:2]
        how = "arena, scratch, blob: from the version 2 blob header"
    if elf is None and toolchain_missing() is None:
        elf = build_firmware(board.firmware_board)
    if elf is not None:
        try:
            fw = firmware_sizes(elf)
            how += f"; firmware: {SIZE_TOOL} -A and {NM_TOOL} -S of {Path(elf).name} (stack not included)"
        except (TargetUnavailable, subprocess.CalledProcessError) as e:
            how += f"; firmware not measured ({e})"
    else:
        how += "; firmware not measured (no cross toolchain)"
    return Footprint(
        board=board.name,
        arena_bytes=arena,
        scratch_bytes=scratch,
        weights_bytes=len(blob),
        firmware_flash_bytes=fw.image_bytes if fw else None,
        runtime_ram_bytes=fw.runtime_ram_bytes if fw else None,
        arena_capacity=fw.arena_capacity if fw else None,
        scratch_capacity=fw.scratch_capacity if fw else None,
        how=how,
    )


def _kib(n: int) -> str:
    return f"{n:,} B ({n / 1024:.1f} KiB)"


def check_fits(fp: Footprint, board: BoardProfile) -> None:
    """Raise :class:`ModelTooLarge` naming every budget ``fp`` exceeds, with sizes and what would fit."""
    b = board.budget
    problems = []
    if fp.arena_capacity is not None and fp.arena_bytes > fp.arena_capacity:
        problems.append(
            f"tensor arena {_kib(fp.arena_bytes)} > the firmware's arena {_kib(fp.arena_capacity)} (FB_ARENA_MAX)"
        )
    if fp.scratch_capacity is not None and fp.scratch_bytes > fp.scratch_capacity:
        problems.append(
            f"scratch {_kib(fp.scratch_bytes)} > the firmware's scratch {_kib(fp.scratch_capacity)} (FB_SCRATCH_MAX)"
        )
    if fp.weights_bytes > b.model_ram_bytes:
        problems.append(f"blob {_kib(fp.weights_bytes)} > the model area {_kib(b.model_ram_bytes)}")
    if fp.ram_bytes is not None and fp.ram_bytes > b.ram_bytes:
        room = b.ram_bytes - (fp.runtime_ram_bytes or 0)
        problems.append(
            f"RAM {_kib(fp.ram_bytes)} (arena {fp.arena_bytes:,} + scratch {fp.scratch_bytes:,} + runtime "
            f"{fp.runtime_ram_bytes:,}) > {_kib(b.ram_bytes)}; at most {_kib(max(room, 0))} of arena + scratch fit"
        )
    if fp.flash_bytes is not None and fp.flash_bytes > b.flash_bytes:
        room = b.flash_bytes - (fp.firmware_flash_bytes or 0)
        problems.append(
            f"flash {_kib(fp.flash_bytes)} (blob {fp.weights_bytes:,} + firmware {fp.firmware_flash_bytes:,}) > "
            f"{_kib(b.flash_bytes)}; at most {_kib(max(room, 0))} of weights fit"
        )
    if problems:
        raise ModelTooLarge(
            f"the model does not fit {board.name}: " + "; ".join(problems)
            + ": use a smaller model (fewer channels or a smaller input) or a board with more memory"
        )  # fmt: skip
